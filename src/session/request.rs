//! One request's state as the connection loop carries it through its phases
//! (route, guard, act, log): where its head lies in the connection's buffer, the
//! parsed head and header index, who sent it, its id, the header lines the guards
//! added, the body limit of the route it was given, and what the access log
//! learns about the exchange. The phases take it by reference; nothing of it
//! outlives the request except the capacity of `additions`, which goes back to
//! the connection.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::guard::Additions;
use crate::http::request::{Header, RequestHead};

/// One request in flight.
pub struct Request<'r> {
    /// Where the head starts in the connection's buffer (`conn.buf[base..]`).
    pub base: usize,
    pub head: &'r RequestHead,
    /// The head's header index; guards mark the credentials they consume.
    pub headers: &'r mut [Header],
    pub id: RequestId,
    /// The client address the gateway believes (peer, or from trusted
    /// `X-Forwarded-For`).
    pub client_ip: IpAddr,
    /// The path routes and guards see, when normalization changed it.
    pub normalized: Option<Vec<u8>>,
    /// Header lines the guards add for the upstream and for the client.
    pub additions: Additions,
    /// The largest body the route accepts (the gateway's default when unrouted).
    pub body_limit: u64,
    /// The route has a CORS policy: the upstream's `Access-Control-*` response
    /// fields are dropped, and the gateway's (in `additions.client`) stand.
    pub cors: bool,
    /// When the request began (its head was read).
    pub started: Instant,
    pub exchange: Exchange,
}

impl Request<'_> {
    /// The head's bytes, out of the connection's buffer.
    pub fn head_bytes<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.base..self.base + self.head.len]
    }

    /// The path as routes and guards see it (`hb`: the head's bytes).
    pub fn path<'b>(&'b self, hb: &'b [u8]) -> &'b [u8] {
        match &self.normalized {
            Some(p) => p,
            None => self.head.path.get(hb),
        }
    }
}

/// The request id the exchange carries: the client's `X-Request-Id` if sane,
/// else a fresh UUID. Held inline (no allocation per request).
pub struct RequestId {
    bytes: [u8; 128],
    len: usize,
}

impl RequestId {
    /// `client`: the id the client sent (the head parser bounds it to 128 bytes);
    /// `fresh`: a new id for when it sent none.
    pub fn new(client: Option<&[u8]>, fresh: impl FnOnce() -> [u8; 36]) -> RequestId {
        let mut id = RequestId {
            bytes: [0; 128],
            len: 0,
        };
        match client {
            Some(s) => {
                id.len = s.len().min(id.bytes.len());
                id.bytes[..id.len].copy_from_slice(&s[..id.len]);
            }
            None => {
                id.len = 36;
                id.bytes[..36].copy_from_slice(&fresh());
            }
        }
        id
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the access log learns about a request.
#[derive(Debug, Default)]
pub struct Exchange {
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream: Option<SocketAddr>,
    pub upstream_time: Option<Duration>,
    /// The stage's reason, when a guard refused the request.
    pub denied: Option<crate::guard::Reason>,
    /// For the access log (set only when there is one): who the request is,
    /// and the WAF rule ids it matched.
    pub identity: Option<String>,
    pub waf_rules: Option<String>,
}
