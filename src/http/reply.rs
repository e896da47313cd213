//! Responses the gateway writes itself: errors (`{"message": ...}` as AWS API Gateway
//! answers) and mock routes. Rendered into the caller's output buffer.

/// A response made by the gateway rather than an upstream.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: std::borrow::Cow<'static, str>,
    pub body: std::borrow::Cow<'static, str>,
    /// Extra header lines, each `name: value\r\n`.
    pub extra: String,
}

impl Reply {
    /// The JSON error for `status` (`{"message":"Not Found"}`).
    pub fn error(status: u16) -> Reply {
        Reply {
            status,
            content_type: std::borrow::Cow::Borrowed("application/json"),
            body: std::borrow::Cow::Borrowed(error_body(status)),
            extra: String::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.extra.push_str(name);
        self.extra.push_str(": ");
        self.extra.push_str(value);
        self.extra.push_str("\r\n");
        self
    }
}

fn error_body(status: u16) -> &'static str {
    match status {
        308 => r#"{"message":"Permanent Redirect"}"#,
        400 => r#"{"message":"Bad Request"}"#,
        401 => r#"{"message":"Unauthorized"}"#,
        403 => r#"{"message":"Forbidden"}"#,
        404 => r#"{"message":"Not Found"}"#,
        405 => r#"{"message":"Method Not Allowed"}"#,
        408 => r#"{"message":"Request Timeout"}"#,
        413 => r#"{"message":"Request Entity Too Large"}"#,
        429 => r#"{"message":"Too Many Requests"}"#,
        431 => r#"{"message":"Request Header Fields Too Large"}"#,
        502 => r#"{"message":"Bad Gateway"}"#,
        503 => r#"{"message":"Service Unavailable"}"#,
        504 => r#"{"message":"Gateway Timeout"}"#,
        _ => r#"{"message":"Internal Server Error"}"#,
    }
}

/// The standard reason phrase, for the status lines the gateway writes.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// What the `connection` header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: nothing to say.
    KeepAlive,
    /// An HTTP/1.0 client that asked for keep-alive must be told it holds.
    KeepAlive10,
    Close,
}

impl Persistence {
    /// For a request of HTTP/1.`minor` whose connection stays open if `keep`.
    pub fn for_request(keep: bool, minor: u8) -> Persistence {
        match (keep, minor) {
            (false, _) => Persistence::Close,
            (true, 0) => Persistence::KeepAlive10,
            (true, _) => Persistence::KeepAlive,
        }
    }
}

/// Appends `reply` as a full HTTP/1.1 response to `out`. `head_only`: a HEAD request,
/// send the headers (with the length the body would have) and no body. 204 and 304
/// never carry a body or a length; an empty `content_type` is left out.
pub fn render(
    out: &mut Vec<u8>,
    reply: &Reply,
    request_id: &[u8],
    extra: &[u8],
    persistence: Persistence,
    head_only: bool,
) {
    let bodiless = matches!(reply.status, 204 | 304);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(reply.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(reply.status).as_bytes());
    if !reply.content_type.is_empty() {
        out.extend_from_slice(b"\r\ncontent-type: ");
        out.extend_from_slice(reply.content_type.as_bytes());
    }
    if !bodiless {
        out.extend_from_slice(b"\r\ncontent-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(reply.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(reply.extra.as_bytes());
    out.extend_from_slice(extra);
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAlive10 => out.extend_from_slice(b"connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodiless {
        out.extend_from_slice(reply.body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_error() {
        let mut out = Vec::new();
        render(
            &mut out,
            &Reply::error(404),
            b"id-1",
            b"",
            Persistence::KeepAlive,
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 23\r\nx-request-id: id-1\r\n\r\n{\"message\":\"Not Found\"}"
        );
    }
}
