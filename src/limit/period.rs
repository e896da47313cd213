//! UTC calendar periods for quotas (day, ISO week, month) and RFC 3339 times.
//!
//! Everything is whole unix seconds in UTC: a [`Period`] maps an instant to the
//! `[start, end)` of the day, Monday-to-Monday week or month containing it, and
//! [`parse_rfc3339`] / [`format_rfc3339`] convert the times people write in config
//! and on the command line. Date arithmetic uses Howard Hinnant's `days_from_civil`
//! and `civil_from_days` (proleptic Gregorian calendar), so there is no table and no
//! time-zone database.

const DAY: u64 = 86_400;

/// A quota period, always aligned to the UTC calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    /// The period containing `unix` (seconds since the epoch, UTC): `[start, end)`.
    ///
    /// Day: midnight to midnight UTC. Week: Monday 00:00 UTC to the next Monday.
    /// Month: the 1st 00:00 UTC to the 1st of the next month. The week containing
    /// the epoch began on 1969-12-29; its start is clamped to 0.
    pub fn bounds(self, unix: u64) -> (u64, u64) {
        let day = unix / DAY;
        let (start_day, end_day) = match self {
            Period::Day => (day, day + 1),
            Period::Week => {
                // 1970-01-01 (day 0) was a Thursday: 3 days after a Monday.
                let since_monday = (day + 3) % 7;
                let monday = day as i64 - since_monday as i64;
                return (
                    days_to_unix(monday.max(0) as u64),
                    days_to_unix((monday + 7) as u64),
                );
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(day as i64);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    days_from_civil(y, m, 1) as u64,
                    days_from_civil(ny, nm, 1) as u64,
                )
            }
        };
        (days_to_unix(start_day), days_to_unix(end_day))
    }

    /// The period's name as written in config: `"day"`, `"week"` or `"month"`.
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// Days since the epoch → unix seconds, saturating at `u64::MAX` far in the future.
fn days_to_unix(days: u64) -> u64 {
    days.saturating_mul(DAY)
}

