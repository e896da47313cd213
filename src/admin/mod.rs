//! The admin API: the operator's listener (`[admin] listen`), served off the
//! request path on threads of its own — never on a core's ring — with the
//! gateway's own HTTP/1.1 head parser.
//!
//! - `GET /healthz`: 200 while the process runs; `GET /ready`: 200 once every
//!   listener is bound and the first config is live, 503 while draining. Neither
//!   needs a token (load balancers and orchestrators probe them).
//! - `GET /metrics`: Prometheus text format 0.0.4 ([`metrics`]).
//! - `/keys`: the store's API keys, listed, created, revoked and rotated
//!   (`keys.rs`).
//! - `GET /config`: the config the serving snapshot was compiled from, as JSON,
//!   every secret (and every `env:`/`file:` reference) shown as `"<redacted>"`
//!   ([`crate::config::redact`]).
//! - `POST /reload`: the same as SIGHUP, synchronously, through the control
//!   thread: 200 `{"status":"ok","generation":N}`, or 400
//!   `{"status":"error","error":"FILE:LINE:COL: FIELD: MESSAGE"}` with the old
//!   config kept.
//!
//! A `POST` or `DELETE` carrying `Origin` or `Sec-Fetch-Site` (a browser's) is
//! refused with 403, token or not: a web page cannot drive the admin API.
//!
//! Every endpoint but the two probes wants `Authorization: Bearer <token>` with
//! one of `[admin] token` (several may be listed, so one can be rotated; they are
//! read from the snapshot current at each request, so a reload rotates them);
//! without it the answer is 401 `{"message":"Unauthorized"}`. Mutations are
//! `POST` only: another method gets 405 with `Allow`. One request per connection
//! (`Connection: close`), heads bounded to 16 KiB and bodies to 64 KiB, each
//! connection bounded to [`IO_TIMEOUT`] per read and write, at most
//! [`MAX_CONNECTIONS`] at once.

mod keys;
pub mod metrics;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::http::request::{parse_head, Header, Method};
use crate::http::BodyKind;
use crate::session::Shared;

/// Bounds each read and write of an admin connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 16;
const MAX_HEAD: usize = 16 << 10;
const MAX_BODY: u64 = 64 << 10;

/// What the control thread reports to the admin API, and how the admin API asks
/// it for work.
pub struct Control {
    /// Set once every listener is bound and the first config is live.
    pub ready: AtomicBool,
    /// Set at SIGTERM/SIGINT: `/ready` says 503 from then on (the listeners
    /// close after `server.shutdown_delay`).
    pub stopping: AtomicBool,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix seconds of the last successful load (the start counts).
    pub last_reload_success: AtomicU64,
    /// The io driver the cores run (`io_uring` or `epoll`).
    pub driver: std::sync::OnceLock<String>,
    /// The access log, when there is one (its dropped-line count).
    pub access_log: std::sync::OnceLock<Arc<crate::log::AccessLog>>,
    /// Quota flushes to the store that failed (and were retried).
    pub store_flush_errors: Arc<AtomicU64>,
    reloads: std::sync::Mutex<mpsc::Sender<ReloadRequest>>,
}

/// A `POST /reload` waiting for the control thread's answer: the new
/// generation, or the error that kept the old config.
pub struct ReloadRequest {
    pub reply: mpsc::Sender<Result<u64, String>>,
}

impl Control {
    /// The control state, and the receiving end the control thread polls.
    pub fn new() -> (Arc<Control>, mpsc::Receiver<ReloadRequest>) {
        let (tx, rx) = mpsc::channel();
        let control = Control {
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_reload_success: AtomicU64::new(crate::limit::period::unix_now()),
            driver: std::sync::OnceLock::new(),
            access_log: std::sync::OnceLock::new(),
            store_flush_errors: Arc::new(AtomicU64::new(0)),
            reloads: std::sync::Mutex::new(tx),
        };
        (Arc::new(control), rx)
    }

    /// Counts a reload's outcome.
    pub fn reloaded(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            self.last_reload_success
                .store(crate::limit::period::unix_now(), Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reload(&self) -> Result<u64, String> {
        let (tx, rx) = mpsc::channel();
        let sent = self
            .reloads
            .lock()
            .map_err(|_| "control thread gone".to_string())?
            .send(ReloadRequest { reply: tx });
        sent.map_err(|_| "control thread gone".to_string())?;
        rx.recv_timeout(Duration::from_secs(60))
            .map_err(|_| "reload did not finish within 60s".to_string())?
    }
}

/// Binds the admin listener; the error names the address.
pub fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).map_err(|e| format!("admin.listen: cannot listen on {addr}: {e}"))
}

/// Serves `listener` on a thread of its own until the process exits.
pub fn start(
    listener: TcpListener,
    shared: Arc<Shared>,
    control: Arc<Control>,
) -> Result<(), String> {
    let open = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    open.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let (shared, control, open) = (shared.clone(), control.clone(), open.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("admin-conn".into())
                        .spawn(move || {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                serve(stream, &shared, &control)
                            }));
                            open.fetch_sub(1, Ordering::AcqRel);
                        });
                if spawned.is_err() {
                    tracing::warn!("admin: cannot start a connection thread");
                }
            }
        })
        .map_err(|e| format!("cannot start the admin thread: {e}"))?;
    Ok(())
}

/// An answer: status, content type, body, extra header lines.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    extra: String,
}

impl Answer {
    fn json(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: body.into(),
            extra: String::new(),
        }
    }

    /// 405 naming the methods the endpoint takes.
    fn not_allowed(allow: &str) -> Answer {
        let mut a = Answer::message(405);
        a.extra.push_str(&format!("allow: {allow}\r\n"));
        a
    }

    fn message(status: u16) -> Answer {
        Answer::json(
            status,
            crate::http::reply::Reply::error(status).body.into_owned(),
        )
    }
}

