//! The `mtls` authorizer: the caller is the connection's client certificate,
//! verified against the listener's `client_ca` during the TLS handshake; its
//! subject or a SAN must match one of `subjects` (any verified certificate when
//! the list is empty). Refusals are 403: there is no challenge a client could
//! answer within the request.

use super::super::{Reason, Verdict};
use crate::http::reply::Reply;
use crate::tls::ClientCert;

/// A compiled `type = "mtls"` authorizer.
#[derive(Debug)]
pub struct MtlsAuth {
    /// Patterns of [`ClientCert::matches`]; empty: any verified certificate.
    pub subjects: Vec<String>,
}

impl MtlsAuth {
    /// Admits the connection's verified certificate, if it matches.
    pub fn check(&self, name: &str, cert: Option<&ClientCert>) -> Verdict {
        match cert {
            Some(c) if self.subjects.is_empty() || self.subjects.iter().any(|p| c.matches(p)) => {
                Verdict::Continue
            }
            Some(c) => {
                tracing::debug!(authorizer = name, subject = %c.subject, "client certificate not allowed");
                Verdict::Deny(Reply::error(403), Reason::ClientCert)
            }
            None => {
                tracing::debug!(authorizer = name, "no verified client certificate");
                Verdict::Deny(Reply::error(403), Reason::ClientCert)
            }
        }
    }
}
