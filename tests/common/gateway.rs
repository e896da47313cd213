//! The gateway under test as a child process: the binary's path, free and dead
//! ports, temp dirs, starting / restarting / stopping `portcullis run`, waiting
//! for it and its logs, signals, `/proc` readings, and running `portcullis check`
//! or any other command with a timeout.

use super::client::{get_req, Client, Response};
use super::config::{render_config, write_atomic};
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Makes temp dir and file names unique within the test binary.
pub(crate) static COUNTER: AtomicUsize = AtomicUsize::new(0);

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

    /// GET `path` on a fresh connection with `Host: host` and `headers`.
    pub fn get_with(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.connect().get_with(host, path, headers)
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

/// `portcullis check --config PATH` (with a 20 s timeout): (exit code, stdout,
/// stderr).
pub fn check_config_file(path: &Path) -> (i32, String, String) {
    let (st, out, err) = run_with_timeout(
        Command::new(BIN).arg("check").arg("--config").arg(path),
        Duration::from_secs(20),
    );
    (st.code().unwrap_or(-1), out, err)
}

/// `portcullis check --config gw.toml` on `text` in a fresh directory: (exit code,
/// stdout, stderr).
pub fn check_config(text: &str) -> (i32, String, String) {
    check_config_with(text, &[])
}

/// [`check_config`] with `files` (name, content) written beside gw.toml.
pub fn check_config_with(text: &str, files: &[(&str, &str)]) -> (i32, String, String) {
    let dir = TempDir::new("check");
    for (name, content) in files {
        fs::write(dir.path.join(name), content).unwrap();
    }
    let path = dir.path.join("gw.toml");
    fs::write(&path, text).unwrap();
    check_config_file(&path)
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
