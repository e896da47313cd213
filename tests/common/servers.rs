//! Test servers the gateway talks to: the HTTP/1.1 test upstream ([`Upstream`]).

use super::client::{bad, header_all, read_chunked_into, read_headers, read_line};
use super::pattern::{write_pattern, write_pattern_chunked, PatternChecker};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// first MiB of the body
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_chunked: bool,
    pub pattern_ok: bool,
    pub conn_id: usize,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_all(&self.headers, name).into_iter().next()
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Thread-based HTTP/1.1 test upstream (keep-alive by default).
///
/// Behaviours by path:
/// * default: echo — `200 text/plain` with `method=`, `target=`, `version=`,
///   `body_len=` and one `h:name=value` line per request header
/// * `/slow?ms=N`: sleep N ms, then echo
/// * `/chunked`: chunked response "hello chunked world"
/// * `/close`: response without length, delimited by closing the connection
/// * `/big?bytes=N`: N pattern bytes with Content-Length
/// * `/bigchunked?bytes=N`: N pattern bytes, chunked
/// * `/upload`: consumes the body, answers `received=N pattern=ok|bad`
/// * `/hop`: answers with hop-by-hop headers (which the gateway must drop)
/// * `/interim`: sends `100 Continue` and `103 Early Hints` before the final echo
/// * `/garbage`: answers with something that is not HTTP, then closes
/// * `/reset`: closes without answering
/// * `/status?code=N`: answers status N
/// * `/own-rid`: answers with its own `X-Request-Id: upstream-own-id`
/// * `/badcl`: answers with `Content-Length: abc`, then closes
/// * `/truncated`: announces 100 bytes, sends 10, closes
/// * `/no-reason`: answers `HTTP/1.1 200` (no reason phrase) with body "ok"
/// * `/late-extra`: answers "ok", then ~50 ms later writes a second,
///   unsolicited response ("EVIL!") on the same connection and keeps it open
/// * `/once`: answers "once" (without `Connection: close`), then closes
/// * `/close-on-reuse`: echo when it is the first request on its connection;
///   otherwise reads the request and closes without answering
/// * `/gzip-chunked`: answers with `Transfer-Encoding: gzip, chunked` and the
///   bytes of [`GZIP_CHUNKED_BODY`] in several chunks
pub struct Upstream {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    /// "METHOD target" recorded as soon as the request head is parsed
    pub arrivals: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let accepted = accepted.clone();
            let seen = seen.clone();
            let arrivals = arrivals.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let stream = match conn {
                        Ok(s) => s,
                        Err(_) => continue,
                    };
                    let id = accepted.fetch_add(1, Ordering::SeqCst);
                    let seen = seen.clone();
                    let arrivals = arrivals.clone();
                    thread::spawn(move || {
                        let _ = serve_conn(stream, port, id, seen, arrivals);
                    });
                }
            });
        }
        Upstream {
            port,
            accepted,
            seen,
            arrivals,
            stop,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> SeenRequest {
        self.seen()
            .last()
            .cloned()
            .expect("upstream saw no request")
    }

    /// Wait until a request whose target starts with `prefix` has arrived.
    pub fn wait_arrival(&self, prefix: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.arrivals.lock().unwrap().iter().any(|a| {
                a.split_once(' ')
                    .is_some_and(|(_, t)| t.starts_with(prefix))
            }) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(
            &format!("127.0.0.1:{}", self.port).parse().unwrap(),
            Duration::from_millis(200),
        );
    }
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let q = target.split_once('?')?.1;
    for kv in q.split('&') {
        if let Some((k, v)) = kv.split_once('=') {
            if k == name {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn echo_body(seen: &SeenRequest) -> String {
    let mut s = format!(
        "method={}\ntarget={}\nversion={}\nbody_len={}\n",
        seen.method, seen.target, seen.version, seen.body_len
    );
    for (k, v) in &seen.headers {
        s.push_str(&format!("h:{}={}\n", k, v));
    }
    s
}

/// The (gzip-coded) payload `/gzip-chunked` sends inside its chunked framing:
/// `gzip` of "hello gzip\n".
pub const GZIP_CHUNKED_BODY: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57,
    0x48, 0xaf, 0xca, 0x2c, 0xe0, 0x02, 0x00, 0x39, 0x7c, 0x63, 0x56, 0x0b, 0x00, 0x00, 0x00,
];

fn serve_conn(
    stream: TcpStream,
    port: u16,
    conn_id: usize,
    seen_log: Arc<Mutex<Vec<SeenRequest>>>,
    arrivals: Arc<Mutex<Vec<String>>>,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
    let mut w = stream;
    let mut served_on_conn = 0usize;
    loop {
        served_on_conn += 1;
        let mut count = 0usize;
        // request line (skip stray empty lines between requests)
        let line = loop {
            match read_line(&mut reader, &mut count) {
                Ok(l) if l.is_empty() => continue,
                Ok(l) => break l,
                Err(_) => return Ok(()),
            }
        };
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("").to_string();
        let headers = read_headers(&mut reader, &mut count)?;
        arrivals
            .lock()
            .unwrap()
            .push(format!("{} {}", method, target));

        let mut seen = SeenRequest {
            method: method.clone(),
            target: target.clone(),
            version,
            headers,
            body: Vec::new(),
            body_len: 0,
            body_chunked: false,
            pattern_ok: true,
            conn_id,
        };
        if target.starts_with("/early-413") {
            // Answers before reading the body, then closes without reading it: an
            // upstream refusing an upload it will not take.
            seen_log.lock().unwrap().push(seen.clone());
            w.write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big\n")?;
            w.flush()?;
            // Close with the body unread: the kernel answers the rest with a reset.
            drop(reader);
            drop(w);
            return Ok(());
        }
        let mut checker = PatternChecker::new();
        let keep = 1usize << 20;
        {
            let body = &mut seen.body;
            let mut sink = |d: &[u8]| {
                checker.feed(d);
                if body.len() < keep {
                    let k = (keep - body.len()).min(d.len());
                    body.extend_from_slice(&d[..k]);
                }
            };
            let te = seen
                .headers
                .iter()
                .find(|(k, _)| k == "transfer-encoding")
                .map(|(_, v)| v.to_ascii_lowercase());
            if te.as_deref().is_some_and(|t| t.contains("chunked")) {
                seen.body_chunked = true;
                read_chunked_into(&mut reader, &mut count, &mut sink)?;
            } else if let Some((_, cl)) = seen.headers.iter().find(|(k, _)| k == "content-length") {
                let mut left: u64 = cl.parse().map_err(|_| bad("bad content-length"))?;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let n = reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Ok(());
                    }
                    sink(&buf[..n]);
                    left -= n as u64;
                }
            }
        }
        seen.body_len = checker.offset;
        seen.pattern_ok = checker.ok;
        seen_log.lock().unwrap().push(seen.clone());

        let close_after = seen
            .header("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("close"));
        let path = target.split('?').next().unwrap_or("").to_string();
        let is_head = method == "HEAD";
        let echo = |w: &mut TcpStream, seen: &SeenRequest| -> io::Result<()> {
            let body = echo_body(seen);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Upstream-Port: {}\r\nX-Upstream-Conn: {}\r\n\r\n",
                body.len(),
                port,
                conn_id
            );
            w.write_all(head.as_bytes())?;
            if !is_head {
                w.write_all(body.as_bytes())?;
            }
            Ok(())
        };
        match path.as_str() {
            "/slow" => {
                let ms: u64 = query_param(&target, "ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1000);
                thread::sleep(Duration::from_millis(ms));
                echo(&mut w, &seen)?;
            }
            "/chunked" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                if !is_head {
                    w.write_all(b"6\r\nhello \r\n")?;
                    w.flush()?;
                    w.write_all(b"8\r\nchunked \r\n5\r\nworld\r\n0\r\n\r\n")?;
                }
            }
            "/close" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nthis body is delimited by close")?;
                w.flush()?;
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/big" => {
                let n: u64 = query_param(&target, "bytes")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                    n
                );
                w.write_all(head.as_bytes())?;
                if !is_head {
                    write_pattern(&mut w, n)?;
                }
            }
            "/bigchunked" => {
                let n: u64 = query_param(&target, "bytes")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")?;
                if !is_head {
                    write_pattern_chunked(&mut w, n)?;
                }
            }
            "/own-rid" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: upstream-own-id\r\nContent-Length: 3\r\n\r\n")?;
                if !is_head {
                    w.write_all(b"own")?;
                }
            }
            "/badcl" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: abc\r\n\r\nhello")?;
                w.flush()?;
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/truncated" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten b")?;
                w.flush()?;
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/upload" => {
                let body = format!(
                    "received={} pattern={}",
                    seen.body_len,
                    if seen.pattern_ok { "ok" } else { "bad" }
                );
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                w.write_all(head.as_bytes())?;
                w.write_all(body.as_bytes())?;
            }
            "/hop" => {
                let body = "hop";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: x-up-hop\r\nX-Up-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic realm=\"x\"\r\nProxy-Connection: keep-alive\r\nUpgrade: foo/1\r\nTrailer: x-t\r\nX-Up-Keep: yes\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    body
                );
                w.write_all(head.as_bytes())?;
            }
            "/interim" => {
                w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                w.write_all(
                    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
                )?;
                w.flush()?;
                echo(&mut w, &seen)?;
            }
            "/garbage" => {
                w.write_all(b"THIS IS NOT HTTP AT ALL\r\n\r\n")?;
                w.flush()?;
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/reset" => {
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/status" => {
                let code: u16 = query_param(&target, "code")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(200);
                let body = if code == 204 || code == 304 {
                    String::new()
                } else {
                    format!("status {}", code)
                };
                let head = if code == 204 || code == 304 {
                    format!("HTTP/1.1 {} X\r\n\r\n", code)
                } else {
                    format!(
                        "HTTP/1.1 {} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        code,
                        body.len()
                    )
                };
                w.write_all(head.as_bytes())?;
                if !is_head {
                    w.write_all(body.as_bytes())?;
                }
            }
            "/no-reason" => {
                w.write_all(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n")?;
                if !is_head {
                    w.write_all(b"ok")?;
                }
            }
            "/late-extra" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
                w.flush()?;
                thread::sleep(Duration::from_millis(50));
                // unsolicited: nobody asked for this one
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")?;
            }
            "/once" => {
                w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n",
                )?;
                if !is_head {
                    w.write_all(b"once")?;
                }
                w.flush()?;
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/close-on-reuse" if served_on_conn > 1 => {
                let _ = w.shutdown(Shutdown::Both);
                return Ok(());
            }
            "/gzip-chunked" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")?;
                if !is_head {
                    for part in GZIP_CHUNKED_BODY.chunks(7) {
                        w.write_all(format!("{:x}\r\n", part.len()).as_bytes())?;
                        w.write_all(part)?;
                        w.write_all(b"\r\n")?;
                    }
                    w.write_all(b"0\r\n\r\n")?;
                }
            }
            _ => echo(&mut w, &seen)?,
        }
        w.flush()?;
        if close_after {
            let _ = w.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}
