//! The access log: per-core bounded queues drained by one writer thread.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

/// Lines a core may have queued before new ones are dropped.
const QUEUE_LINES: usize = 16 * 1024;

/// What one request leaves in the access log.
pub struct AccessRecord<'a> {
    pub request_id: &'a [u8],
    pub client_ip: std::net::IpAddr,
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub route: Option<&'a str>,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream: Option<std::net::SocketAddr>,
    pub upstream_time: Option<Duration>,
    pub duration: Duration,
    /// (stage, reason) when a stage refused the request.
    pub denied: Option<(&'static str, &'static str)>,
    /// The `User-Agent` and `Referer` fields as sent (empty when absent).
    pub user_agent: &'a [u8],
    pub referer: &'a [u8],
    /// The TLS version, on an HTTPS listener.
    pub tls: Option<&'static str>,
    /// The principal the authentication (or API key) stage established.
    pub identity: Option<&'a str>,
    /// The WAF rule ids the request matched, comma-separated.
    pub waf: Option<&'a str>,
    /// The request line's HTTP/1.x minor version.
    pub http_minor: u8,
    /// `[server] stage`, when set.
    pub stage: Option<&'a str>,
}

/// The shared half: every core's queue, the drop counter and the writer's stop
/// and reopen flags.
pub struct AccessLog {
    queues: Vec<ArrayQueue<String>>,
    /// nginx's `combined` format instead of JSON lines (access lines only;
    /// WAF audit lines stay JSON objects, one per line).
    combined: bool,
    dropped: AtomicU64,
    stop: AtomicBool,
    reopen: AtomicBool,
}

/// Opens the log's destination again (after logrotate moved the file away).
pub type Reopen = Box<dyn FnMut() -> std::io::Result<Box<dyn std::io::Write + Send>> + Send>;

/// One core's handle: pushes onto that core's queue.
pub struct AccessSink {
    log: Arc<AccessLog>,
    core: usize,
    /// The last timestamp formatted, by millisecond: most lines share one.
    time: std::cell::RefCell<(u128, String)>,
}

impl AccessLog {
    pub fn new(cores: usize) -> Arc<AccessLog> {
        AccessLog::with_format(cores, false)
    }

    /// `combined`: write access lines in nginx's combined format.
    pub fn with_format(cores: usize, combined: bool) -> Arc<AccessLog> {
        Arc::new(AccessLog {
            combined,
            queues: (0..cores).map(|_| ArrayQueue::new(QUEUE_LINES)).collect(),
            dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
        })
    }

