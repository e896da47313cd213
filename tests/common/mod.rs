//! Shared helpers for the portcullis integration tests.
//!
//! Everything here uses only std: the gateway binary is started as a child
//! process, clients and test upstreams speak raw HTTP/1.1 over TcpStream.
#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Read timeout applied to every client socket: no test may hang forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

pub const BAD_REQUEST: &str = r#"{"message":"Bad Request"}"#;
pub const NOT_FOUND: &str = r#"{"message":"Not Found"}"#;
pub const METHOD_NOT_ALLOWED: &str = r#"{"message":"Method Not Allowed"}"#;
pub const HEADERS_TOO_LARGE: &str = r#"{"message":"Request Header Fields Too Large"}"#;
pub const TOO_LARGE: &str = r#"{"message":"Request Entity Too Large"}"#;
pub const REQUEST_TIMEOUT: &str = r#"{"message":"Request Timeout"}"#;
pub const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;
pub const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
pub const BAD_GATEWAY: &str = r#"{"message":"Bad Gateway"}"#;
pub const GATEWAY_TIMEOUT: &str = r#"{"message":"Gateway Timeout"}"#;
pub const SERVICE_UNAVAILABLE: &str = r#"{"message":"Service Unavailable"}"#;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------
// ports, temp dirs, signals
// ---------------------------------------------------------------------------

/// A port that was free a moment ago (bind 127.0.0.1:0, then release it) and
/// that no other test of this binary was given: the kernel may hand a released
/// port out again, and two tests running at once must not meet on one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no port the kernel offered in 1000 tries was new to this test binary");
}

/// A port on which nothing listens (connects are refused), for the rest of
/// the test binary: a socket bound to it but not listening holds it, so that
/// no listener of a test running at the same time (on a port the kernel
/// picks) can take it and answer.
pub fn dead_port() -> u16 {
    use socket2::{Domain, Socket, Type};
    static HELD: std::sync::Mutex<Vec<Socket>> = std::sync::Mutex::new(Vec::new());
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("bind 127.0.0.1:0");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("a bound address")
        .port();
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(socket);
    port
}

pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "portcullis-it-{}-{}-{}-{}",
            tag,
            std::process::id(),
            n,
            nanos
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // keep the directory (logs!) when the test failed
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `kill -SIG pid` via the kill command.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{}", sig))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{} {} failed: {:?}", sig, pid, st);
}

/// Remove ANSI escape sequences (tracing may colour its output).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&d) = chars.peek() {
                    chars.next();
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Run a command with a hard timeout; returns (exit status, stdout, stderr).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    let dir = TempDir::new("cmd");
    let out_path = dir.path.join("stdout");
    let err_path = dir.path.join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .env("NO_COLOR", "1")
        .spawn()
        .expect("spawn command");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command {:?} did not finish within {:?}", cmd, timeout);
        }
        thread::sleep(Duration::from_millis(20));
    };
    let out = strip_ansi(&fs::read_to_string(&out_path).unwrap_or_default());
    let err = strip_ansi(&fs::read_to_string(&err_path).unwrap_or_default());
    (status, out, err)
}

// ---------------------------------------------------------------------------
// the gateway under test
// ---------------------------------------------------------------------------

/// Render a full config: `[server]` (workers = 1, our listen port, extras),
/// `[log]` (access off unless `log_extra` sets it) and the rest verbatim.
pub fn render_config(port: u16, server_extra: &str, log_extra: &str, rest: &str) -> String {
    let mut log = String::new();
    if !log_extra.contains("level") {
        log.push_str("level = \"info\"\n");
    }
    if !log_extra.contains("access") {
        log.push_str("access = \"off\"\n");
    }
    log.push_str(log_extra);
    let mut server = String::new();
    if !server_extra.contains("workers") {
        server.push_str("workers = 1\n");
    }
    server.push_str(&format!("listen = [\"127.0.0.1:{}\"]\n", port));
    server.push_str(server_extra);
    format!("[server]\n{}\n\n[log]\n{}\n\n{}\n", server, log, rest)
}

