//! HTTP/1.1 codec (RFC 9112): request heads parsed in place with strict framing,
//! the chunked transfer coding as an incremental scanner, upstream response heads,
//! and the small responses the gateway writes itself.
//!
//! Hand-written because it sits on the request path and must not copy: a parsed head
//! is a set of [`Span`]s into the connection's read buffer, and the chunked scanner
//! validates framing while the bytes are forwarded as they are.

pub mod chunked;
pub mod framing;
pub mod reply;
pub mod request;
pub mod response;

/// Byte range `start..end` into a buffer that the owner keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The span of `part` within `base`. A `part` that does not lie inside `base`
    /// (httparse returns a static `""` for an absent reason phrase) is the empty span.
    pub fn of(base: &[u8], part: &[u8]) -> Span {
        let b = base.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        if p < b || p + part.len() > b + base.len() {
            return Span::default();
        }
        let start = p - b;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    #[inline]
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    #[test]
    fn span_outside_base_is_empty() {
        let buf = b"HTTP/1.1 200\r\n";
        assert_eq!(Span::of(buf, &buf[9..12]).get(buf), b"200");
        assert_eq!(Span::of(buf, b""), Span::default());
        assert_eq!(Span::of(buf, b"elsewhere"), Span::default());
    }
}

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// Response only: the body runs until the upstream closes.
    UntilClose,
}

/// Headers that describe one connection, not the message: never forwarded (RFC 9110
/// §7.6.1, plus the proxy-* fields and `expect`, which the gateway answers itself).
/// Dispatches on length first: this runs for every header of every message.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    let is = |h: &[u8]| name.eq_ignore_ascii_case(h);
    match name.len() {
        2 => is(b"te"),
        6 => is(b"expect"),
        7 => is(b"trailer") || is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        16 => is(b"proxy-connection"),
        17 => is(b"transfer-encoding"),
        18 => is(b"proxy-authenticate"),
        19 => is(b"proxy-authorization"),
        _ => false,
    }
}

/// Splits a comma-separated header value into trimmed, non-empty elements.
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses a Content-Length value: 1 to 19 ASCII digits.
pub fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
