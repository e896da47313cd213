//! Request bodies: framing state (length or chunked, bounded by the route's
//! `max_body_bytes`) and [`pump`], which moves the part of a body still on the
//! client socket to the upstream — or discards it — one buffer at a time, never
//! holding the whole body.

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::AsyncWriteRentExt;

use super::{ClientConn, ClientIo};
use crate::http::chunked::ChunkedScanner;
use crate::http::BodyKind;
use crate::session::Core;
use crate::upstream::conn::UpstreamConn;

/// Why a body could not be read through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the route allows → 413.
    TooLarge,
    /// Chunked framing that cannot be read unambiguously → 400.
    Malformed,
    /// The client went quiet for longer than the idle timeout → 408.
    Timeout,
    /// The client closed or reset the connection mid-body.
    ClientGone,
    /// Writing to the upstream failed → 502.
    Upstream,
}

/// Where a request body is in its framing.
#[derive(Debug)]
pub struct BodyState {
    remaining: u64,
    scanner: Option<ChunkedScanner>,
    limit: u64,
    /// Bytes of body (with chunk framing) taken so far.
    pub received: u64,
    /// `Expect: 100-continue`: send `100 Continue` before the first read from the socket.
    pub send_continue: bool,
}

impl BodyState {
    pub fn new(
        kind: BodyKind,
        limit: u64,
        expect_continue: bool,
        max_trailer: usize,
    ) -> Result<BodyState, BodyError> {
        let (remaining, scanner) = match kind {
            BodyKind::None | BodyKind::UntilClose => (0, None),
            BodyKind::Length(n) if n > limit => return Err(BodyError::TooLarge),
            BodyKind::Length(n) => (n, None),
            BodyKind::Chunked => (0, Some(ChunkedScanner::new(max_trailer))),
        };
        Ok(BodyState {
            remaining,
            scanner,
            limit,
            received: 0,
            send_continue: expect_continue,
        })
    }

    pub fn is_done(&self) -> bool {
        match &self.scanner {
            Some(s) => s.is_done(),
            None => self.remaining == 0,
        }
    }

    /// Takes the body's share of `bytes`; returns how many of them belong to it.
    pub fn take(&mut self, bytes: &[u8]) -> Result<usize, BodyError> {
        let n = match &mut self.scanner {
            Some(s) => {
                let n = s.feed(bytes, |_| {}).map_err(|_| BodyError::Malformed)?;
                // Framing is not data: bound the bytes on the wire too, or tiny chunks
                // with long extensions would stream past the limit.
                let wire = self.received + n as u64;
                if s.data_len > self.limit
                    || wire > self.limit.saturating_mul(8).saturating_add(64 << 10)
                {
                    return Err(BodyError::TooLarge);
                }
                n
            }
            None => {
                let n = self.remaining.min(bytes.len() as u64) as usize;
                self.remaining -= n as u64;
                n
            }
        };
        self.received += n as u64;
        Ok(n)
    }

    /// How much to read from the socket next: never past a known body end, so a
    /// pipelined request behind a length-delimited body stays on the socket.
    fn read_hint(&self, cap: usize) -> usize {
        match self.scanner {
            Some(_) => cap,
            None => self.remaining.min(cap as u64) as usize,
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Reads the rest of the body from the client and writes it to `sink` (or drops it).
/// Bytes read past the body's end (a pipelined request) go to `conn.carry`.
/// Each read waits at most the connection's `idle_timeout`.
pub async fn pump<S: ClientIo>(
    core: &Core,
    conn: &mut ClientConn<S>,
    state: &mut BodyState,
    mut sink: Option<&mut UpstreamConn>,
) -> Result<(), BodyError> {
    let idle = conn.idle_timeout;
    let mut buf = core.take_buffer();
    let result = loop {
        if state.is_done() {
            break Ok(());
        }
        if state.send_continue {
            state.send_continue = false;
            if conn.write_all(CONTINUE).await.is_err() {
                break Err(BodyError::ClientGone);
            }
        }
        let want = state.read_hint(buf.capacity());
        buf.clear();
        let n = match conn
            .deadline
            .within(idle, conn.stream.read(buf.slice_mut(0..want)))
            .await
        {
            Err(_) => return Err(BodyError::Timeout),
            Ok((r, b)) => {
                buf = b.into_inner();
                match r {
                    Ok(0) | Err(_) => break Err(BodyError::ClientGone),
                    Ok(n) => n,
                }
            }
        };
        let used = match state.take(&buf[..n]) {
            Ok(u) => u,
            Err(e) => break Err(e),
        };
        if used < n {
            // The start of a pipelined request: it waits in `carry` until this
            // request is done (its head still lives in `conn.buf`).
            conn.carry.extend_from_slice(&buf[used..n]);
        }
        if let Some(up) = sink.as_deref_mut() {
            // An upstream that stops reading fails the write after `idle`.
            match conn
                .deadline
                .within(idle, up.write_all(buf.slice(0..used)))
                .await
            {
                Ok((Ok(_), b)) => buf = b.into_inner(),
                _ => return Err(BodyError::Upstream),
            }
        }
    };
    core.give_buffer(buf);
    result
}
