//! Test servers the gateway talks to, all on one generic accept loop
//! ([`TestServer`]: a free loopback port, a thread per connection, a handler):
//! the HTTP/1.1 test upstream ([`Upstream`]), the JWKS server of the JWT tests
//! ([`JwksServer`]) and the external authorizer ([`AuthServer`]). Servers that
//! answer request by request use [`TestServer::answering`] with a closure from
//! [`Request`] to [`Reply`].

use super::client::{bad, header_all, read_chunked_into, read_headers, read_line, HasHeaders};
use super::pattern::{write_pattern, write_pattern_chunked, PatternChecker};
use serde_json::Value;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// the generic server
// ---------------------------------------------------------------------------

/// A TCP server on 127.0.0.1: one accept loop, one thread per connection, each
/// connection served by the handler (given the stream and the connection's
/// index, 0 for the first). Stops accepting when dropped.
pub struct TestServer {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// On a port the kernel picks; `what` names the server in a bind failure.
    pub fn start(
        what: &str,
        handler: impl Fn(TcpStream, usize) -> io::Result<()> + Send + Sync + 'static,
    ) -> TestServer {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind {what}: {e}"));
        TestServer::serve(listener, handler)
    }

    /// On a given port (one that was free a moment ago), retrying the bind for
    /// up to 5 s.
    pub fn start_on(
        port: u16,
        what: &str,
        handler: impl Fn(TcpStream, usize) -> io::Result<()> + Send + Sync + 'static,
    ) -> TestServer {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => return TestServer::serve(l, handler),
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot bind the {what} to port {port}: {e}"
                    );
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// An HTTP/1.1 server answering each request with `answer(request)`;
    /// keep-alive unless the reply says close.
    pub fn answering(
        what: &str,
        answer: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start(what, http_handler(answer))
    }

    /// [`TestServer::answering`] on a given port, as [`TestServer::start_on`].
    pub fn answering_on(
        port: u16,
        what: &str,
        answer: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start_on(port, what, http_handler(answer))
    }

    fn serve(
        listener: TcpListener,
        handler: impl Fn(TcpStream, usize) -> io::Result<()> + Send + Sync + 'static,
    ) -> TestServer {
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let id = accepted.fetch_add(1, Ordering::SeqCst);
                    let handler = handler.clone();
                    thread::spawn(move || {
                        let _ = handler(stream, id);
                    });
                }
            });
        }
        TestServer {
            port,
            accepted,
            stop,
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop so that it sees `stop`
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
    }
}

/// One request as a [`TestServer::answering`] server read it (a body only by
/// Content-Length).
#[derive(Debug, Clone)]
pub struct Request {
    /// The request line, e.g. `GET /x HTTP/1.1`.
    pub line: String,
    pub method: String,
    pub target: String,
    /// names lower-cased, values trimmed, in wire order
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The next request on `r`; `None` at the end of the connection.
    pub fn read<R: BufRead>(r: &mut R) -> io::Result<Option<Request>> {
        let mut count = 0usize;
        let Ok(line) = read_line(r, &mut count) else {
            return Ok(None);
        };
        let headers = read_headers(r, &mut count)?;
        let len: usize = header_all(&headers, "content-length")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        r.read_exact(&mut body)?;
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        Ok(Some(Request {
            line,
            method,
            target,
            headers,
            body,
        }))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_all(&self.headers, name).into_iter().next()
    }
}

/// What a [`TestServer::answering`] server sends: `HTTP/1.1 status reason`, the
/// headers in order, `Content-Length`, `Connection: close` when `close` (the
/// server then closes), and the body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub close: bool,
}