fn serve(mut stream: TcpStream, shared: &Shared, control: &Control) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let answer = match read_request(&mut stream) {
        Ok(Some((buf, head, headers))) => route(&buf, &head, &headers, shared, control),
        Ok(None) => return,
        Err(status) => Answer::message(status),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n{}\r\n",
        answer.status,
        crate::http::reply::reason(answer.status),
        answer.content_type,
        answer.body.len(),
        answer.extra
    )
    .into_bytes();
    out.extend_from_slice(answer.body.as_bytes());
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

type Parsed = (Vec<u8>, crate::http::request::RequestHead, Vec<Header>);

/// Reads one request: its head, and its body (bounded) after it in the buffer.
/// `Ok(None)`: the client left before sending one; `Err(status)`: answer it
/// with that status.
fn read_request(stream: &mut TcpStream) -> Result<Option<Parsed>, u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut headers = Vec::new();
    let mut chunk = [0u8; 4096];
    let head = loop {
        match parse_head(&buf, &mut headers) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() >= MAX_HEAD => return Err(431),
            Ok(None) => {}
            Err(e) => return Err(e.status),
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) if buf.is_empty() => return Ok(None),
            Err(_) => return Err(408),
        }
    };
    let body = match head.body {
        BodyKind::None => 0,
        BodyKind::Length(n) if n <= MAX_BODY => n,
        BodyKind::Length(_) => return Err(413),
        // The admin API takes no streamed bodies.
        _ => return Err(400),
    };
    let want = head.len + body as usize;
    while buf.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.truncate(want);
    Ok(Some((buf, head, headers)))
}

/// Which endpoint, which methods it takes, whether it wants the token.
fn route(
    buf: &[u8],
    head: &crate::http::request::RequestHead,
    headers: &[Header],
    shared: &Shared,
    control: &Control,
) -> Answer {
    let hb = &buf[..head.len];
    let body = &buf[head.len..];
    let path = head.path.get(hb);
    // A mutation from a web page (a browser sends Origin, or Sec-Fetch-Site):
    // refused, so a page open on this host cannot reload the gateway or change
    // its keys through a loopback listener that needs no token. Operators'
    // tools (curl, scripts, Prometheus) send neither.
    let from_browser = headers.iter().any(|h| {
        let n = h.name.get(hb);
        n.eq_ignore_ascii_case(b"origin") || n.eq_ignore_ascii_case(b"sec-fetch-site")
    });
    if from_browser && !matches!(head.method, Method::Get | Method::Head) {
        return Answer::message(403);
    }
    if path == b"/keys" || path.starts_with(b"/keys/") {
        if !authorized(hb, headers, shared) {
            return unauthorized();
        }
        return keys::route(head.method, path, body, shared);
    }
    // (what `Allow` says, whether it is read-only, whether it needs no token)
    let (allow, read, public) = match path {
        b"/healthz" | b"/ready" => ("GET, HEAD", true, true),
        b"/metrics" | b"/config" => ("GET, HEAD", true, false),
        b"/reload" => ("POST", false, false),
        _ => ("", false, false),
    };
    if !public && !authorized(hb, headers, shared) {
        return unauthorized();
    }
    if allow.is_empty() {
        return Answer::message(404);
    }
    let method_ok = match head.method {
        Method::Get | Method::Head => read,
        Method::Post => !read,
        _ => false,
    };
    if !method_ok {
        return Answer::not_allowed(allow);
    }
    match path {
        b"/healthz" => Answer::json(200, r#"{"status":"ok"}"#),
        b"/ready"
            if shared.shutdown.load(Ordering::Acquire)
                || control.stopping.load(Ordering::Acquire) =>
        {
            Answer::json(503, r#"{"status":"draining"}"#)
        }
        b"/ready" if !control.ready.load(Ordering::Acquire) => {
            Answer::json(503, r#"{"status":"starting"}"#)
        }
        b"/ready" => Answer::json(200, r#"{"status":"ready"}"#),
        b"/config" => Answer::json(200, shared.gateway.load().config_json.clone()),
        b"/metrics" => Answer {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics::render(shared, control),
            extra: String::new(),
        },
        _ => match control.reload() {
            Ok(generation) => Answer::json(
                200,
                serde_json::json!({ "status": "ok", "generation": generation }).to_string(),
            ),
            Err(error) => Answer::json(
                400,
                serde_json::json!({ "status": "error", "error": error }).to_string(),
            ),
        },
    }
}

fn unauthorized() -> Answer {
    let mut a = Answer::message(401);
    a.extra
        .push_str("www-authenticate: Bearer realm=\"portcullis-admin\"\r\n");
    a
}

/// Whether the request carries one of the current snapshot's tokens (always,
/// when none is configured: a loopback listener may run without one).
fn authorized(hb: &[u8], headers: &[Header], shared: &Shared) -> bool {
    let gateway = shared.gateway.load();
    let Some(admin) = &gateway.admin else {
        return false;
    };
    if admin.tokens.is_empty() {
        return true;
    }
    let Some(given) = headers
        .iter()
        .find(|h| h.name.get(hb).eq_ignore_ascii_case(b"authorization"))
        .map(|h| h.value.get(hb))
    else {
        return false;
    };
    let Some(token) = given
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .map(|_| given[7..].trim_ascii())
    else {
        return false;
    };
    // Every configured token is compared, in time independent of where the
    // bytes differ.
    admin.tokens.iter().fold(false, |found, t| {
        found | constant_time_eq(t.as_bytes(), token)
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
