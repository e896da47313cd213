//! `https_only` on a plain listener: the 308 to the HTTPS port, unless a trusted
//! proxy in front already spoke HTTPS with the client.

use crate::gateway::{Gateway, HttpsRedirect};
use crate::http::reply::Reply;
use crate::http::request::{Header, RequestHead};
use crate::session::{ClientConn, ClientIo};

/// Whether a trusted proxy in front says the client spoke HTTPS to it
/// (`X-Forwarded-Proto: https`): then `https_only` has nothing to redirect, and a
/// redirect would loop behind a load balancer that terminates TLS.
pub(super) fn forwarded_https<S: ClientIo>(
    conn: &ClientConn<S>,
    gw: &Gateway,
    hb: &[u8],
    headers: &[Header],
) -> bool {
    conn.peer_trusted(&gw.trusted_proxies)
        && headers.iter().any(|h| {
            h.name.get(hb).eq_ignore_ascii_case(b"x-forwarded-proto")
                && h.value.get(hb).eq_ignore_ascii_case(b"https")
        })
}

/// `https_only` on a plain listener: 308 to the same target on the HTTPS port
/// (403 for a non-idempotent method when so configured, or without a Host to name).
pub(super) fn to_https(redirect: &HttpsRedirect, head: &RequestHead, hb: &[u8]) -> Reply {
    let host = head.host.map(|h| h.get(hb)).filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Reply::error(403);
    };
    if redirect.forbid_unsafe && !head.method.is_idempotent() {
        return Reply::error(403);
    }
    // The host without its port; an IPv6 literal keeps its brackets.
    let name = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[..i],
        _ => host,
    };
    let mut location = String::from("https://");
    location.push_str(&String::from_utf8_lossy(name));
    if redirect.port != 443 {
        location.push(':');
        location.push_str(itoa::Buffer::new().format(redirect.port));
    }
    // The target as sent (origin-form; an absolute-form target keeps its path;
    // `OPTIONS *` goes to the root).
    let target = match head.target.get(hb) {
        b"*" => &b"/"[..],
        t => t,
    };
    let path = match target.iter().position(|&b| b == b'/') {
        Some(i) if target.first() != Some(&b'/') => match target[i..].strip_prefix(b"//") {
            Some(rest) => rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |j| &rest[j..]),
            None => &target[i..],
        },
        _ => target,
    };
    location.push_str(&String::from_utf8_lossy(path));
    Reply::error(308).with_header("location", &location)
}