pub struct Gateway {
    pub port: u16,
    pub pid: u32,
    pub dir: TempDir,
    pub config_path: PathBuf,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    child: Child,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// Start with access log off.
    pub fn start(server_extra: &str, rest: &str) -> Gateway {
        Gateway::start_with_log(server_extra, "", rest)
    }

    pub fn start_with_log(server_extra: &str, log_extra: &str, rest: &str) -> Gateway {
        let mut dir = TempDir::new("gw");
        let config_path = dir.path.join("gw.toml");
        let stdout_path = dir.path.join("stdout.log");
        let stderr_path = dir.path.join("stderr.log");
        let mut last_err = String::new();
        for attempt in 0..3 {
            let port = free_port();
            write_atomic(
                &config_path,
                &render_config(port, server_extra, log_extra, rest),
            );
            let child = Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(fs::File::create(&stdout_path).unwrap())
                .stderr(fs::File::create(&stderr_path).unwrap())
                .spawn()
                .expect("spawn portcullis");
            let pid = child.id();
            let mut gw = Gateway {
                port,
                pid,
                dir,
                config_path: config_path.clone(),
                stdout_path: stdout_path.clone(),
                stderr_path: stderr_path.clone(),
                child,
                exit: None,
            };
            match gw.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return gw,
                Err(e) => {
                    last_err = format!(
                        "attempt {}: {}\n--- config ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        attempt,
                        e,
                        fs::read_to_string(&gw.config_path).unwrap_or_default(),
                        gw.stdout(),
                        gw.stderr()
                    );
                    let logs = format!("{}{}", gw.stdout(), gw.stderr()).to_lowercase();
                    let port_clash = logs.contains("in use");
                    let _ = gw.child.kill();
                    let _ = gw.child.wait();
                    if !port_clash {
                        panic!("gateway did not become ready: {}", last_err);
                    }
                    // another test grabbed the port in between: retry with a new one
                    let _ = fs::remove_file(&stdout_path);
                    let _ = fs::remove_file(&stderr_path);
                    dir = std::mem::replace(
                        &mut gw.dir,
                        TempDir {
                            path: PathBuf::new(),
                        },
                    );
                    continue;
                }
            }
        }
        panic!("gateway did not become ready: {}", last_err);
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("gateway exited early with {:?}", st));
            }
            // Its own word that it runs, not just a connect: another process
            // listening on the port would accept one.
            if self.logged("portcullis running")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "port {} not accepting after {:?}",
                    self.port, timeout
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        let mut c = self.connect();
        c.request(&get_req(path, "test.local"))
    }

    pub fn render(&self, server_extra: &str, log_extra: &str, rest: &str) -> String {
        render_config(self.port, server_extra, log_extra, rest)
    }

    /// Replace the config file (atomically: write + rename).
    pub fn write_config(&self, text: &str) {
        write_atomic(&self.config_path, text);
    }

    pub fn stdout(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.stdout_path).unwrap_or_default())
    }

    pub fn stderr(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.stderr_path).unwrap_or_default())
    }

    pub fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Whether stdout or stderr holds `needle` now.
    fn logged(&self, needle: &str) -> bool {
        self.stdout().contains(needle) || self.stderr().contains(needle)
    }

    /// Poll stdout+stderr until `needle` shows up.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logged(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        send_signal(self.pid, sig);
    }

    /// Wait for the process to exit (None on timeout).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.exit {
            return Some(st);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.exit = Some(st);
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.exit.is_none() && self.child.try_wait().unwrap().is_none()
    }

    /// Peak resident set size (VmHWM) of the gateway process in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        proc_status_kib(self.pid, "VmHWM:")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{}/status", pid)).expect("read /proc/PID/status");
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field) {
            let num: String = rest
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            return num.parse().unwrap();
        }
    }
    panic!("{} not found in /proc/{}/status", field, pid);
}

pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    fs::write(&tmp, text).expect("write config");
    fs::rename(&tmp, path).expect("rename config");
}

// ---------------------------------------------------------------------------
// config snippets
// ---------------------------------------------------------------------------

/// `[[upstream]]` block named `name` with the given target ports and extra lines.
pub fn upstream_block(name: &str, ports: &[u16], extra: &str) -> String {
    let targets: Vec<String> = ports
        .iter()
        .map(|p| format!("\"127.0.0.1:{}\"", p))
        .collect();
    format!(
        "[[upstream]]\nname = \"{}\"\ntargets = [{}]\n{}\n\n",
        name,
        targets.join(", "),
        extra
    )
}

/// `[[route]]` block proxying `path` (prefix) to upstream `upstream`.
pub fn proxy_route(name: &str, path: &str, upstream: &str) -> String {
    format!(
        "[[route]]\nname = \"{}\"\npath = \"{}\"\nupstream = \"{}\"\n\n",
        name, path, upstream
    )
}

/// `[[route]]` block answering `path` (prefix) with a mock text body.
pub fn mock_route(name: &str, path: &str, status: u16, body: &str) -> String {
    format!(
        "[[route]]\nname = \"{}\"\npath = \"{}\"\nmock = {{ status = {}, body = \"{}\", content_type = \"text/plain\" }}\n\n",
        name, path, status, body
    )
}

/// Upstream `u` on the given ports and a catch-all route `/` to it.
pub fn proxy_all(ports: &[u16], upstream_extra: &str) -> String {
    format!(
        "{}{}",
        upstream_block("u", ports, upstream_extra),
        proxy_route("all", "/", "u")
    )
}

// ---------------------------------------------------------------------------
// raw requests
// ---------------------------------------------------------------------------

pub fn get_req(path: &str, host: &str) -> Vec<u8> {
    format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", path, host).into_bytes()
}

pub fn req_with_headers(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut s = format!("{} {} HTTP/1.1\r\n", method, path);
    for (k, v) in headers {
        s.push_str(&format!("{}: {}\r\n", k, v));
    }
    s.push_str("\r\n");
    let mut v = s.into_bytes();
    v.extend_from_slice(body);
    v
}

// ---------------------------------------------------------------------------
// client side: connection + response reader
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// header names lowercased, values trimmed, in wire order
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// was the body chunked on the wire
    pub chunked: bool,
    /// bytes of this response on the wire (head + body framing)
    pub raw_len: usize,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_all(&self.headers, name).into_iter().next()
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_all(&self.headers, name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Read one CRLF (or LF) terminated line; error on EOF.
pub fn read_line<R: BufRead>(r: &mut R, count: &mut usize) -> io::Result<String> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(256 * 1024).read_until(b'\n', &mut buf)?;
    *count += n;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "eof while reading a line",
        ));
    }
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated line {:?}", String::from_utf8_lossy(&buf)),
        ));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn read_headers<R: BufRead>(r: &mut R, count: &mut usize) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, count)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line {:?}", line)))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        if headers.len() > 1000 {
            return Err(bad("too many headers"));
        }
    }
}

/// Decode a chunked body, feeding data to `sink`. Reads the trailer section.
pub fn read_chunked_into<R: BufRead>(
    r: &mut R,
    count: &mut usize,
    sink: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let line = read_line(r, count)?;
        let size_str = line.split(';').next().unwrap().trim();
        let size = u64::from_str_radix(size_str, 16)
            .map_err(|_| bad(format!("bad chunk size {:?}", line)))?;
        if size == 0 {
            // trailers
            loop {
                let t = read_line(r, count)?;
                if t.is_empty() {
                    return Ok(());
                }
            }
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            r.read_exact(&mut buf[..want])?;
            *count += want;
            sink(&buf[..want]);
            left -= want as u64;
        }
        let crlf = read_line(r, count)?;
        if !crlf.is_empty() {
            return Err(bad(format!("missing CRLF after chunk, got {:?}", crlf)));
        }
    }
}

