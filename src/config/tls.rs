//! `[[server.tls]]` (HTTPS listeners) and an upstream's `tls = { … }` (see
//! docs/configuration.md). Shapes and defaults only: [`crate::tls`] loads the
//! certificates and builds the rustls configs, and reports bad files with the
//! field's line.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigDuration;

/// One HTTPS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    pub listen: Spanned<SocketAddr>,
    /// Certificate chains with their keys; the first is the default, the others are
    /// chosen by SNI (the names in each certificate).
    pub certs: Spanned<Vec<CertConfig>>,
    /// CA certificates (PEM) that client certificates must chain to: mTLS.
    pub client_ca: Option<Spanned<String>>,
    /// `"optional"` (default when `client_ca` is set) or `"required"`.
    pub client_auth: Option<Spanned<String>>,
    /// A CRL file (PEM or DER) for client certificates.
    pub crl: Option<Spanned<String>>,
    /// Plain listeners answer 308 to `https://` on this listener's port.
    #[serde(default)]
    pub https_only: bool,
    /// With `https_only`: `"redirect"` (308, default) or `"forbid"` (403) for
    /// requests whose method is not idempotent.
    pub https_only_unsafe: Option<Spanned<String>>,
    /// `Strict-Transport-Security` value sent on this listener's responses.
    pub hsts: Option<Spanned<String>>,
    /// `"1.2"` (default) or `"1.3"`.
    pub min_version: Option<Spanned<String>>,
    /// A client that has not finished the handshake by then is disconnected.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: ConfigDuration,
    /// TLS session tickets (resumption without server state); default on.
    #[serde(default = "yes")]
    pub session_tickets: bool,
}

/// A certificate chain and its private key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertConfig {
    /// PEM: the leaf first, then intermediates.
    pub cert: Spanned<String>,
    /// The PEM private key: a path, or a secret reference (`file:`, `env:`).
    pub key: Spanned<String>,
}

/// `tls = { … }` of an `[[upstream]]`: connect to the targets over TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// CA certificates (PEM) to verify the upstream with; default: the Mozilla roots.
    pub ca: Option<Spanned<String>>,
    /// The name sent in SNI and verified; default: the first target's host.
    pub sni: Option<Spanned<String>>,
    /// `false` accepts any certificate (testing only; logged at start).
    #[serde(default = "yes")]
    pub verify: bool,
}

fn default_handshake_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(10))
}

fn yes() -> bool {
    true
}
