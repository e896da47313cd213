//! External authorizers (AWS Lambda-authorizer style, over HTTP): the gateway asks
//! a service of the operator's whether a request may pass.
//!
//! The identity sources (`header:NAME`, `query:NAME`, `cookie:NAME`) must all be
//! present, else 401 without a call (AWS semantics). The authorizer gets a `POST`
//! to `url` with a JSON body: the identity values, method, path, client IP, request
//! id and the configured `forward_headers`. Its answer decides: 2xx allows, and its
//! headers starting with `response_headers_prefix` go to the upstream; 401 and 403
//! deny with that status; anything else, a timeout or a failed connection denies
//! (503 is not used: the client gets 401/403 semantics) — or allows with
//! `failure_mode = "allow"`.
//!
//! Decisions (allow and deny) are cached per core for `cache_ttl`, keyed by the
//! identity values (compared in full, not by hash). Connections to the authorizer
//! are the proxy's ([`UpstreamConn`]), kept alive in a per-core
//! [`UpstreamPools`] of their own; the exchange itself is hand-written over
//! monoio because it runs on the request path of the core.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::jwt::TokenSource;
use crate::http::request::Header;
use crate::http::response::parse_response;
use crate::http::BodyKind;
use crate::limit::BoundedMap;
use crate::time::{Deadline, Timers};
use crate::upstream::conn::{ConnectError, UpstreamConn};
use crate::upstream::pool::UpstreamPools;

const CACHE_ENTRIES: usize = 10_000;
const IDLE_PER_AUTHORIZER: usize = 16;
/// How long an idle connection to an authorizer is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest answer head and body read from an authorizer.
const MAX_ANSWER: usize = 64 << 10;

/// An identity source: `header:NAME` (the whole value), `query:NAME`, `cookie:NAME`.
pub fn parse_identity(s: &str) -> Option<TokenSource> {
    match TokenSource::parse(s)? {
        TokenSource::Bearer(name) => Some(TokenSource::Header(name)),
        other => Some(other),
    }
}

/// A compiled `type = "external"` authorizer.
#[derive(Debug)]
pub struct ExternalAuth {
    /// Distinguishes this compilation's cache entries from an earlier config's.
    pub cache_id: u64,
    pub addr: SocketAddr,
    /// `host[:port]` for the Host header, and the path of `url`.
    pub host: String,
    pub path: String,
    /// The sources, with their labels as configured.
    pub identity: Vec<(String, TokenSource)>,
    pub cache_ttl: Duration,
    pub timeout: Duration,
    pub fail_open: bool,
    pub forward_headers: Vec<String>,
    pub response_prefix: String,
}

/// What the authorizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; header lines for the upstream.
    Allow(String),
    /// Denied with 401 (and the authorizer's WWW-Authenticate, if any) or 403.
    Deny(u16, Option<String>),
}

struct Cached {
    identity: Box<[u8]>,
    cache_id: u64,
    decision: Decision,
    until: Instant,
}

/// A core's external-authorizer state: cached decisions and idle connections.
pub struct ExternalState {
    cache: RefCell<BoundedMap<u64, Cached>>,
    idle: RefCell<UpstreamPools>,
    timers: Rc<Timers>,
}

impl ExternalState {
    pub fn new(timers: Rc<Timers>) -> ExternalState {
        ExternalState {
            cache: RefCell::new(BoundedMap::new(CACHE_ENTRIES)),
            idle: RefCell::new(UpstreamPools::default()),
            timers,
        }
    }
}