/// Read one response (1xx interim responses are returned as their own response).
/// `head_request`: the request was HEAD, so no body follows.
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> io::Result<Response> {
    let mut count = 0usize;
    let status_line = read_line(r, &mut count)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/") {
        return Err(bad(format!("bad status line {:?}", status_line)));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {:?}", status_line)))?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers = read_headers(r, &mut count)?;
    let mut resp = Response {
        version,
        status,
        reason,
        headers,
        body: Vec::new(),
        chunked: false,
        raw_len: 0,
    };
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    if !no_body {
        let te = resp
            .header("transfer-encoding")
            .map(|s| s.to_ascii_lowercase());
        if te.as_deref().is_some_and(|t| t.contains("chunked")) {
            resp.chunked = true;
            let mut body = Vec::new();
            read_chunked_into(r, &mut count, &mut |d| body.extend_from_slice(d))?;
            resp.body = body;
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| bad(format!("bad content-length {:?}", cl)))?;
            let mut body = vec![0u8; n];
            r.read_exact(&mut body)?;
            count += n;
            resp.body = body;
        } else {
            let mut body = Vec::new();
            r.read_to_end(&mut body)?;
            count += body.len();
            resp.body = body;
        }
    }
    resp.raw_len = count;
    Ok(resp)
}

pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let addr: SocketAddr = format!("127.0.0.1:{}", port).parse().unwrap();
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to gateway");
        Client::from_stream(s)
    }

    pub fn try_connect(port: u16) -> io::Result<Client> {
        let addr: SocketAddr = format!("127.0.0.1:{}", port).parse().unwrap();
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        Ok(Client::from_stream(s))
    }

    pub fn from_stream(s: TcpStream) -> Client {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::with_capacity(64 * 1024, s),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.reader
            .get_mut()
            .write_all(raw)
            .expect("write to gateway");
    }

    pub fn try_send(&mut self, raw: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(raw)
    }

    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false)
            .expect("read response from gateway")
    }

    /// Read the response to a HEAD request (no body).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true)
            .expect("read HEAD response from gateway")
    }

    pub fn try_read_response(&mut self, head: bool) -> io::Result<Response> {
        read_response(&mut self.reader, head)
    }

    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.send(raw);
        self.read_response()
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request(&get_req(path, "test.local"))
    }

    /// True if the peer closed the connection (EOF or error) within `within`;
    /// false if it stays open (timeout) or sends more data.
    pub fn is_closed_within(&mut self, within: Duration) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let s = self.reader.get_ref();
        s.set_read_timeout(Some(within)).unwrap();
        let mut b = [0u8; 1];
        let res = self.reader.read(&mut b);
        self.reader
            .get_ref()
            .set_read_timeout(Some(IO_TIMEOUT))
            .unwrap();
        match res {
            Ok(0) => true,
            Ok(_) => false,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                false
            }
            Err(_) => true,
        }
    }

    pub fn assert_closed(&mut self) {
        assert!(
            self.is_closed_within(IO_TIMEOUT),
            "expected the gateway to close the connection (buffered: {:?})",
            String::from_utf8_lossy(self.reader.buffer())
        );
    }

    pub fn shutdown_write(&self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Write);
    }
}

/// UUID v4 in lowercase: 8-4-4-4-12 hex, version nibble 4, variant 8/9/a/b.
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        match i {
            8 | 13 | 18 | 23 => {
                if c != b'-' {
                    return false;
                }
            }
            _ => {
                if !(c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                    return false;
                }
            }
        }
    }
    b[14] == b'4' && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

// ---------------------------------------------------------------------------
// byte pattern for large bodies (generated on the fly, verified on the fly)
// ---------------------------------------------------------------------------

pub const PERIOD: usize = 251;

pub fn pattern_block() -> Vec<u8> {
    (0..PERIOD * 300).map(|i| (i % PERIOD) as u8).collect()
}

