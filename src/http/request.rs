//! Request heads: parsed in place (httparse) and held to RFC 9112's framing rules,
//! the ones request smuggling exploits.
//!
//! [`parse_head`] never allocates on success beyond the caller's reused header
//! vector; every field is a [`Span`] into the read buffer. Anything ambiguous is an
//! error with the status to answer; the caller closes the connection after a 400.

use super::framing::FramingFields;
use super::{is_hop_by_hop, trim_ows, BodyKind, Span};

/// The most header fields a request may carry; more is answered 431.
pub const MAX_HEADERS: usize = 100;

/// Request methods the gateway treats specially; the rest are `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Other,
}

impl Method {
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// Idempotent per RFC 9110 §9.2.2: safe to send twice.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// What a header means to the gateway; decides whether it is forwarded as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRole {
    /// Forwarded unchanged.
    EndToEnd,
    /// Connection-specific or framing: dropped, the gateway writes its own.
    HopByHop,
    /// Replaced by the gateway (`x-forwarded-host`, `-proto`, `x-request-id`, and
    /// the identity fields `x-api-key-name` and `x-usage-plan`).
    Replaced,
    /// `x-forwarded-for`: kept and extended only when the peer is a trusted proxy.
    ForwardedFor,
    Host,
    /// A credential a guard consumed (an API key): not forwarded.
    Credential,
}

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub name: Span,
    pub value: Span,
    pub role: HeaderRole,
}

/// A parsed request head; spans point into the buffer given to [`parse_head`].
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub method_span: Span,
    /// The origin-form target to forward: path and query.
    pub target: Span,
    /// The path alone (no query), what routes match.
    pub path: Span,
    /// Route on [`normalize_path`] of `path`, not on `path` as sent.
    pub normalize: bool,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub host: Option<Span>,
    pub body: BodyKind,
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub request_id: Option<Span>,
    /// Bytes of the head, including the final empty line.
    pub len: usize,
}

/// Why a head was refused, as the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadError {
    pub status: u16,
    pub reason: &'static str,
}

const fn bad(reason: &'static str) -> HeadError {
    HeadError {
        status: 400,
        reason,
    }
}

/// Parses the head at the start of `buf`. `Ok(None)`: not complete yet.
/// `headers` is cleared and filled with the request's header fields.
pub fn parse_head(buf: &[u8], headers: &mut Vec<Header>) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised header slots: initialising 100 of them costs more than parsing
    // a typical head.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError {
                status: 431,
                reason: "too many header fields",
            })
        }
        Err(_) => return Err(bad("malformed request head")),
    };

    let method_bytes = req.method.ok_or(bad("no method"))?.as_bytes();
    let method = Method::from_bytes(method_bytes);
    if method_bytes == b"CONNECT" {
        return Err(HeadError {
            status: 405,
            reason: "CONNECT is not supported",
        });
    }
    let minor = req.version.ok_or(bad("no version"))?;
    let raw_target = req.path.ok_or(bad("no target"))?;

    headers.clear();
    let mut host: Option<Span> = None;
    let mut hosts = 0;
    let mut framing = FramingFields::default();
    let mut expect_continue = false;
    let mut request_id = None;

    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        let name_span = Span::of(buf, name);
        let value_span = Span::of(buf, value);
        let mut role = HeaderRole::EndToEnd;
        match name.len() {
            _ if framing
                .observe(name, value, value_span)
                .map_err(|e| bad(e.reason()))? =>
            {
                role = HeaderRole::HopByHop;
            }
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                host = Some(value_span);
                role = HeaderRole::Host;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                }
                role = HeaderRole::HopByHop;
            }
            12 if name.eq_ignore_ascii_case(b"x-request-id") => {
                request_id = is_sane_request_id(value).then_some(value_span);
                role = HeaderRole::Replaced;
            }
            15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => {
                role = HeaderRole::ForwardedFor;
            }
            // Identity the gateway establishes (API key stage, SigV4's principal):
            // never the client's, on every route, whatever its stages.
            11 | 12 | 14
                if name.eq_ignore_ascii_case(b"x-usage-plan")
                    || name.eq_ignore_ascii_case(b"x-api-key-name")
                    || name.eq_ignore_ascii_case(b"x-principal") =>
            {
                role = HeaderRole::Replaced;
            }
            16 | 17
                if name.eq_ignore_ascii_case(b"x-forwarded-host")
                    || name.eq_ignore_ascii_case(b"x-forwarded-proto") =>
            {
                role = HeaderRole::Replaced;
            }
            // Facts of the verified client certificate (mTLS): only the gateway's.
            n if n > 14 && name[..14].eq_ignore_ascii_case(b"x-client-cert-") => {
                role = HeaderRole::Replaced;
            }
            // Not forwarded (nginx's default): CGI-style servers read `X_Client_Cert`
            // as `X-Client-Cert`, which would let a client pass for the gateway.
            _ if name.contains(&b'_') => role = HeaderRole::HopByHop,
            _ if is_hop_by_hop(name) => role = HeaderRole::HopByHop,
            _ => {}
        }
        headers.push(Header {
            name: name_span,
            value: value_span,
            role,
        });
    }

    framing.mark_connection_named(buf, headers);

    let body = match (framing.transfer_encoding, framing.content_length) {
        (true, Some(_)) => return Err(bad("content-length with transfer-encoding")),
        (true, None) if minor == 0 => return Err(bad("transfer-encoding in HTTP/1.0")),
        (true, None) if framing.codings == 1 && framing.chunked_final => BodyKind::Chunked,
        (true, None) => return Err(bad("transfer-encoding other than chunked")),
        (false, Some(0)) | (false, None) => BodyKind::None,
        (false, Some(n)) => BodyKind::Length(n),
    };

    if hosts > 1 {
        return Err(bad("more than one host"));
    }
    if hosts == 0 && minor == 1 {
        return Err(bad("missing host"));
    }
    if let Some(h) = host {
        if !is_valid_authority(h.get(buf)) {
            return Err(bad("invalid host"));
        }
    }

    let (target, path, normalize) = split_target(buf, raw_target, host, method)?;

    Ok(Some(RequestHead {
        method,
        method_span: Span::of(buf, method_bytes),
        target,
        path,
        minor,
        host,
        body,
        normalize,
        keep_alive: framing.persistent(minor),
        expect_continue: expect_continue && minor == 1,
        request_id,
        len,
    }))
}

