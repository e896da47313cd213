//! Upstream response heads: parsed in place, framing decided per RFC 9112 §6.3.
//!
//! An upstream is trusted more than a client but not blindly: a response whose
//! framing is ambiguous (Content-Length with Transfer-Encoding, conflicting lengths)
//! is refused and the client gets 502, so a confused upstream cannot desync the
//! client connection.

use super::framing::FramingFields;
use super::request::{Header, HeaderRole, MAX_HEADERS};
use super::{is_hop_by_hop, trim_ows, BodyKind, Span};

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Span,
    pub minor: u8,
    pub body: BodyKind,
    /// Whether the upstream connection may carry another request afterwards.
    pub keep_alive: bool,
    /// The upstream's Content-Length, kept for HEAD and 304 answers.
    pub content_length: Option<u64>,
    /// Transfer codings besides the final `chunked` (e.g. `gzip, chunked`): the
    /// client must see the upstream's Transfer-Encoding as it was.
    pub extra_codings: bool,
    pub len: usize,
}

/// The upstream response cannot be framed; answer 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadResponse(pub &'static str);

/// Parses the response head at the start of `buf`. `head_request`: the request was
/// HEAD, so the response has no body whatever its headers say.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
    headers: &mut Vec<Header>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse("malformed response head")),
    };
    let status = resp.code.ok_or(BadResponse("no status"))?;
    let minor = resp.version.ok_or(BadResponse("no version"))?;
    let reason = Span::of(buf, resp.reason.unwrap_or("").as_bytes());

    headers.clear();
    let mut framing = FramingFields::default();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        let value_span = Span::of(buf, value);
        let mut role = HeaderRole::EndToEnd;
        match name.len() {
            _ if framing
                .observe(name, value, value_span)
                .map_err(|e| BadResponse(e.reason()))? =>
            {
                role = HeaderRole::HopByHop;
            }
            12 if name.eq_ignore_ascii_case(b"x-request-id") => role = HeaderRole::Replaced,
            _ if is_hop_by_hop(name) => role = HeaderRole::HopByHop,
            _ => {}
        }
        headers.push(Header {
            name: Span::of(buf, name),
            value: value_span,
            role,
        });
    }
    framing.mark_connection_named(buf, headers);

    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if no_body {
        BodyKind::None
    } else {
        match (framing.transfer_encoding, framing.content_length) {
            (true, Some(_)) => return Err(BadResponse("content-length with transfer-encoding")),
            (true, None) if framing.chunked_final => BodyKind::Chunked,
            (true, None) => BodyKind::UntilClose,
            (false, Some(0)) => BodyKind::None,
            (false, Some(n)) => BodyKind::Length(n),
            (false, None) => BodyKind::UntilClose,
        }
    };
    let keep_alive = body != BodyKind::UntilClose && framing.persistent(minor);
    Ok(Some(ResponseHead {
        status,
        reason,
        minor,
        body,
        keep_alive,
        content_length: framing.content_length,
        extra_codings: framing.codings > 1,
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, head: bool) -> Result<Option<ResponseHead>, BadResponse> {
        parse_response(s.as_bytes(), head, &mut Vec::new())
    }

    #[test]
    fn framing() {
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.status, r.body, r.keep_alive),
            (200, BodyKind::Length(12), true)
        );
        let r = parse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.body, BodyKind::Chunked);
        let r = parse("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((r.body, r.keep_alive), (BodyKind::UntilClose, false));
        let r = parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(r.body, BodyKind::None);
        let r = parse("HTTP/1.1 204 No Content\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((r.body, r.keep_alive), (BodyKind::None, true));
        let r = parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
        assert!(parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", false)
            .unwrap()
            .is_none());
    }
}