/// Write `n` bytes of the pattern (byte i = i % 251).
pub fn write_pattern<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    let block = pattern_block();
    let step = (PERIOD * 261) as u64; // multiple of the period: every write starts aligned
    let mut left = n;
    while left > 0 {
        let k = left.min(step) as usize;
        w.write_all(&block[..k])?;
        left -= k as u64;
    }
    Ok(())
}

/// Write `n` pattern bytes as a chunked body (chunks of up to 65511 bytes),
/// including the last chunk and the empty trailer section.
pub fn write_pattern_chunked<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    let block = pattern_block();
    let step = (PERIOD * 261) as u64;
    let mut left = n;
    while left > 0 {
        let k = left.min(step) as usize;
        w.write_all(format!("{:x}\r\n", k).as_bytes())?;
        w.write_all(&block[..k])?;
        w.write_all(b"\r\n")?;
        left -= k as u64;
    }
    w.write_all(b"0\r\n\r\n")
}

pub struct PatternChecker {
    pub offset: u64,
    pub ok: bool,
    block: Vec<u8>,
}

impl PatternChecker {
    pub fn new() -> PatternChecker {
        PatternChecker {
            offset: 0,
            ok: true,
            block: pattern_block(),
        }
    }
    pub fn feed(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            let start = (self.offset % PERIOD as u64) as usize;
            let n = (data.len() - i).min(PERIOD * 299);
            if self.ok && data[i..i + n] != self.block[start..start + n] {
                self.ok = false;
            }
            i += n;
            self.offset += n as u64;
        }
    }
}

// ---------------------------------------------------------------------------
// test upstream server
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

// ---------------------------------------------------------------------------
// minimal flat JSON object parser (for access log lines)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Json {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }
}

/// Parse `{"k":v,...}` where every value is a scalar.
pub fn parse_flat_json(s: &str) -> Result<Vec<(String, Json)>, String> {
    let c: Vec<char> = s.trim().chars().collect();
    let mut i = 0usize;
    fn ws(c: &[char], i: &mut usize) {
        while *i < c.len() && c[*i].is_whitespace() {
            *i += 1;
        }
    }
    fn string(c: &[char], i: &mut usize) -> Result<String, String> {
        if c.get(*i) != Some(&'"') {
            return Err(format!("expected string at {}", i));
        }
        *i += 1;
        let mut out = String::new();
        loop {
            let ch = *c.get(*i).ok_or("unterminated string")?;
            *i += 1;
            match ch {
                '"' => return Ok(out),
                '\\' => {
                    let e = *c.get(*i).ok_or("bad escape")?;
                    *i += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hex: String = c.get(*i..*i + 4).ok_or("bad \\u")?.iter().collect();
                            *i += 4;
                            let v = u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u")?;
                            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err("bad escape".into()),
                    }
                }
                ch if (ch as u32) < 0x20 => return Err("control char in string".into()),
                ch => out.push(ch),
            }
        }
    }
    ws(&c, &mut i);
    if c.get(i) != Some(&'{') {
        return Err("expected {".into());
    }
    i += 1;
    let mut out = Vec::new();
    ws(&c, &mut i);
    if c.get(i) == Some(&'}') {
        return Ok(out);
    }
    loop {
        ws(&c, &mut i);
        let k = string(&c, &mut i)?;
        ws(&c, &mut i);
        if c.get(i) != Some(&':') {
            return Err(format!("expected : after {:?}", k));
        }
        i += 1;
        ws(&c, &mut i);
        let v = match c.get(i) {
            Some('"') => Json::Str(string(&c, &mut i)?),
            Some('n') if c.get(i..i + 4) == Some(&['n', 'u', 'l', 'l']) => {
                i += 4;
                Json::Null
            }
            Some('t') if c.get(i..i + 4) == Some(&['t', 'r', 'u', 'e']) => {
                i += 4;
                Json::Bool(true)
            }
            Some('f') if c.get(i..i + 5) == Some(&['f', 'a', 'l', 's', 'e']) => {
                i += 5;
                Json::Bool(false)
            }
            Some(ch) if ch.is_ascii_digit() || *ch == '-' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_digit() || "+-.eE".contains(c[i])) {
                    i += 1;
                }
                let t: String = c[start..i].iter().collect();
                Json::Num(t.parse().map_err(|_| format!("bad number {:?}", t))?)
            }
            other => return Err(format!("unexpected {:?} for key {:?}", other, k)),
        };
        out.push((k, v));
        ws(&c, &mut i);
        match c.get(i) {
            Some(',') => i += 1,
            Some('}') => {
                i += 1;
                ws(&c, &mut i);
                if i != c.len() {
                    return Err("trailing data".into());
                }
                return Ok(out);
            }
            other => return Err(format!("expected , or }} got {:?}", other)),
        }
    }
}