impl Reply {
    pub fn new(status: u16, reason: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            reason: reason.to_string(),
            headers: Vec::new(),
            body: body.into(),
            close: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn close(mut self) -> Reply {
        self.close = true;
        self
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (k, v) in &self.headers {
            head.push_str(&format!("{}: {}\r\n", k, v));
        }
        head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        w.write_all(&self.body)?;
        w.flush()
    }
}

/// The connection handler of [`TestServer::answering`].
fn http_handler(
    answer: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(TcpStream, usize) -> io::Result<()> + Send + Sync + 'static {
    move |stream, _| {
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut w = stream;
        while let Some(req) = Request::read(&mut reader)? {
            let reply = answer(&req);
            reply.write_to(&mut w)?;
            if reply.close {
                return Ok(());
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// the test upstream
// ---------------------------------------------------------------------------

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

impl HasHeaders for SeenRequest {
    fn header_list(&self) -> &[(String, String)] {
        &self.headers
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
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    /// "METHOD target" recorded as soon as the request head is parsed
    pub arrivals: Arc<Mutex<Vec<String>>>,
    server: TestServer,
}

impl Upstream {
    pub fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let (seen, arrivals) = (seen.clone(), arrivals.clone());
            TestServer::start("upstream", move |stream, id| {
                serve_conn(stream, id, seen.clone(), arrivals.clone())
            })
        };
        Upstream {
            port: server.port,
            seen,
            arrivals,
            server,
        }
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.server.accepted()
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
    conn_id: usize,
    seen_log: Arc<Mutex<Vec<SeenRequest>>>,
    arrivals: Arc<Mutex<Vec<String>>>,
) -> io::Result<()> {
    let port = stream.local_addr()?.port();
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

// ---------------------------------------------------------------------------
// the JWKS server (the test IdP of tests/auth_jwt.rs)
// ---------------------------------------------------------------------------

/// A tiny HTTP/1.1 server answering `GET /jwks.json` with the current document
/// (swappable), optionally with `Cache-Control: max-age=N`; counts the fetches
/// and can be "down" (503). Every answer closes the connection.
pub struct JwksServer {
    pub port: u16,
    state: Arc<JwksState>,
    server: TestServer,
}

struct JwksState {
    doc: Mutex<String>,
    max_age: Mutex<Option<u64>>,
    /// Milliseconds to wait before answering a fetch.
    delay_ms: AtomicU64,
    down: AtomicBool,
    fetches: AtomicUsize,
}

impl JwksState {
    fn answer(&self, req: &Request) -> Reply {
        if req.target != "/jwks.json" {
            return Reply::new(404, "Not Found", r#"{"message":"nope"}"#)
                .header("Content-Type", "application/json")
                .close();
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        if self.down.load(Ordering::SeqCst) {
            return Reply::new(503, "Service Unavailable", r#"{"message":"down"}"#)
                .header("Content-Type", "application/json")
                .close();
        }
        let mut reply = Reply::new(200, "OK", self.doc.lock().unwrap().clone())
            .header("Content-Type", "application/json");
        if let Some(n) = *self.max_age.lock().unwrap() {
            reply = reply.header("Cache-Control", &format!("max-age={}", n));
        }
        reply.close()
    }
}

impl JwksServer {
    pub fn start(doc: &str) -> JwksServer {
        JwksServer::with(doc, |answer| TestServer::answering("jwks server", answer))
    }

    /// Listen on a given port (one that was free a moment ago).
    pub fn start_on(port: u16, doc: &str) -> JwksServer {
        JwksServer::with(doc, |answer| {
            TestServer::answering_on(port, "jwks server", answer)
        })
    }

    fn with(
        doc: &str,
        start: impl FnOnce(Box<dyn Fn(&Request) -> Reply + Send + Sync>) -> TestServer,
    ) -> JwksServer {
        let state = Arc::new(JwksState {
            doc: Mutex::new(doc.to_string()),
            max_age: Mutex::new(None),
            delay_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
            fetches: AtomicUsize::new(0),
        });
        let server = {
            let state = state.clone();
            start(Box::new(move |req| state.answer(req)))
        };
        JwksServer {
            port: server.port,
            state,
            server,
        }
    }

    pub fn set(&self, doc: &str) {
        *self.state.doc.lock().unwrap() = doc.to_string();
    }

    pub fn set_max_age(&self, secs: Option<u64>) {
        *self.state.max_age.lock().unwrap() = secs;
    }

    /// Answer fetches only after `ms` milliseconds (a slow IdP).
    pub fn set_delay_ms(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// `GET /jwks.json` requests received so far (answered or not).
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// the external authorizer (tests/auth_external.rs)
// ---------------------------------------------------------------------------

/// What the test authorizer answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Sleep this long before answering.
    pub delay_ms: u64,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            delay_ms: 0,
        }
    }

    /// 200 with the given headers.
    pub fn allow(headers: &[(&str, &str)]) -> Answer {
        Answer {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            delay_ms: 0,
        }
    }

    /// 401, with a `WWW-Authenticate` challenge if given.
    pub fn unauthorized(challenge: Option<&str>) -> Answer {
        let mut a = Answer::status(401);
        if let Some(c) = challenge {
            a.headers
                .push(("WWW-Authenticate".to_string(), c.to_string()));
        }
        a
    }

    /// This answer, after sleeping `ms`.
    pub fn after(mut self, ms: u64) -> Answer {
        self.delay_ms = ms;
        self
    }
}

/// One question the authorizer received.
#[derive(Debug, Clone)]
pub struct Asked {
    pub request_line: String,
    /// names lower-cased
    pub headers: Vec<(String, String)>,
    pub raw_body: Vec<u8>,
    /// the body parsed as JSON (`Value::Null` when it is not JSON)
    pub body: Value,
}

impl Asked {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_all(&self.headers, name).into_iter().next()
    }
}

type Decide = Arc<dyn Fn(&Value) -> Answer + Send + Sync>;

/// HTTP/1.1 keep-alive authorizer that records every question and answers
/// according to a swappable closure, with Content-Length and never with
/// `Connection: close`.
pub struct AuthServer {
    pub port: u16,
    asked: Arc<Mutex<Vec<Asked>>>,
    decide: Arc<Mutex<Decide>>,
    server: TestServer,
}

impl AuthServer {
    /// An authorizer that answers `answer` to every question.
    pub fn constant(answer: Answer) -> AuthServer {
        AuthServer::start(move |_| answer.clone())
    }

    /// An authorizer that answers `f(question body)`.
    pub fn start(f: impl Fn(&Value) -> Answer + Send + Sync + 'static) -> AuthServer {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let decide: Arc<Mutex<Decide>> = Arc::new(Mutex::new(Arc::new(f)));
        let server = {
            let (asked, decide) = (asked.clone(), decide.clone());
            TestServer::answering("authorizer", move |req| {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                asked.lock().unwrap().push(Asked {
                    request_line: req.line.clone(),
                    headers: req.headers.clone(),
                    raw_body: req.body.clone(),
                    body: body.clone(),
                });
                let f = decide.lock().unwrap().clone();
                let answer = f(&body);
                if answer.delay_ms > 0 {
                    thread::sleep(Duration::from_millis(answer.delay_ms));
                }
                let payload = format!("{{\"status\":{}}}", answer.status);
                let mut reply = Reply::new(answer.status, "Answer", payload)
                    .header("Content-Type", "application/json");
                for (k, v) in &answer.headers {
                    reply = reply.header(k, v);
                }
                reply
            })
        };
        AuthServer {
            port: server.port,
            asked,
            decide,
            server,
        }
    }

    /// Replace the answering closure.
    pub fn set(&self, f: impl Fn(&Value) -> Answer + Send + Sync + 'static) {
        *self.decide.lock().unwrap() = Arc::new(f);
    }

    /// Answer `answer` from now on.
    pub fn set_constant(&self, answer: Answer) {
        self.set(move |_| answer.clone());
    }

    pub fn url(&self) -> String {
        self.server.url("/authorize")
    }

    /// Questions received so far.
    pub fn calls(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.accepted()
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }

    pub fn last(&self) -> Asked {
        self.asked()
            .last()
            .cloned()
            .expect("the authorizer was not asked")
    }
}
