//! TLS with rustls (aws-lc-rs): HTTPS listeners and mTLS ([`server`]), what a
//! verified client certificate says ([`client_cert`]), TLS to upstreams
//! ([`upstream`]), and the stream type both sides use ([`stream`]).
//!
//! This module builds configs and wraps sockets; it does not know HTTP. The
//! connection loop serves a [`stream::TlsStream`] exactly like a TCP stream.

pub mod client_cert;
pub mod server;
pub mod stream;
pub mod upstream;

pub use client_cert::ClientCert;
pub use server::ServerTls;
pub use stream::TlsStream;
pub use upstream::UpstreamTls;

/// A client-side TLS connection to an upstream.
pub type ClientTlsStream = TlsStream<rustls::ClientConnection>;
/// A server-side TLS connection from a client.
pub type ServerTlsStream = TlsStream<rustls::ServerConnection>;
