//! Header rewriting between client and upstream, both directions.
//!
//! The outgoing head is assembled in one reused buffer from slices of the parsed
//! head: end-to-end fields are copied as they came, hop-by-hop fields are dropped
//! (RFC 9110 §7.6.1, plus any field `Connection` names), and the gateway adds its
//! own framing, `x-forwarded-*` and `x-request-id`.

use std::net::IpAddr;

use crate::config::Cidr;
use crate::http::request::{Header, HeaderRole, RequestHead};
use crate::http::response::ResponseHead;
use crate::http::{list_items, BodyKind};

/// The client address to believe: the peer, or — when the peer is a trusted proxy —
/// the rightmost `x-forwarded-for` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, hb: &[u8], headers: &[Header], trusted: &[Cidr]) -> IpAddr {
    if trusted.is_empty() || !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    let mut ip = peer;
    for h in headers
        .iter()
        .rev()
        .filter(|h| h.role == HeaderRole::ForwardedFor)
    {
        let items: Vec<&[u8]> = list_items(h.value.get(hb)).collect();
        for item in items.iter().rev() {
            match std::str::from_utf8(item)
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok())
            {
                Some(a) => {
                    ip = a;
                    if !trusted.iter().any(|c| c.contains(a)) {
                        return a;
                    }
                }
                None => return ip,
            }
        }
    }
    ip
}

/// What the gateway adds to a forwarded request.
pub struct Forwarding<'a> {
    pub peer_ip: &'a str,
    pub peer_trusted: bool,
    pub request_id: &'a [u8],
    pub proto: &'static str,
    /// The Host to send when the client sent none (HTTP/1.0): the upstream's name.
    pub default_host: &'a str,
    /// Header lines the guards add (`name: value\r\n` each).
    pub extra: &'a [u8],
    /// The verified client certificate's `x-client-cert-*` lines, if any.
    pub client_cert: &'a [u8],
}