/// Parses an RFC 3339 date-time into unix seconds.
///
/// Accepts `YYYY-MM-DD`, a `T`, `t` or space separator, `HH:MM:SS`, optional
/// fractional seconds (dropped), and `Z`, `z` or a `±hh:mm` offset. Rejects
/// out-of-range fields (month 13, April 31, February 29 outside leap years, hour 24,
/// leap second 60) and times before 1970-01-01T00:00:00Z. The error is a short
/// reason, meant to follow the offending text in the caller's message.
pub fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let mut p = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = p.digits(4, "year")?;
    p.expect(b"-", "'-' after the year")?;
    let month = p.digits(2, "month")?;
    p.expect(b"-", "'-' after the month")?;
    let day = p.digits(2, "day")?;
    p.expect(b"Tt ", "'T' between date and time")?;
    let hour = p.digits(2, "hour")?;
    p.expect(b":", "':' after the hour")?;
    let minute = p.digits(2, "minute")?;
    p.expect(b":", "':' after the minute")?;
    let second = p.digits(2, "second")?;
    if p.peek() == Some(b'.') {
        p.i += 1;
        let start = p.i;
        while p.peek().is_some_and(|c| c.is_ascii_digit()) {
            p.i += 1;
        }
        if p.i == start {
            return Err("expected digits after '.' in the seconds".into());
        }
    }
    let offset: i64 = match p.peek() {
        Some(b'Z' | b'z') => {
            p.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            p.i += 1;
            let oh = p.digits(2, "offset hours")?;
            p.expect(b":", "':' in the offset (±hh:mm)")?;
            let om = p.digits(2, "offset minutes")?;
            if oh > 23 || om > 59 {
                return Err(format!("offset {oh:02}:{om:02} is out of range"));
            }
            let secs = (oh * 3600 + om * 60) as i64;
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return Err("expected 'Z' or a ±hh:mm offset after the time".into()),
        None => return Err("missing time zone: end with 'Z' or a ±hh:mm offset".into()),
    };
    if p.i != p.b.len() {
        return Err("unexpected text after the time zone".into());
    }

    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is out of range (01-12)"));
    }
    let last = days_in_month(year as i64, month);
    if day < 1 || day > last {
        return Err(format!(
            "day {day:02} is out of range for {year:04}-{month:02} (01-{last:02})"
        ));
    }
    if hour > 23 {
        return Err(format!("hour {hour:02} is out of range (00-23)"));
    }
    if minute > 59 {
        return Err(format!("minute {minute:02} is out of range (00-59)"));
    }
    if second > 59 {
        return Err(format!(
            "second {second:02} is out of range (00-59; leap seconds are not supported)"
        ));
    }

    let days = days_from_civil(year as i64, month, day);
    let local = days * DAY as i64 + (hour * 3600 + minute * 60 + second) as i64;
    let utc = local - offset;
    u64::try_from(utc).map_err(|_| "the time is before 1970-01-01T00:00:00Z".to_string())
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(unix: u64) -> String {
    let (y, m, d) = civil_from_days((unix / DAY) as i64);
    let secs = unix % DAY;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A byte cursor for [`parse_rfc3339`].
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let field = self
            .b
            .get(self.i..self.i + n)
            .filter(|f| f.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("expected {n} digits for the {what}"))?;
        self.i += n;
        Ok(field
            .iter()
            .fold(0, |acc, &c| acc * 10 + u32::from(c - b'0')))
    }

    /// One byte out of `any`.
    fn expect(&mut self, any: &[u8], what: &str) -> Result<(), String> {
        match self.peek() {
            Some(c) if any.contains(&c) => {
                self.i += 1;
                Ok(())
            }
            _ => Err(format!("expected {what}")),
        }
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y-m-d` (Hinnant).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((m + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of `z` days since 1970-01-01 (Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Wall-clock seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> u64 {
        parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn known_dates() {
        assert_eq!(t("1970-01-01T00:00:00Z"), 0);
        assert_eq!(t("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(t("2024-02-29T12:34:56Z"), 1_709_210_096);
        assert_eq!(t("2027-01-01T00:00:00Z"), 1_798_761_600);
        assert_eq!(format_rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1969, 12, 29), -3);
    }

    #[test]
    fn day_bounds() {
        let noon = t("2024-02-29T12:00:00Z");
        assert_eq!(
            Period::Day.bounds(noon),
            (t("2024-02-29T00:00:00Z"), t("2024-03-01T00:00:00Z"))
        );
        let midnight = t("2024-03-01T00:00:00Z");
        assert_eq!(Period::Day.bounds(midnight).0, midnight);
        assert_eq!(Period::Day.bounds(midnight - 1).1, midnight);
    }

    #[test]
    fn week_starts_monday() {
        // 2026-11-23 is a Monday.
        let monday = t("2026-11-23T00:00:00Z");
        let next = t("2026-11-30T00:00:00Z");
        assert_eq!(Period::Week.bounds(monday), (monday, next));
        assert_eq!(
            Period::Week.bounds(t("2026-11-26T15:00:00Z")),
            (monday, next)
        );
        assert_eq!(Period::Week.bounds(next - 1), (monday, next));
        assert_eq!(Period::Week.bounds(next).0, next);
    }

    #[test]
    fn first_week_of_the_epoch_is_clamped() {
        // 1970-01-01 was a Thursday; its week began Monday 1969-12-29.
        let next_monday = t("1970-01-05T00:00:00Z");
        assert_eq!(Period::Week.bounds(0), (0, next_monday));
        assert_eq!(Period::Week.bounds(next_monday - 1), (0, next_monday));
        assert_eq!(
            Period::Week.bounds(next_monday),
            (next_monday, t("1970-01-12T00:00:00Z"))
        );
    }

    #[test]
    fn month_bounds() {
        assert_eq!(
            Period::Month.bounds(t("2026-12-31T23:59:59Z")),
            (t("2026-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            Period::Month.bounds(t("2027-01-01T00:00:00Z")),
            (t("2027-01-01T00:00:00Z"), t("2027-02-01T00:00:00Z"))
        );
        assert_eq!(
            Period::Month.bounds(t("2024-02-10T00:00:00Z")),
            (t("2024-02-01T00:00:00Z"), t("2024-03-01T00:00:00Z"))
        );
        assert_eq!(Period::Month.bounds(0), (0, t("1970-02-01T00:00:00Z")));
    }

    #[test]
    fn bounds_far_future_do_not_overflow() {
        for p in [Period::Day, Period::Week, Period::Month] {
            let (start, end) = p.bounds(u64::MAX);
            assert!(start <= end, "{p:?}: {start} > {end}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(Period::Day.name(), "day");
        assert_eq!(Period::Week.name(), "week");
        assert_eq!(Period::Month.name(), "month");
    }

    #[test]
    fn accepted_forms() {
        let base = t("2027-01-01T00:00:00Z");
        assert_eq!(t("2027-01-01t00:00:00z"), base);
        assert_eq!(t("2027-01-01 00:00:00Z"), base);
        assert_eq!(t("2027-01-01T00:00:00.999999Z"), base);
        assert_eq!(t("2027-01-01T02:00:00+02:00"), base);
        assert_eq!(t("2026-12-31T19:30:00-04:30"), base);
        assert_eq!(t("2027-01-01T00:00:00-00:00"), base);
        assert_eq!(t("2027-01-01T00:00:00.5+00:00"), base);
    }

    #[test]
    fn rejects() {
        for (s, why) in [
            ("", "digits for the year"),
            ("2027-13-01T00:00:00Z", "month 13"),
            ("2027-00-01T00:00:00Z", "month 00"),
            ("2027-04-31T00:00:00Z", "day 31"),
            ("2027-02-29T00:00:00Z", "day 29"),
            ("1900-02-29T00:00:00Z", "day 29"),
            ("2027-01-00T00:00:00Z", "day 00"),
            ("2027-01-01T24:00:00Z", "hour 24"),
            ("2027-01-01T00:60:00Z", "minute 60"),
            ("2027-01-01T00:00:60Z", "second 60"),
            ("2027-01-01T00:00:00", "missing time zone"),
            ("2027-01-01", "'T'"),
            ("2027-01-01T00:00Z", "':' after the minute"),
            ("2027-1-01T00:00:00Z", "digits for the month"),
            ("2027-01-01T00:00:00.Z", "digits after '.'"),
            ("2027-01-01T00:00:00+0200", "':' in the offset"),
            ("2027-01-01T00:00:00+24:00", "offset 24:00"),
            ("2027-01-01T00:00:00Zjunk", "unexpected text"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("1970-01-01T00:00:00+00:01", "before 1970"),
            ("２027-01-01T00:00:00Z", "digits for the year"),
        ] {
            let err = parse_rfc3339(s).expect_err(s);
            assert!(err.contains(why), "{s:?}: {err:?} should mention {why:?}");
        }
        // Leap day in a leap year, and the 400-year rule.
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_ok());
        assert!(parse_rfc3339("1970-01-01T01:00:00+01:00").is_ok());
    }

    #[test]
    fn civil_round_trip_over_centuries() {
        for z in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(z);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(unix in 0u64..253_402_300_800) {
            // Up to 9999-12-31T23:59:59Z, the last time with a 4-digit year.
            let s = format_rfc3339(unix);
            prop_assert_eq!(parse_rfc3339(&s), Ok(unix), "{}", s);
        }

        #[test]
        fn bounds_contain_the_instant(unix in 0u64..253_402_300_800) {
            for p in [Period::Day, Period::Week, Period::Month] {
                let (start, end) = p.bounds(unix);
                prop_assert!(start <= unix && unix < end, "{:?} {}", p, unix);
                prop_assert_eq!(p.bounds(start), (start, end));
                prop_assert_eq!(p.bounds(end).0, end);
            }
        }
    }
}