/// The facts of a request the authorizer is told.
pub struct Question<'a> {
    /// The identity values, in `identity` order.
    pub identity: &'a [&'a [u8]],
    pub method: &'a [u8],
    pub path: &'a [u8],
    pub client_ip: std::net::IpAddr,
    pub request_id: &'a [u8],
    /// `forward_headers` present on the request: (name, value).
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl ExternalAuth {
    /// Asks (or remembers) whether the request may pass, and whether the
    /// answer came from the decision cache (`None`: no cache configured).
    pub async fn decide(
        &self,
        state: &ExternalState,
        q: &Question<'_>,
    ) -> (Decision, Option<bool>) {
        let cached = (!self.cache_ttl.is_zero()).then_some(false);
        let decision = match self.decide_cached(state, q).await {
            (d, true) => return (d, Some(true)),
            (d, false) => d,
        };
        (decision, cached)
    }

    async fn decide_cached(&self, state: &ExternalState, q: &Question<'_>) -> (Decision, bool) {
        let mut ident = Vec::with_capacity(64);
        for v in q.identity {
            ident.extend_from_slice(&(v.len() as u32).to_le_bytes());
            ident.extend_from_slice(v);
        }
        let key = {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one((self.cache_id, &ident))
        };
        let now = Instant::now();
        if !self.cache_ttl.is_zero() {
            let mut cache = state.cache.borrow_mut();
            if let Some(slot) = cache.slot_of(&key) {
                let c = cache.at(slot);
                if c.cache_id == self.cache_id && c.identity[..] == ident[..] && now < c.until {
                    return (c.decision.clone(), true);
                }
            }
        }
        // Boxed: a call to the authorizer (~1.3 KiB of state) happens only on a cache
        // miss, and unboxed it would size every request's future on every route.
        let decision = match Box::pin(self.ask(state, q)).await {
            Ok(d) => d,
            Err(reason) => {
                tracing::warn!(authorizer = %self.host, reason, "external authorizer failed");
                let d = if self.fail_open {
                    Decision::Allow(String::new())
                } else {
                    Decision::Deny(403, None)
                };
                return (d, false);
            }
        };
        if !self.cache_ttl.is_zero() {
            let entry = Cached {
                identity: ident.into(),
                cache_id: self.cache_id,
                decision: decision.clone(),
                until: now + self.cache_ttl,
            };
            let mut cache = state.cache.borrow_mut();
            match cache.slot_of(&key) {
                Some(slot) => *cache.at(slot) = entry,
                None => {
                    let epoch = now;
                    cache.insert(key, entry, |c| {
                        c.until.saturating_duration_since(epoch).as_millis() as u64
                    });
                }
            }
        }
        (decision, false)
    }

    fn question_body(&self, q: &Question<'_>) -> Vec<u8> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let identity: serde_json::Map<String, serde_json::Value> = self
            .identity
            .iter()
            .zip(q.identity)
            .map(|((label, _), v)| (label.clone(), text(v).into()))
            .collect();
        let headers: serde_json::Map<String, serde_json::Value> = q
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_string(), text(v).into()))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "type": "REQUEST",
            "identity": identity,
            "method": text(q.method),
            "path": text(q.path),
            "client_ip": q.client_ip.to_string(),
            "request_id": text(q.request_id),
            "headers": headers,
        }))
        .unwrap_or_default()
    }

    /// One exchange with the authorizer, within `timeout`.
    async fn ask(&self, state: &ExternalState, q: &Question<'_>) -> Result<Decision, &'static str> {
        let body = self.question_body(q);
        let mut req = Vec::with_capacity(256 + body.len());
        req.extend_from_slice(b"POST ");
        req.extend_from_slice(self.path.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        req.extend_from_slice(self.host.as_bytes());
        req.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
        req.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        req.extend_from_slice(b"\r\n\r\n");
        req.extend_from_slice(&body);

        let asked = Instant::now();
        let mut deadline = Deadline::new(&state.timers);
        let until = state.timers.deadline_tick(self.timeout);
        // A pooled connection first; if it turns out dead before any answer, one
        // fresh try (the authorizer's decision is idempotent).
        let pooled =
            state
                .idle
                .borrow_mut()
                .take_idle(self.addr, None, IDLE_TIMEOUT, state.timers.now());
        let mut last = "no attempt";
        for conn in [pooled, None] {
            let fresh = conn.is_none();
            let mut stream = match conn {
                Some(s) => s,
                None => {
                    let remaining = self.timeout.saturating_sub(asked.elapsed());
                    // Boxed: a connect carries TLS handshake state, and unboxed it
                    // would grow every request's future (the guard pipeline's is
                    // part of it), which is copied whole into its box per request.
                    let connect = Box::pin(UpstreamConn::connect(
                        &mut deadline,
                        self.addr,
                        None,
                        remaining,
                        self.timeout,
                    ));
                    match connect.await {
                        Ok(s) => s,
                        Err(ConnectError::Failed) => return Err("connect failed"),
                        Err(ConnectError::TimedOut) => return Err("timeout"),
                    }
                }
            };
            match deadline
                .at_tick(
                    until,
                    exchange(&mut stream, req.clone(), &self.response_prefix),
                )
                .await
            {
                Err(_) => return Err("timeout"),
                Ok(Ok((decision, reusable))) => {
                    if reusable {
                        state.idle.borrow_mut().put_idle(
                            self.addr,
                            stream,
                            IDLE_PER_AUTHORIZER,
                            state.timers.now(),
                        );
                    }
                    return Ok(decision);
                }
                Ok(Err(e)) => {
                    last = e;
                    if fresh {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

/// Writes the question, reads the answer. `(decision, connection reusable)`.
async fn exchange(
    stream: &mut UpstreamConn,
    req: Vec<u8>,
    prefix: &str,
) -> Result<(Decision, bool), &'static str> {
    let (r, _) = stream.write_all(req).await;
    r.map_err(|_| "write failed")?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut headers: Vec<Header> = Vec::new();
    let head = loop {
        if let Some(h) = parse_response(&buf, false, &mut headers).map_err(|e| e.0)? {
            break h;
        }
        if buf.len() >= MAX_ANSWER {
            return Err("answer head too large");
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let len = buf.len();
        let cap = buf.capacity();
        let (r, b) = stream.read(buf.slice_mut(len..cap)).await;
        buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => return Err("connection closed before an answer"),
            Ok(_) => {}
        }
    };
    // Drain a length-delimited body so the connection can be reused.
    let reusable = match head.body {
        BodyKind::None => head.keep_alive,
        BodyKind::Length(n) if n <= MAX_ANSWER as u64 => {
            let want = head.len + n as usize;
            while buf.len() < want {
                if buf.capacity() < want {
                    buf.reserve(want - buf.len());
                }
                let len = buf.len();
                let cap = buf.capacity();
                let (r, b) = stream.read(buf.slice_mut(len..cap)).await;
                buf = b.into_inner();
                match r {
                    Ok(0) | Err(_) => return Err("connection closed in the answer body"),
                    Ok(_) => {}
                }
            }
            head.keep_alive && buf.len() == want
        }
        _ => false,
    };
    let hb = &buf[..head.len];
    let decision = match head.status {
        200..=299 => {
            let mut up = String::new();
            for h in &headers {
                let name = h.name.get(hb);
                let value = h.value.get(hb);
                let named = name.len() > prefix.len()
                    && name[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
                if named
                    && value
                        .iter()
                        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
                {
                    up.push_str(&String::from_utf8_lossy(name).to_ascii_lowercase());
                    up.push_str(": ");
                    up.push_str(&String::from_utf8_lossy(value));
                    up.push_str("\r\n");
                }
            }
            Decision::Allow(up)
        }
        401 => {
            let challenge = headers
                .iter()
                .find(|h| h.name.get(hb).eq_ignore_ascii_case(b"www-authenticate"))
                .map(|h| String::from_utf8_lossy(h.value.get(hb)).into_owned())
                .filter(|v| v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)));
            Decision::Deny(401, challenge)
        }
        403 => Decision::Deny(403, None),
        _ => return Err("unexpected status"),
    };
    Ok((decision, reusable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources() {
        assert_eq!(
            parse_identity("header:Authorization"),
            Some(TokenSource::Header(b"authorization"[..].into()))
        );
        assert_eq!(
            parse_identity("query:token"),
            Some(TokenSource::Query(b"token"[..].into()))
        );
        assert!(parse_identity("body:x").is_none());
        assert!(parse_identity("header:").is_none());
    }
}
