//! [`TlsStream`]: a rustls connection (server or client side) over a monoio TCP
//! stream, with the monoio owned-buffer read/write traits, so the connection loop
//! and the forwarder serve TLS and plain TCP through one generic code path.
//!
//! Written by hand rather than taken from monoio-rustls 0.4 for two reasons the
//! gateway cannot work around: that crate keeps the rustls session private (the
//! verified client certificate and the SNI name are needed after the handshake),
//! and it takes its buffers across an `await`, so a read or write cancelled by a
//! timeout leaves it panicking on the next use. Here a cancelled operation marks
//! the stream broken and later calls fail with an error instead.
//!
//! Buffers: ciphertext is read into `rbuf` (4 KiB, or 16 KiB + a record header —
//! one full record — while data streams in; kept between reads, so an idle
//! connection's pending read holds 4 KiB) and handed to rustls; plaintext is
//! copied straight from rustls's buffer into the caller's buffer. Written
//! plaintext is encrypted by rustls into `wbuf` and sent in one write; `wbuf` is
//! freed after each write, so an idle connection holds none.

use std::io::{self, BufRead, Write};
use std::ops::{Deref, DerefMut};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{ConnectionCommon, SideData};

/// Room for one TLS record as it comes off the wire (16 KiB of payload plus the
/// header, padding and tag): the read size while data streams in.
const READ_BUF: usize = (16 << 10) + 2048;

/// The read size of a connection that is not streaming: a request head fits, and
/// an idle keep-alive connection's pending read holds no more than this.
const READ_SMALL: usize = 4096;

/// A TLS connection over TCP; `C` is `rustls::ServerConnection` or
/// `rustls::ClientConnection`.
pub struct TlsStream<C> {
    tcp: TcpStream,
    session: C,
    /// Ciphertext read from the socket and not yet given to rustls: `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// How much the next socket read asks for: [`READ_SMALL`], or [`READ_BUF`]
    /// after a read that filled its buffer.
    read_size: usize,
    /// Ciphertext rustls produced, being written.
    wbuf: Vec<u8>,
    /// A read was cancelled midway (its buffer is gone): reads fail from now on.
    read_broken: bool,
    /// A write was cancelled midway (ciphertext was lost): writes fail from now on.
    write_broken: bool,
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "TLS stream unusable after a cancelled operation",
    )
}

impl<C, SD> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Wraps `tcp` and runs the handshake to completion (the caller bounds it in time).
    pub async fn handshake(tcp: TcpStream, session: C) -> io::Result<TlsStream<C>> {
        let mut s = TlsStream {
            tcp,
            session,
            rbuf: Vec::new(),
            rpos: 0,
            read_size: READ_SMALL,
            wbuf: Vec::new(),
            read_broken: false,
            write_broken: false,
        };
        while s.session.is_handshaking() {
            if s.session.wants_write() {
                s.flush_tls().await?;
            }
            if !s.session.is_handshaking() {
                break;
            }
            if s.session.wants_read() && s.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                ));
            }
        }
        // The last flight (and TLS 1.3 session tickets) go out now.
        s.flush_tls().await?;
        Ok(s)
    }

    /// The rustls session: the peer's certificates, SNI, the negotiated version.
    pub fn session(&self) -> &C {
        &self.session
    }

    /// The TCP socket underneath (for socket options and probes).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether bytes the caller has not read wait inside the stream (ciphertext not
    /// yet decrypted, or plaintext not yet read): a pooled upstream connection with
    /// any is not clean.
    pub fn has_unread(&mut self) -> bool {
        // Clean means "would block": plaintext, or a close_notify (an empty
        // `Ok`), or an error all mean the connection is not reusable.
        self.rpos < self.rbuf.len()
            || !matches!(self.session.reader().fill_buf(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads ciphertext from the socket into rustls and processes it. Returns the
    /// bytes given to rustls; 0 means the peer closed the TCP stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.read_broken {
            return Err(broken());
        }
        if self.rpos == self.rbuf.len() {
            let mut buf = std::mem::take(&mut self.rbuf);
            buf.clear();
            // Kept between reads; replaced only when the read size changes.
            if buf.capacity() != self.read_size {
                buf = Vec::with_capacity(self.read_size);
            }
            self.rpos = 0;
            self.read_broken = true;
            let (r, buf) = self.tcp.read(buf).await;
            self.read_broken = false;
            let n = r?;
            // A full buffer means more is coming: read whole records next time.
            self.read_size = if n >= buf.capacity() {
                READ_BUF
            } else {
                READ_SMALL
            };
            self.rbuf = buf;
            if n == 0 {
                // Tell rustls: it then reports a clean close or a truncation.
                self.session.read_tls(&mut &b""[..])?;
                return Ok(0);
            }
        }
        let n = self.session.read_tls(&mut &self.rbuf[self.rpos..])?;
        self.rpos += n;
        if let Err(e) = self.session.process_new_packets() {
            // Best effort: tell the peer why (the alert rustls queued).
            let _ = self.flush_tls().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(n)
    }

    /// Writes out whatever ciphertext rustls has queued.
    async fn flush_tls(&mut self) -> io::Result<()> {
        if self.write_broken {
            return Err(broken());
        }
        while self.session.wants_write() {
            self.session.write_tls(&mut self.wbuf)?;
        }
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.wbuf);
        self.write_broken = true;
        // The buffer is dropped after the write: an idle connection keeps no write
        // buffer (like OpenSSL's SSL_MODE_RELEASE_BUFFERS); one allocation per
        // write is cheap.
        let (r, _) = self.tcp.write_all(buf).await;
        self.write_broken = false;
        r.map(|_| ())
    }
}

