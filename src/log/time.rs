//! Wall-clock timestamps for log lines, RFC 3339 in UTC with milliseconds.

/// Appends the time `ms` milliseconds after the Unix epoch.
pub(super) fn format_unix_millis(out: &mut String, ms: i64) {
    use std::fmt::Write;
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    );
}

/// Appends `[04/Dec/2026:20:45:01 +0000]`'s inside (nginx's `$time_local`, in UTC)
/// for `secs` seconds after the Unix epoch.
pub(super) fn format_clf(out: &mut String, secs: i64) {
    use std::fmt::Write;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let mut s = String::new();
        format_unix_millis(&mut s, 1_795_460_650_123);
        assert_eq!(s, "2026-11-23T19:04:10.123Z");
        s.clear();
        format_unix_millis(&mut s, 951_782_400_000);
        assert_eq!(s, "2000-02-29T00:00:00.000Z");
        s.clear();
        format_clf(&mut s, 1_795_460_650);
        assert_eq!(s, "23/Nov/2026:19:04:10 +0000");
    }
}
