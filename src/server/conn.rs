//! The client connection loop: read a head (bounded by `max_header_bytes`, under
//! `header_timeout`; `idle_timeout` between requests), serve it as one request
//! ([`super::request`]), repeat while keep-alive holds. Pipelined requests wait in
//! the read buffer and are answered in order.
//!
//! A head is parsed in place in the connection's read buffer; the buffer starts
//! small (idle connections stay cheap) and grows only for a large head.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;

use super::request::handle;
use crate::gateway::ServerSettings;
use crate::guard::Additions;
use crate::http::reply::{render, Persistence, Reply};
use crate::http::request::{parse_head, Header, RequestHead};
use crate::log::AccessRecord;
use crate::session::{ClientConn, ClientIo, ConnTls, Core};
use crate::time::Deadline;

/// A first read buffer that fits typical request heads; it grows for larger ones.
const INITIAL_BUF: usize = 2048;

/// Keeps the core's in-flight count right even if the request's future is dropped.
struct InFlight<'a>(&'a Core);

impl<'a> InFlight<'a> {
    fn new(core: &'a Core) -> Self {
        core.in_flight.set(core.in_flight.get() + 1);
        InFlight(core)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

enum HeadRead {
    Head(RequestHead),
    /// Closed by the client, idle timeout, or draining: close quietly.
    Closed,
    /// Answer with this status and close.
    Refuse(u16),
}

pub async fn serve<S: ClientIo>(core: Rc<Core>, stream: S, peer: SocketAddr, tls: Option<ConnTls>) {
    let mut conn = ClientConn {
        stream,
        buf: Vec::with_capacity(INITIAL_BUF),
        start: 0,
        peer,
        peer_ip: peer.ip().to_canonical().to_string(),
        resp_headers: Vec::new(),
        carry: Vec::new(),
        deadline: Deadline::new(&core.timers),
        idle_timeout: core.gateway().server.idle_timeout,
        tls,
        truncated: false,
        additions: Additions::default(),
    };
    let mut headers: Vec<Header> = Vec::new();
    let accepted = Instant::now();
    let mut first = true;
    loop {
        // Only the server settings while waiting: an idle connection holds no snapshot, and
        // the request is served by the snapshot current when its head arrived.
        let server = core.gateway().server.clone();
        let head = match read_head(
            &core,
            &server,
            &mut conn,
            &mut headers,
            first.then_some(accepted),
        )
        .await
        {
            HeadRead::Head(h) => h,
            HeadRead::Closed => return,
            HeadRead::Refuse(status) => {
                let id = core.new_request_id();
                let mut out = core.take_buffer();
                render(
                    &mut out,
                    &Reply::error(status),
                    &id,
                    b"",
                    Persistence::Close,
                    false,
                );
                if let Ok(out) = conn.write_all(out).await {
                    core.give_buffer(out);
                }
                log_refusal(&core, &conn, &id, status);
                linger(&mut conn).await;
                return;
            }
        };
        first = false;
        let gw = core.gateway();
        conn.idle_timeout = gw.server.idle_timeout;
        let keep = {
            let _in_flight = InFlight::new(&core);
            // Boxed: the request's state (a few KiB) exists only while a request is
            // in flight, so an idle keep-alive connection stays small.
            Box::pin(handle(&core, &gw, &mut conn, &head, &mut headers)).await
        };
        if !keep || core.draining.get() {
            linger(&mut conn).await;
            return;
        }
        if !conn.carry.is_empty() {
            conn.buf.clear();
            conn.buf.extend_from_slice(&conn.carry);
            conn.carry.clear();
            if conn.carry.capacity() > INITIAL_BUF {
                conn.carry = Vec::new();
            }
            conn.start = 0;
        } else if conn.start == conn.buf.len() {
            conn.buf.clear();
            conn.start = 0;
            if conn.buf.capacity() > INITIAL_BUF * 4 {
                conn.buf = Vec::with_capacity(INITIAL_BUF);
            }
        }
    }
}

/// Reads until `conn.buf[conn.start..]` begins with a complete head.
/// `accepted`: the connection's first request, timed from accept.
async fn read_head<S: ClientIo>(
    core: &Core,
    server: &ServerSettings,
    conn: &mut ClientConn<S>,
    headers: &mut Vec<Header>,
    accepted: Option<Instant>,
) -> HeadRead {
    let mut deadline: Option<Instant> = accepted.map(|t| t + server.header_timeout);
    loop {
        let pending = conn.buf.len() - conn.start;
        if pending > 0 {
            match parse_head(&conn.buf[conn.start..], headers) {
                Ok(Some(head)) if head.len > server.max_header_bytes => {
                    return HeadRead::Refuse(431)
                }
                Ok(Some(head)) => return HeadRead::Head(head),
                Ok(None) if pending >= server.max_header_bytes => return HeadRead::Refuse(431),
                Ok(None) => {}
                Err(e) => return HeadRead::Refuse(e.status),
            }
            if deadline.is_none() {
                deadline = Some(Instant::now() + server.header_timeout);
            }
        } else if core.draining.get() {
            return HeadRead::Closed;
        }
        make_room(conn, server.max_header_bytes);
        let buf = std::mem::take(&mut conn.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = conn.stream.read(buf.slice_mut(len..cap));
        let result = match deadline {
            Some(d) => match conn.deadline.until(d, read).await {
                Ok(r) => r,
                Err(_) => return HeadRead::Refuse(408),
            },
            None => match conn.deadline.within(server.idle_timeout, read).await {
                Ok(r) => r,
                Err(_) => return HeadRead::Closed,
            },
        };
        let (r, b) = result;
        conn.buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => return HeadRead::Closed,
            Ok(_) => {}
        }
    }
}

/// Closes after a response the client may still be sending into (an error, an
/// early answer): send FIN, then read and drop what arrives for a moment, so the
/// kernel does not answer unread bytes with a reset that could destroy the response
/// before the client read it (nginx's lingering close). Bounded: 1 s, 1 MiB.
async fn linger<S: ClientIo>(conn: &mut ClientConn<S>) {
    if conn.truncated && conn.tls.is_some() {
        return;
    }
    // FIN (after close_notify on TLS), bounded like any write.
    let _ = conn
        .deadline
        .within(Duration::from_secs(1), conn.stream.shutdown())
        .await;
    let mut buf = std::mem::take(&mut conn.buf);
    buf.clear();
    let mut drained = 0usize;
    let until = conn.deadline.timers().deadline_tick(Duration::from_secs(1));
    while drained < (1 << 20) {
        let cap = buf.capacity().max(1);
        buf.reserve(cap);
        let cap = buf.capacity();
        match conn
            .deadline
            .at_tick(until, conn.stream.read(buf.slice_mut(0..cap)))
            .await
        {
            Ok((Ok(n), b)) if n > 0 => {
                drained += n;
                buf = b.into_inner();
                buf.clear();
            }
            _ => return,
        }
    }
}

/// Ensures free space after `buf.len()`: compacts consumed bytes away, then grows
/// the buffer, never past what a head of `max_header` bytes needs.
fn make_room<S>(conn: &mut ClientConn<S>, max_header: usize) {
    if conn.start > 0 && conn.buf.len() == conn.buf.capacity() {
        conn.buf.drain(..conn.start);
        conn.start = 0;
    }
    if conn.buf.len() == conn.buf.capacity() {
        let want = (conn.buf.capacity() * 2)
            .min(max_header + 1)
            .max(conn.buf.len() + 1);
        conn.buf.reserve_exact(want - conn.buf.len());
    }
}

fn log_refusal<S>(core: &Core, conn: &ClientConn<S>, id: &[u8], status: u16) {
    let reason = crate::guard::Reason::of_protocol_status(status);
    core.count_request(None, status, Duration::ZERO, Some(reason.index()));
    if let Some(sink) = &core.access {
        let gw = core.gateway();
        sink.record(&AccessRecord {
            request_id: id,
            client_ip: conn.peer.ip().to_canonical(),
            method: b"-",
            path: b"-",
            route: None,
            status,
            bytes_in: (conn.buf.len() - conn.start) as u64,
            bytes_out: 0,
            upstream: None,
            upstream_time: None,
            duration: Duration::ZERO,
            denied: Some(reason.labels()),
            user_agent: b"",
            referer: b"",
            tls: conn.tls.as_ref().map(|t| t.version),
            identity: None,
            waf: None,
            http_minor: 1,
            stage: gw.server.stage.as_deref(),
        });
    }
}