pub fn json_get<'a>(obj: &'a [(String, Json)], key: &str) -> &'a Json {
    &obj.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("key {:?} missing in {:?}", key, obj))
        .1
}

/// Asserts a response the gateway made itself: status, exact JSON body, its
/// content-type and length, and a request id.
pub fn assert_gateway_error(r: &Response, status: u16, body: &str) {
    assert_eq!(r.status, status, "{:?}\nbody: {}", r, r.body_str());
    assert_eq!(r.body_str(), body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str()),
        "{:?}",
        r.headers
    );
    assert!(r.has("x-request-id"), "{:?}", r.headers);
}

/// Send `raw` in one write on a fresh connection; expect 400 +
/// `connection: close`, then the connection closed.
pub fn expect_400(gw: &Gateway, raw: &[u8]) {
    let mut c = gw.connect();
    c.send(raw);
    let r = c.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "no 400 response for {:?}: {}",
            String::from_utf8_lossy(raw),
            e
        )
    });
    assert_eq!(
        r.status,
        400,
        "{:?} for {:?}",
        r,
        String::from_utf8_lossy(raw)
    );
    assert_gateway_error(&r, 400, BAD_REQUEST);
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    c.assert_closed();
}

/// The gateway's 401 with exactly one `WWW-Authenticate` challenge, `challenge`.
pub fn assert_401(r: &Response, challenge: &str) {
    assert_gateway_error(r, 401, UNAUTHORIZED);
    assert_eq!(
        r.header_all("www-authenticate"),
        vec![challenge],
        "{:?}",
        r.headers
    );
}

/// The gateway's 403, without a challenge.
pub fn assert_403(r: &Response) {
    assert_gateway_error(r, 403, FORBIDDEN);
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
}

/// The response body split into lines.
pub fn body_lines(r: &Response) -> Vec<String> {
    r.body_str().lines().map(|s| s.to_string()).collect()
}

/// Every value of header `name` (any case) in a list of lowercase-named headers.
pub fn header_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let n = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(|(k, _)| *k == n)
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---------------------------------------------------------------------------
// restarting the gateway on its own config (tests/throttle.rs)
// ---------------------------------------------------------------------------