impl<C, SD> AsyncReadRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        loop {
            match self.session.reader().fill_buf() {
                Ok(plain) => {
                    let n = plain.len().min(buf.bytes_total());
                    // SAFETY: `write_ptr` is valid for `bytes_total()` bytes of
                    // writes (the IoBufMut contract); `n` is at most that, and the
                    // source is rustls's own buffer, which cannot overlap it.
                    unsafe {
                        std::ptr::copy_nonoverlapping(plain.as_ptr(), buf.write_ptr(), n);
                        buf.set_init(n);
                    }
                    self.session.reader().consume(n);
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A truncated stream (no close_notify) reads as an error.
                Err(e) => return (Err(e), buf),
            }
            match self.fill().await {
                // A close without close_notify: rustls reports it on the next pass.
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
            // rustls may want to answer (a key update); send it with the next write.
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer borrows the first iovec of `buf`, which outlives
        // this call; its length is set below from what was read into it.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes of the first iovec were just written.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl<C, SD> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` is valid for `bytes_init()` initialized bytes (the
        // IoBuf contract) and `buf` is owned by this call until it returns.
        let slice = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        if slice.is_empty() {
            return (Ok(0), buf);
        }
        let n = match self.session.writer().write(slice) {
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        let r = self.flush_tls().await;
        (r.map(|_| n), buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the raw buffer borrows the first iovec of `buf`, which outlives
        // this call.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    /// Sends close_notify, then FIN.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.session.send_close_notify();
        self.flush_tls().await?;
        self.tcp.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{PrivateKeyDer, ServerName};

    use super::TlsStream;
    use crate::tls::server::provider;

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pair.test".to_string()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(kp.serialize_pem().as_bytes()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    const BIG: usize = 3 << 20;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
    }

    /// The server side of the next connection on `listener`, handshake done.
    async fn accept(
        listener: monoio::net::TcpListener,
        sc: Arc<rustls::ServerConfig>,
    ) -> TlsStream<rustls::ServerConnection> {
        let (tcp, _) = listener.accept().await.unwrap();
        let session = rustls::ServerConnection::new(sc).unwrap();
        TlsStream::handshake(tcp, session).await.unwrap()
    }

    /// A client TLS stream to `addr`, handshake done.
    async fn client(
        addr: std::net::SocketAddr,
        cc: Arc<rustls::ClientConfig>,
    ) -> TlsStream<rustls::ClientConnection> {
        let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
        let name = ServerName::try_from("pair.test").unwrap();
        let session = rustls::ClientConnection::new(cc, name).unwrap();
        TlsStream::handshake(tcp, session).await.unwrap()
    }

    /// Reads until `n` bytes arrived; returns them.
    async fn read_n<S: AsyncReadRent>(s: &mut S, n: usize) -> Vec<u8> {
        let mut got = Vec::with_capacity(n);
        let mut buf = Vec::with_capacity(7000);
        while got.len() < n {
            buf.clear();
            let (r, b) = s.read(buf).await;
            buf = b;
            assert!(r.unwrap() > 0, "early EOF at {}", got.len());
            got.extend_from_slice(&buf);
        }
        got
    }

    #[test]
    fn both_ways_then_close_notify_and_a_cancelled_read_fails_cleanly() {
        runtime().block_on(async {
            let (sc, cc) = configs();
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = monoio::spawn(async move {
                let mut s = accept(listener, sc).await;
                let got = read_n(&mut s, BIG).await;
                assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
                let (r, _) = s.write_all(vec![7u8; BIG]).await;
                r.unwrap();
                // A read the peer never answers, cancelled by a timeout…
                let pending = s.read(Vec::with_capacity(16));
                assert!(monoio::time::timeout(Duration::from_millis(50), pending)
                    .await
                    .is_err());
                // …leaves reads failing with an error, not a panic; writes still
                // work, and close_notify goes out.
                let (r, _) = s.read(Vec::with_capacity(16)).await;
                assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
                s.shutdown().await.unwrap();
            });
            let mut c = client(addr, cc).await;
            assert!(!c.session().is_handshaking());
            let data: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
            let (r, _) = c.write_all(data).await;
            r.unwrap();
            let back = read_n(&mut c, BIG).await;
            assert!(back.iter().all(|&b| b == 7));
            // The server's close_notify reads as a clean end.
            let (r, _) = c.read(Vec::with_capacity(16)).await;
            assert_eq!(r.unwrap(), 0);
            assert!(c.has_unread(), "closed: not reusable");
            server.await;
        });
    }

    #[test]
    fn a_close_without_close_notify_is_an_error() {
        runtime().block_on(async {
            let (sc, cc) = configs();
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = monoio::spawn(async move {
                let mut s = accept(listener, sc).await;
                let (r, _) = s.write_all(&b"partial"[..]).await;
                r.unwrap();
                // Dropped: FIN without close_notify.
            });
            let mut c = client(addr, cc).await;
            assert_eq!(read_n(&mut c, 7).await, b"partial");
            server.await;
            let (r, _) = c.read(Vec::with_capacity(16)).await;
            assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        });
    }
}
