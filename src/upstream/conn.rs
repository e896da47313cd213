//! [`UpstreamConn`]: a connection to an upstream target — plain TCP, or TLS over
//! TCP when the upstream sets `tls` — so the pool and the forwarder handle both as
//! one type.

use std::sync::Arc;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::time::Deadline;
use crate::tls::{ClientTlsStream, TlsStream, UpstreamTls};

pub enum UpstreamConn {
    Plain(TcpStream),
    /// With the client config it was made with: the identity a pooled connection
    /// must match to be reused (the same upstream's CA, SNI name and `verify`, of
    /// the same config generation).
    Tls(Box<ClientTlsStream>, Arc<rustls::ClientConfig>),
}

/// Why a connection could not be made.
pub enum ConnectError {
    /// Refused, reset, or the TLS handshake failed (certificate not trusted, …).
    Failed,
    TimedOut,
}

impl UpstreamConn {
    /// Connects to `addr` (and completes the TLS handshake when `tls` is set), all
    /// within `timeout`. Writes that stall longer than `user_timeout` fail later.
    pub async fn connect(
        deadline: &mut Deadline,
        addr: std::net::SocketAddr,
        tls: Option<&UpstreamTls>,
        timeout: Duration,
        user_timeout: Duration,
    ) -> Result<UpstreamConn, ConnectError> {
        let until = deadline.timers().deadline_tick(timeout);
        let tcp = match deadline.at_tick(until, TcpStream::connect_addr(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Err(ConnectError::Failed),
            Err(_) => return Err(ConnectError::TimedOut),
        };
        let _ = tcp.set_nodelay(true);
        crate::sock::set_user_timeout(&tcp, user_timeout);
        let Some(tls) = tls else {
            return Ok(UpstreamConn::Plain(tcp));
        };
        let session = rustls::ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|_| ConnectError::Failed)?;
        // Boxed: the handshake's state (~2.7 KiB) would otherwise be part of every
        // request's future, copied per request; this box is once per TLS connection.
        match deadline
            .at_tick(until, Box::pin(TlsStream::handshake(tcp, session)))
            .await
        {
            Ok(Ok(s)) => Ok(UpstreamConn::Tls(Box::new(s), tls.config.clone())),
            Ok(Err(e)) => {
                tracing::warn!(target = %addr, "upstream TLS handshake failed: {e}");
                Err(ConnectError::Failed)
            }
            Err(_) => Err(ConnectError::TimedOut),
        }
    }

    /// Whether this connection was made for `tls` (None: plain).
    pub fn made_for(&self, tls: Option<&UpstreamTls>) -> bool {
        match (self, tls) {
            (UpstreamConn::Plain(_), None) => true,
            (UpstreamConn::Tls(_, made_with), Some(t)) => Arc::ptr_eq(made_with, &t.config),
            _ => false,
        }
    }

    /// Whether an idle pooled connection is clean: nothing to read (a late
    /// response, an unsolicited byte or a TLS close_notify) and not closed.
    pub fn is_quiet(&mut self) -> bool {
        match self {
            UpstreamConn::Plain(s) => crate::sock::is_quiet(s),
            UpstreamConn::Tls(s, _) => !s.has_unread() && crate::sock::is_quiet(s.tcp()),
        }
    }
}

impl AsyncReadRent for UpstreamConn {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.read(buf).await,
            UpstreamConn::Tls(s, _) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.readv(buf).await,
            UpstreamConn::Tls(s, _) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for UpstreamConn {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.write(buf).await,
            UpstreamConn::Tls(s, _) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.writev(buf).await,
            UpstreamConn::Tls(s, _) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamConn::Plain(s) => s.flush().await,
            UpstreamConn::Tls(s, _) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamConn::Plain(s) => s.shutdown().await,
            UpstreamConn::Tls(s, _) => s.shutdown().await,
        }
    }
}