impl Gateway {
    /// Start the binary again on the same config file and directory (so the same
    /// store), after the previous process has exited. Keeps the port when it is
    /// free; if another test grabbed it meanwhile, the config's listen address is
    /// rewritten to a new port. The previous run's output is kept as
    /// `stdout.<n>.log` / `stderr.<n>.log`.
    pub fn restart(&mut self) {
        assert!(
            !self.is_running(),
            "restart: the previous gateway process is still running"
        );
        // A killed io_uring process may release its listening sockets only after it
        // was reaped (the ring is torn down asynchronously); a new SO_REUSEPORT
        // listener next to a dying one would see some connections reset. Wait
        // (bounded) until nothing accepts on the port any more.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let _ = fs::rename(
            &self.stdout_path,
            self.dir.path.join(format!("stdout.{}.log", n)),
        );
        let _ = fs::rename(
            &self.stderr_path,
            self.dir.path.join(format!("stderr.{}.log", n)),
        );
        let mut last_err = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                let old = format!("127.0.0.1:{}\"", self.port);
                let port = free_port();
                let text = fs::read_to_string(&self.config_path).expect("read config");
                write_atomic(
                    &self.config_path,
                    &text.replace(&old, &format!("127.0.0.1:{}\"", port)),
                );
                self.port = port;
            }
            self.child = Command::new(BIN)
                .arg("run")
                .arg("--config")
                .arg(&self.config_path)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(fs::File::create(&self.stdout_path).unwrap())
                .stderr(fs::File::create(&self.stderr_path).unwrap())
                .spawn()
                .expect("spawn portcullis");
            self.pid = self.child.id();
            self.exit = None;
            match self.wait_ready(Duration::from_secs(10)) {
                Ok(()) => return,
                Err(e) => {
                    last_err = format!("attempt {}: {}\n{}", attempt, e, self.logs());
                    let port_clash = self.logs().to_lowercase().contains("in use");
                    let _ = self.child.kill();
                    if let Ok(st) = self.child.wait() {
                        self.exit = Some(st);
                    }
                    if !port_clash {
                        break;
                    }
                }
            }
        }
        panic!("gateway did not become ready on restart: {}", last_err);
    }
}

// ---------------------------------------------------------------------------
// `portcullis check`
// ---------------------------------------------------------------------------

/// `portcullis check --config gw.toml` on `text` in a fresh directory: (exit code,
/// stdout, stderr).
pub fn check_config(text: &str) -> (i32, String, String) {
    let dir = TempDir::new("check");
    let path = dir.path.join("gw.toml");
    fs::write(&path, text).unwrap();
    let (st, out, err) = run_with_timeout(
        Command::new(BIN).args(["check", "--config", path.to_str().unwrap()]),
        Duration::from_secs(20),
    );
    (st.code().unwrap_or(-1), out, err)
}

/// 1-based number of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{:?} not in config", needle))
        + 1
}

/// The lines of the table whose header is `header` (header line to the line
/// before the next table).
pub fn table_lines(text: &str, header: &str) -> RangeInclusive<usize> {
    let start = line_of(text, header);
    let lines: Vec<&str> = text.lines().collect();
    let end = lines[start..]
        .iter()
        .position(|l| l.starts_with('['))
        .map_or(lines.len(), |i| start + i);
    start..=end
}

/// `check` fails with exit 1, and stderr names `gw.toml:<line>` (a line in
/// `lines`), `field` and `also`.
pub fn assert_check_error(text: &str, lines: RangeInclusive<usize>, field: &str, also: &str) {
    assert!(
        !field.is_empty() && !also.is_empty(),
        "assert_check_error needs a field and a message to look for"
    );
    let (code, out, err) = check_config(text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(!out.contains("configuration ok"), "stdout: {:?}", out);
    let at = err
        .find("gw.toml:")
        .unwrap_or_else(|| panic!("no gw.toml:LINE in stderr: {:?}", err));
    let line: usize = err[at + "gw.toml:".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no line number after gw.toml: in {:?}", err));
    assert!(
        lines.contains(&line),
        "error at line {}, expected {:?}: {:?}",
        line,
        lines,
        err
    );
    assert!(
        err.contains(field),
        "expected {:?} in stderr: {:?}",
        field,
        err
    );
    assert!(
        err.contains(also),
        "expected {:?} in stderr: {:?}",
        also,
        err
    );
}

/// Waits (≤ 10 s) until GET `path` answers 200 (the reload reached the worker).
pub fn wait_route(gw: &Gateway, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get(path);
        if r.status == 200 {
            return;
        }
        assert_eq!(r.status, 404, "{:?}", r);
        assert!(
            Instant::now() < deadline,
            "reload not applied\n{}",
            gw.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}