    pub fn sink(self: &Arc<Self>, core: usize) -> AccessSink {
        AccessSink {
            log: self.clone(),
            core,
            time: std::cell::RefCell::new((0, String::new())),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to reopen its destination (`SIGUSR1`): what is queued
    /// before goes to the old file, what follows to the new one; no line is lost.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Starts the writer thread. `out` is the destination, `reopen` how to open
    /// it again (a file; `None` for stdout); lines are flushed at least every
    /// 100 ms. The thread ends after [`AccessLog::stop`] once the queues are empty.
    pub fn spawn_writer(
        self: &Arc<Self>,
        mut out: Box<dyn std::io::Write + Send>,
        mut reopen: Option<Reopen>,
    ) -> std::thread::JoinHandle<()> {
        let log = self.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut reported = 0;
                loop {
                    if log.reopen.swap(false, Ordering::AcqRel) {
                        // What was queued before the signal belongs to the old file.
                        for q in &log.queues {
                            while let Some(line) = q.pop() {
                                let _ = out.write_all(line.as_bytes());
                            }
                        }
                        let _ = out.flush();
                        match reopen.as_mut().map(|open| open()) {
                            Some(Ok(fresh)) => {
                                out = fresh;
                                tracing::info!("access log reopened");
                            }
                            Some(Err(e)) => {
                                tracing::error!("access log: cannot reopen: {e}; writing on")
                            }
                            None => {}
                        }
                    }
                    let stopping = log.stop.load(Ordering::Acquire);
                    let mut wrote = false;
                    for q in &log.queues {
                        while let Some(line) = q.pop() {
                            let _ = out.write_all(line.as_bytes());
                            wrote = true;
                        }
                    }
                    if wrote {
                        let _ = out.flush();
                    }
                    let dropped = log.dropped();
                    if dropped != reported {
                        tracing::warn!(dropped, "access log queue full: lines dropped");
                        reported = dropped;
                    }
                    if stopping {
                        let _ = out.flush();
                        return;
                    }
                    if !wrote {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
            .expect("spawn access log writer")
    }

    /// Asks the writer to drain what is queued and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl AccessSink {
    pub fn record(&self, r: &AccessRecord<'_>) {
        if self.log.combined {
            let mut line = String::with_capacity(256);
            format_combined(&mut line, r);
            self.push(line);
            return;
        }
        let mut line = self.start_line(320);
        format_record(&mut line, r);
        self.push(line);
    }

    /// Another kind of line in the same stream (the WAF audit log): `fields` are
    /// the JSON members after `time`, starting with a comma, e.g. `,"type":"waf"`.
    pub fn line(&self, fields: &str) {
        let mut line = self.start_line(fields.len() + 40);
        line.push('"');
        line.push_str(fields);
        line.push_str("}\n");
        self.push(line);
    }

    /// `{"time":"<now>` (the closing quote is the caller's).
    fn start_line(&self, capacity: usize) -> String {
        let mut line = String::with_capacity(capacity);
        line.push_str("{\"time\":\"");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut cached = self.time.borrow_mut();
        if cached.0 != now {
            cached.1.clear();
            super::time::format_unix_millis(&mut cached.1, now as i64);
            cached.0 = now;
        }
        line.push_str(&cached.1);
        line
    }

    fn push(&self, line: String) {
        if self.log.queues[self.core].push(line).is_err() {
            self.log.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// nginx's `combined` line: `$remote_addr - $remote_user [$time_local]
/// "$request" $status $bytes_sent "$http_referer" "$http_user_agent"`, with
/// the principal as the user and bytes outside printable ASCII, `"` and `\`
/// written `\xHH` as nginx does.
fn format_combined(s: &mut String, r: &AccessRecord<'_>) {
    fn quoted(s: &mut String, bytes: &[u8]) {
        use std::fmt::Write as _;
        if bytes.is_empty() {
            s.push('-');
            return;
        }
        for &b in bytes {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                s.push(b as char);
            } else {
                let _ = write!(s, "\\x{b:02X}");
            }
        }
    }
    let mut num = itoa::Buffer::new();
    push_ip(s, r.client_ip);
    s.push_str(" - ");
    match r.identity {
        Some(id) if !id.is_empty() => quoted(s, id.as_bytes()),
        _ => s.push('-'),
    }
    s.push_str(" [");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    super::time::format_clf(s, secs);
    s.push_str("] \"");
    quoted(s, r.method);
    s.push(' ');
    quoted(s, r.path);
    s.push_str(if r.http_minor == 0 {
        " HTTP/1.0\" "
    } else {
        " HTTP/1.1\" "
    });
    s.push_str(num.format(r.status));
    s.push(' ');
    s.push_str(num.format(r.bytes_out));
    s.push_str(" \"");
    quoted(s, r.referer);
    s.push_str("\" \"");
    quoted(s, r.user_agent);
    s.push_str("\"\n");
}

/// Appends everything after the timestamp.
fn format_record(s: &mut String, r: &AccessRecord<'_>) {
    let mut num = itoa::Buffer::new();
    s.push_str("\",\"request_id\":");
    json_str(s, r.request_id);
    s.push_str(",\"client_ip\":\"");
    push_ip(s, r.client_ip);
    s.push_str("\",\"method\":");
    json_str(s, r.method);
    s.push_str(",\"path\":");
    json_str(s, r.path);
    s.push_str(",\"route\":");
    match r.route {
        Some(name) => json_str(s, name.as_bytes()),
        None => s.push_str("null"),
    }
    s.push_str(",\"status\":");
    s.push_str(num.format(r.status));
    s.push_str(",\"bytes_in\":");
    s.push_str(num.format(r.bytes_in));
    s.push_str(",\"bytes_out\":");
    s.push_str(num.format(r.bytes_out));
    s.push_str(",\"upstream\":");
    match r.upstream {
        Some(a) => {
            let _ = write!(s, "\"{a}\"");
        }
        None => s.push_str("null"),
    }
    s.push_str(",\"upstream_ms\":");
    match r.upstream_time {
        Some(d) => push_ms(s, d),
        None => s.push_str("null"),
    }
    s.push_str(",\"duration_ms\":");
    push_ms(s, r.duration);
    if let Some((stage, reason)) = r.denied {
        s.push_str(",\"denied\":\"");
        s.push_str(stage);
        s.push('/');
        s.push_str(reason);
        s.push('"');
    }
    if !r.user_agent.is_empty() {
        s.push_str(",\"user_agent\":");
        json_str(s, r.user_agent);
    }
    if let Some(v) = r.tls {
        s.push_str(",\"tls\":\"");
        s.push_str(v);
        s.push('"');
    }
    if let Some(id) = r.identity {
        s.push_str(",\"identity\":");
        json_str(s, id.as_bytes());
    }
    if let Some(ids) = r.waf {
        s.push_str(",\"waf\":\"");
        s.push_str(ids);
        s.push('"');
    }
    if let Some(stage) = r.stage {
        s.push_str(",\"stage\":");
        json_str(s, stage.as_bytes());
    }
    s.push_str("}\n");
}

/// A duration in milliseconds with three decimals (microsecond resolution).
fn push_ms(s: &mut String, d: Duration) {
    let us = d.as_micros();
    let mut num = itoa::Buffer::new();
    s.push_str(num.format(us / 1000));
    s.push('.');
    let frac = (us % 1000) as u16;
    if frac < 100 {
        s.push('0');
    }
    if frac < 10 {
        s.push('0');
    }
    s.push_str(num.format(frac));
}

fn push_ip(s: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(num.format(*o));
            }
        }
        v6 => {
            let _ = write!(s, "{v6}");
        }
    }
}

/// Appends `bytes` as a JSON string; bytes that are not UTF-8 become U+FFFD.
/// Appends `bytes` as a JSON string (lossy UTF-8, escaped).
pub fn json_str(s: &mut String, bytes: &[u8]) {
    s.push('"');
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        s.push_str(std::str::from_utf8(bytes).expect("printable ASCII is UTF-8"));
        s.push('"');
        return;
    }
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_json_line() {
        let mut s = String::from("{\"time\":\"T");
        format_record(
            &mut s,
            &AccessRecord {
                request_id: b"id",
                client_ip: "127.0.0.1".parse().unwrap(),
                method: b"GET",
                path: b"/a\"b",
                route: Some("r"),
                status: 200,
                bytes_in: 10,
                bytes_out: 20,
                upstream: Some("127.0.0.1:9".parse().unwrap()),
                upstream_time: Some(Duration::from_micros(1500)),
                duration: Duration::from_micros(2000),
                denied: Some(("waf", "rule")),
                user_agent: b"curl/8",
                referer: b"",
                tls: Some("TLSv1.3"),
                identity: Some("alice"),
                waf: Some("941110,941160"),
                http_minor: 1,
                stage: None,
            },
        );
        let tail = s.split_once("\",\"request_id\"").unwrap().1;
        assert_eq!(
            tail,
            ":\"id\",\"client_ip\":\"127.0.0.1\",\"method\":\"GET\",\"path\":\"/a\\\"b\",\"route\":\"r\",\"status\":200,\"bytes_in\":10,\"bytes_out\":20,\"upstream\":\"127.0.0.1:9\",\"upstream_ms\":1.500,\"duration_ms\":2.000,\"denied\":\"waf/rule\",\"user_agent\":\"curl/8\",\"tls\":\"TLSv1.3\",\"identity\":\"alice\",\"waf\":\"941110,941160\"}\n"
        );
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let log = AccessLog::new(1);
        let sink = log.sink(0);
        let r = AccessRecord {
            request_id: b"x",
            client_ip: "::1".parse().unwrap(),
            method: b"GET",
            path: b"/",
            route: None,
            status: 404,
            bytes_in: 0,
            bytes_out: 0,
            upstream: None,
            upstream_time: None,
            duration: Duration::ZERO,
            denied: None,
            user_agent: b"",
            referer: b"",
            tls: None,
            identity: None,
            waf: None,
            http_minor: 1,
            stage: None,
        };
        for _ in 0..QUEUE_LINES + 5 {
            sink.record(&r);
        }
        assert_eq!(log.dropped(), 5);
    }
}