/// Returns the origin-form target and the path within it. Absolute-form must name
/// the same authority as Host (RFC 9112 §3.2.2); dot segments are refused so a route
/// cannot be sidestepped with `/public/../admin`.
fn split_target(
    buf: &[u8],
    raw: &str,
    host: Option<Span>,
    method: Method,
) -> Result<(Span, Span, bool), HeadError> {
    let bytes = raw.as_bytes();
    let target: &[u8] =
        if bytes.first() == Some(&b'/') || (bytes == b"*" && method == Method::Options) {
            bytes
        } else if let Some(rest) = strip_scheme(bytes) {
            let end = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            let authority = &rest[..end];
            let host = host.map(|h| h.get(buf)).unwrap_or(b"");
            if authority.is_empty() || !authority.eq_ignore_ascii_case(host) {
                return Err(bad("absolute-form authority differs from host"));
            }
            let t = &rest[end..];
            if t.is_empty() || t[0] != b'/' {
                // `http://host` or `http://host?q`: forwarding needs an origin-form; refuse
                // the odd shapes rather than invent a path.
                return Err(bad("absolute-form without path"));
            }
            t
        } else {
            return Err(bad("invalid request target"));
        };
    let path_len = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    if target.contains(&b'#') {
        return Err(bad("fragment in request target"));
    }
    let path = &target[..path_len];
    let normalize = check_path(path)?;
    Ok((Span::of(buf, target), Span::of(buf, path), normalize))
}

/// Refuses paths an upstream could read as a different path than the router does:
/// dot segments (also `%2e` and `..;param`), encoded `/` or `\\`, a raw `\\`, and
/// broken percent-encoding. Returns whether routing must use [`normalize_path`]
/// (the path has `%` escapes, empty segments or `;` parameters).
fn check_path(path: &[u8]) -> Result<bool, HeadError> {
    let mut normalize = false;
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'\\' => return Err(bad("backslash in path")),
            b'%' => {
                let decoded = match (
                    path.get(i + 1).and_then(|&b| crate::hex::digit(b)),
                    path.get(i + 2).and_then(|&b| crate::hex::digit(b)),
                ) {
                    (Some(h), Some(l)) => (h << 4) | l,
                    _ => return Err(bad("invalid percent-encoding in path")),
                };
                if matches!(decoded, b'/' | b'\\' | 0) {
                    return Err(bad("encoded slash or NUL in path"));
                }
                normalize = true;
                i += 3;
                continue;
            }
            b'/' if path.get(i + 1) == Some(&b'/') => normalize = true,
            b';' => normalize = true,
            _ => {}
        }
        i += 1;
    }
    if has_dot_segment(path) {
        return Err(bad("dot segment in path"));
    }
    Ok(normalize)
}

/// The path as most upstreams read it, for routing: percent-escapes of unreserved
/// characters decoded (`/%61dmin` is `/admin`), other escapes upper-cased, runs of
/// `/` merged, `;parameters` dropped from segments. Only called for paths [`check_path`] flagged.
pub fn normalize_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' && i + 2 < path.len() {
            if let (Some(h), Some(l)) = (
                crate::hex::digit(path[i + 1]),
                crate::hex::digit(path[i + 2]),
            ) {
                let c = (h << 4) | l;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c);
                } else {
                    out.push(b'%');
                    out.push(path[i + 1].to_ascii_uppercase());
                    out.push(path[i + 2].to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        if b == b';' {
            // Path parameters (`/admin;x/`): servlet containers drop them, so the
            // router must too or `/admin;x/secret` would miss the `/admin` route.
            while i < path.len() && path[i] != b'/' {
                i += 1;
            }
            continue;
        }
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
        i += 1;
    }
    out
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

/// A path segment that is `.` or `..`, literally or percent-encoded (`%2e`).
pub fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|seg| {
        // `..;jsessionid=x` is `..` to servlet containers.
        let seg = seg.split(|&b| b == b';').next().unwrap_or(seg);
        let mut dots = 0;
        let mut i = 0;
        while i < seg.len() {
            if seg[i] == b'.' {
                i += 1;
            } else if seg.len() >= i + 3
                && seg[i] == b'%'
                && seg[i + 1] == b'2'
                && (seg[i + 2] | 0x20) == b'e'
            {
                i += 3;
            } else {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

/// `host[:port]` with the characters a URI authority allows (no userinfo).
fn is_valid_authority(h: &[u8]) -> bool {
    h.len() <= 255
        && h.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}

/// A client-sent request id is kept when it is 1–128 of `[A-Za-z0-9._:-]`.
pub fn is_sane_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests;