/// Appends the request head to send upstream: origin-form, HTTP/1.1.
pub fn upstream_request(
    out: &mut Vec<u8>,
    hb: &[u8],
    head: &RequestHead,
    headers: &[Header],
    fwd: &Forwarding<'_>,
) {
    out.extend_from_slice(head.method_span.get(hb));
    out.push(b' ');
    out.extend_from_slice(head.target.get(hb));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in headers {
        if matches!(h.role, HeaderRole::EndToEnd | HeaderRole::Host) {
            out.extend_from_slice(h.name.get(hb));
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.get(hb));
            out.extend_from_slice(b"\r\n");
        }
    }
    if head.host.is_none() {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(fwd.default_host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if fwd.peer_trusted {
        for h in headers
            .iter()
            .filter(|h| h.role == HeaderRole::ForwardedFor && !h.value.is_empty())
        {
            out.extend_from_slice(h.value.get(hb));
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(fwd.peer_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(fwd.proto.as_bytes());
    if let Some(host) = head.host {
        out.extend_from_slice(b"\r\nx-forwarded-host: ");
        out.extend_from_slice(host.get(hb));
    }
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(fwd.request_id);
    match head.body {
        BodyKind::Length(n) => {
            out.extend_from_slice(b"\r\ncontent-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
        BodyKind::Chunked => out.extend_from_slice(b"\r\ntransfer-encoding: chunked"),
        BodyKind::None | BodyKind::UntilClose => {}
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(fwd.extra);
    out.extend_from_slice(fwd.client_cert);
    out.extend_from_slice(b"\r\n");
}

/// How the response body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFraming {
    /// No body (HEAD, 204, 304, or empty); `content-length` as given, if any.
    Empty(Option<u64>),
    Length(u64),
    /// Chunked passed through as chunked.
    Chunked,
    /// Chunked from upstream, decoded for an HTTP/1.0 client, delimited by close.
    Decoded,
    /// Delimited by closing the client connection.
    Close,
}

/// The upstream's response head as parsed: its bytes, the head and its headers
/// (indexing into the bytes).
#[derive(Clone, Copy)]
pub struct UpstreamHead<'a> {
    pub bytes: &'a [u8],
    pub head: &'a ResponseHead,
    pub headers: &'a [Header],
}

/// What the gateway puts on an upstream's response head for the client.
#[derive(Clone, Copy)]
pub struct ClientAdditions<'a> {
    pub request_id: &'a [u8],
    /// Header lines the guards add (`name: value\r\n` each).
    pub extra: &'a [u8],
    /// The route has a CORS policy: the upstream's `Access-Control-*` fields
    /// are dropped, so the policy lives in one place (the gateway's are in `extra`).
    pub replace_access_control: bool,
}

/// Appends the response head for the client.
pub fn client_response(
    out: &mut Vec<u8>,
    upstream: UpstreamHead<'_>,
    adds: ClientAdditions<'_>,
    framing: ClientFraming,
    close: bool,
    http10_keep_alive: bool,
) {
    let UpstreamHead {
        bytes: ub,
        head: resp,
        headers,
    } = upstream;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(resp.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.get(ub));
    out.extend_from_slice(b"\r\n");
    for h in headers {
        if h.role == HeaderRole::EndToEnd
            && !(adds.replace_access_control && is_access_control(h.name.get(ub)))
        {
            out.extend_from_slice(h.name.get(ub));
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.get(ub));
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(adds.request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(adds.extra);
    match framing {
        ClientFraming::Length(n) | ClientFraming::Empty(Some(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        ClientFraming::Chunked if resp.extra_codings => {
            for h in headers
                .iter()
                .filter(|h| h.name.get(ub).eq_ignore_ascii_case(b"transfer-encoding"))
            {
                out.extend_from_slice(b"transfer-encoding: ");
                out.extend_from_slice(h.value.get(ub));
                out.extend_from_slice(b"\r\n");
            }
        }
        ClientFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ClientFraming::Empty(None) | ClientFraming::Decoded | ClientFraming::Close => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10_keep_alive {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn is_access_control(name: &[u8]) -> bool {
    const PREFIX: &[u8] = b"access-control-";
    name.len() > PREFIX.len() && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse_head;

    fn forward(raw: &str, trusted: bool) -> String {
        let mut hs = Vec::new();
        let head = parse_head(raw.as_bytes(), &mut hs).unwrap().unwrap();
        let mut out = Vec::new();
        let fwd = Forwarding {
            peer_ip: "10.0.0.1",
            peer_trusted: trusted,
            request_id: b"rid",
            proto: "http",
            default_host: "up",
            extra: b"",
            client_cert: b"",
        };
        upstream_request(&mut out, raw.as_bytes(), &head, &hs, &fwd);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rewrites_request() {
        let raw = "POST /a?b HTTP/1.1\r\nHost: api\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.2.3.4\r\nX-Request-Id: bad id\r\nAccept: */*\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            forward(raw, false),
            "POST /a?b HTTP/1.1\r\nHost: api\r\nAccept: */*\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: api\r\nx-request-id: rid\r\ncontent-length: 3\r\n\r\n"
        );
        assert!(forward(raw, true).contains("\r\nx-forwarded-for: 1.2.3.4, 10.0.0.1\r\n"));
    }

    #[test]
    fn http10_without_host_gets_one() {
        let out = forward("GET / HTTP/1.0\r\n\r\n", false);
        assert!(
            out.starts_with("GET / HTTP/1.1\r\nhost: up\r\nx-forwarded-for: 10.0.0.1\r\n"),
            "{out}"
        );
    }

    #[test]
    fn trusted_client_ip() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 8.8.8.8, 10.0.0.9\r\n\r\n";
        let mut hs = Vec::new();
        parse_head(raw.as_bytes(), &mut hs).unwrap().unwrap();
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, raw.as_bytes(), &hs, &trusted),
            "8.8.8.8".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, raw.as_bytes(), &hs, &[]), peer);
        let other: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(other, raw.as_bytes(), &hs, &trusted), other);
    }
}
