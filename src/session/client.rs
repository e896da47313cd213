//! One client connection as the server and the proxy both see it: the stream
//! (TCP, or TLS over TCP), its read buffer, its deadline and what its TLS
//! handshake established.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;

use crate::config::Cidr;
use crate::guard::Additions;
use crate::http::request::Header;
use crate::time::Deadline;

/// A client transport the connection loop serves: TCP, or TLS over TCP.
pub trait ClientIo: monoio::io::AsyncReadRent + monoio::io::AsyncWriteRent + 'static {}
impl<T: monoio::io::AsyncReadRent + monoio::io::AsyncWriteRent + 'static> ClientIo for T {}

/// One client connection and its read buffer. `S`: a TCP stream, or a TLS stream
/// over one.
pub struct ClientConn<S> {
    pub stream: S,
    /// Bytes read and not yet consumed are `buf[start..]`.
    pub buf: Vec<u8>,
    pub start: usize,
    pub peer: SocketAddr,
    /// The peer's IP as text, formatted once per connection.
    pub peer_ip: String,
    /// Reused for each upstream response head.
    pub resp_headers: Vec<Header>,
    /// Bytes of the next request read while finishing this one's body. Only ever
    /// filled once `buf` is fully consumed, so it replaces `buf` after the request.
    pub carry: Vec<u8>,
    /// Bounds whichever read or write this connection's request waits on.
    pub deadline: Deadline,
    /// How long a read from or a write to the client may stall once a request
    /// has begun (`[server].idle_timeout` of the snapshot serving it).
    pub idle_timeout: Duration,
    /// Set on a TLS connection.
    pub tls: Option<ConnTls>,
    /// A response broke off midway (the upstream failed mid-body): a TLS client
    /// must then see the connection end without close_notify, which tells it the
    /// response was truncated.
    pub truncated: bool,
    /// The header lines the last request added, kept for their capacity: a
    /// connection allocates them once, not per request (HSTS, RateLimit and
    /// identity headers are added to most requests of the routes that have them).
    pub additions: Additions,
}

/// What a TLS connection established at its handshake.
pub struct ConnTls {
    /// Which `[[server.tls]]` entry accepted it.
    pub listener: usize,
    /// The client's certificate, verified against `client_ca`.
    pub client_cert: Option<Box<crate::tls::ClientCert>>,
    /// The negotiated protocol version (`TLSv1.3`, `TLSv1.2`).
    pub version: &'static str,
}

impl<S: ClientIo> ClientConn<S> {
    /// Writes all of `buf` to the client within `idle_timeout`; the buffer comes
    /// back on success (on failure the connection is done with anyway).
    pub async fn write_all<T: IoBuf + 'static>(&mut self, buf: T) -> std::io::Result<T> {
        match self
            .deadline
            .within(self.idle_timeout, self.stream.write_all(buf))
            .await
        {
            Ok((Ok(_), buf)) => Ok(buf),
            Ok((Err(e), _)) => Err(e),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    pub fn peer_trusted(&self, trusted: &[Cidr]) -> bool {
        !trusted.is_empty() && trusted.iter().any(|c| c.contains(self.peer.ip()))
    }
}
