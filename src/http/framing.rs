//! The framing fields of a message head — Content-Length, Transfer-Encoding and
//! Connection — gathered header by header, for requests and responses alike. Each
//! parser decides what the fields mean for its side (RFC 9112 §6.1–6.3); this
//! module only reads them without ambiguity.

use super::request::{Header, HeaderRole};
use super::{list_items, parse_content_length, Span};

/// Why the framing fields cannot be read unambiguously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    BadLength,
    ConflictingLength,
    TooManyConnectionFields,
}

impl FramingError {
    pub fn reason(self) -> &'static str {
        match self {
            FramingError::BadLength => "invalid content-length",
            FramingError::ConflictingLength => "conflicting content-length",
            FramingError::TooManyConnectionFields => "too many connection headers",
        }
    }
}

/// What the framing headers of one head said.
#[derive(Debug, Default)]
pub struct FramingFields {
    pub content_length: Option<u64>,
    pub transfer_encoding: bool,
    /// Transfer codings listed, over all Transfer-Encoding fields.
    pub codings: usize,
    /// The last coding listed is `chunked`.
    pub chunked_final: bool,
    pub close: bool,
    pub keep_alive: bool,
    connection: [Option<Span>; 4],
    n_connection: usize,
}

impl FramingFields {
    /// Reads one header if it is a framing header; `Ok(true)` when it was (the
    /// caller marks it hop-by-hop).
    #[inline]
    pub fn observe(
        &mut self,
        name: &[u8],
        value: &[u8],
        value_span: Span,
    ) -> Result<bool, FramingError> {
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let n = parse_content_length(value).ok_or(FramingError::BadLength)?;
                if self.content_length.is_some_and(|c| c != n) {
                    return Err(FramingError::ConflictingLength);
                }
                self.content_length = Some(n);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding = true;
                for item in list_items(value) {
                    self.codings += 1;
                    self.chunked_final = item.eq_ignore_ascii_case(b"chunked");
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for item in list_items(value) {
                    self.close |= item.eq_ignore_ascii_case(b"close");
                    self.keep_alive |= item.eq_ignore_ascii_case(b"keep-alive");
                }
                let slot = self
                    .connection
                    .get_mut(self.n_connection)
                    .ok_or(FramingError::TooManyConnectionFields)?;
                *slot = Some(value_span);
                self.n_connection += 1;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Marks the headers that `Connection` names as hop-by-hop (RFC 9110 §7.6.1).
    pub fn mark_connection_named(&self, buf: &[u8], headers: &mut [Header]) {
        for v in self.connection[..self.n_connection].iter().flatten() {
            for token in list_items(v.get(buf)) {
                // The common tokens name no other field.
                if token.eq_ignore_ascii_case(b"keep-alive") || token.eq_ignore_ascii_case(b"close")
                {
                    continue;
                }
                for h in headers.iter_mut() {
                    if h.role == HeaderRole::EndToEnd && h.name.get(buf).eq_ignore_ascii_case(token)
                    {
                        h.role = HeaderRole::HopByHop;
                    }
                }
            }
        }
    }

    /// Whether the connection persists after this message, for HTTP/1.`minor`.
    pub fn persistent(&self, minor: u8) -> bool {
        if minor == 1 {
            !self.close
        } else {
            self.keep_alive && !self.close
        }
    }
}
