//! Forwarding one request: pick a target, take a pooled connection or connect, send
//! the rewritten head with the body streamed behind it, read the response head and
//! stream the response body back, then return the connection to the pool.
//!
//! Retries: a failed connect is retried once on another target (nothing was sent);
//! a pooled connection that turns out closed before any response byte is replaced by
//! a fresh one when the whole request is still in hand. Errors become 502 (refused,
//! reset, malformed response) or 504 (connect or response timeout).

use std::net::SocketAddr;
use std::time::Instant;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::headers::{self, ClientFraming, Forwarding};
use crate::gateway::{Gateway, Upstream};
use crate::http::chunked::ChunkedScanner;
use crate::http::reply::{Persistence, Reply};
use crate::http::request::Method;
use crate::http::response::{parse_response, ResponseHead};
use crate::http::BodyKind;
use crate::session::{pump, BodyError, BodyState, ClientConn, ClientIo, Core, Request};
use crate::upstream::conn::{ConnectError, UpstreamConn};

/// How a forward failed before any response reached the client.
enum Failure {
    /// Answer with this status; `close` the client connection afterwards.
    Status(u16, bool),
    /// The client is gone or unusable: just close.
    Close,
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Failure {
        match e {
            BodyError::TooLarge => Failure::Status(413, true),
            BodyError::Malformed => Failure::Status(400, true),
            BodyError::Timeout => Failure::Status(408, true),
            BodyError::ClientGone => Failure::Close,
            BodyError::Upstream => Failure::Status(502, true),
        }
    }
}

/// One forward in progress: the request, the client connection it came on and
/// the upstream it goes to. Its steps are methods, so the state is named once.
struct Forward<'f, 'r, S> {
    core: &'f Core,
    gw: &'f Gateway,
    up: &'f Upstream,
    conn: &'f mut ClientConn<S>,
    req: &'f mut Request<'r>,
}

/// A final response head read from the upstream, and the connection it came on.
struct Answered {
    stream: UpstreamConn,
    addr: SocketAddr,
    /// The bytes read so far: the head, then what of the body came with it.
    rbuf: Vec<u8>,
    resp: ResponseHead,
}

/// Forwards `req` to `up`. Writes the response (or the error) to the client;
/// returns whether the client connection stays open.
pub async fn forward<S: ClientIo>(
    core: &Core,
    gw: &Gateway,
    up: &Upstream,
    conn: &mut ClientConn<S>,
    req: &mut Request<'_>,
) -> bool {
    let mut out = core.take_buffer();
    let mut f = Forward {
        core,
        gw,
        up,
        conn,
        req,
    };
    let result = f.exchange(&mut out).await;
    let Forward { conn, req, .. } = f;
    let keep = match result {
        Ok(keep) => keep,
        Err(Failure::Close) => false,
        Err(Failure::Status(status, close)) => {
            req.exchange.status = status;
            let close = close || !req.head.keep_alive || core.draining.get();
            out.clear();
            crate::http::reply::render(
                &mut out,
                &Reply::error(status),
                req.id.as_bytes(),
                req.additions.client.as_bytes(),
                Persistence::for_request(!close, req.head.minor),
                req.head.method == Method::Head,
            );
            req.exchange.bytes_out += out.len() as u64;
            match conn.write_all(out).await {
                Ok(o) => {
                    out = o;
                    !close
                }
                Err(_) => return false,
            }
        }
    };
    core.give_buffer(out);
    keep
}

impl<S: ClientIo> Forward<'_, '_, S> {
    async fn exchange(&mut self, out: &mut Vec<u8>) -> Result<bool, Failure> {
        let (core, up) = (self.core, self.up);
        let head = self.req.head;
        let base = self.req.base;
        {
            let conn = &*self.conn;
            let fwd = Forwarding {
                peer_ip: &conn.peer_ip,
                peer_trusted: conn.peer_trusted(&self.gw.trusted_proxies),
                request_id: self.req.id.as_bytes(),
                proto: if conn.tls.is_some() { "https" } else { "http" },
                default_host: &up.name,
                extra: self.req.additions.upstream.as_bytes(),
                client_cert: conn
                    .tls
                    .as_ref()
                    .and_then(|t| t.client_cert.as_deref())
                    .map_or(&b""[..], |c| c.header_lines.as_bytes()),
            };
            headers::upstream_request(
                out,
                self.req.head_bytes(&conn.buf),
                head,
                self.req.headers,
                &fwd,
            );
        }
        let conn = &mut *self.conn;
        conn.start = base + head.len;
        let mut body = BodyState::new(
            head.body,
            self.req.body_limit,
            head.expect_continue,
            self.gw.server.max_header_bytes,
        )?;
        if !body.is_done() {
            let n = body.take(&conn.buf[conn.start..])?;
            out.extend_from_slice(&conn.buf[conn.start..conn.start + n]);
            conn.start += n;
        }
        // The whole request is in `out`: it can be sent again on a fresh connection.
        let replayable = body.is_done();

        let mut excluded: Option<SocketAddr> = None;
        let mut fresh_only = false;
        let mut answered = loop {
            let attempt_started = Instant::now();
            let now = core.timers.now();
            let picked = core.upstreams.borrow_mut().pick(up, excluded, now);
            let Some(addr) = picked else {
                return Err(Failure::Status(502, false));
            };
            let pooled = if fresh_only {
                None
            } else {
                core.upstreams.borrow_mut().take_idle(
                    addr,
                    up.tls.as_ref(),
                    up.keepalive_timeout,
                    now,
                )
            };
            let reused = pooled.is_some();
            self.req.exchange.upstream = Some(addr);
            let mut stream = match pooled {
                Some(s) => s,
                None => match UpstreamConn::connect(
                    &mut self.conn.deadline,
                    addr,
                    up.tls.as_ref(),
                    up.connect_timeout,
                    up.response_timeout,
                )
                .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        let timed_out = matches!(e, ConnectError::TimedOut);
                        core.count_upstream_error(
                            &up.name,
                            if timed_out { "timeout" } else { "connect" },
                        );
                        core.count_upstream(
                            up.index,
                            if timed_out { 504 } else { 502 },
                            attempt_started.elapsed(),
                        );
                        let rest = core.upstreams.borrow_mut().failed(addr, up, Instant::now());
                        core.note_target(up, addr, rest);
                        if excluded.is_none() && up.targets.len() > 1 {
                            excluded = Some(addr);
                            continue;
                        }
                        return Err(Failure::Status(
                            if timed_out { 504 } else { 502 },
                            !body.is_done(),
                        ));
                    }
                },
            };
            core.upstreams.borrow_mut().started(addr);
            let attempt = self.send_and_receive(&mut stream, out, &mut body).await;
            core.upstreams.borrow_mut().finished(addr);
            // One clock for the histogram and the access log's upstream_ms
            // (from picking the target: a fresh connection's connect counts).
            let took = attempt_started.elapsed();
            self.req.exchange.upstream_time = Some(took);
            match &attempt {
                Ok((_, resp)) => core.count_upstream(up.index, resp.status, took),
                Err(Attempt::Stale) if reused && replayable && head.method.is_idempotent() => {}
                Err(Attempt::Client(_)) => {}
                Err(failure) => {
                    let (status, kind) = match failure {
                        Attempt::Timeout => (504, "timeout"),
                        Attempt::Malformed => (502, "malformed"),
                        _ => (502, "reset"),
                    };
                    core.count_upstream_error(&up.name, kind);
                    core.count_upstream(up.index, status, took);
                }
            }
            match attempt {
                Ok((rbuf, resp)) => {
                    break Answered {
                        stream,
                        addr,
                        rbuf,
                        resp,
                    }
                }
                // A pooled connection the upstream closed before answering: resend on a
                // fresh one when that is safe (RFC 9110 §9.2.2), and do not blame the target.
                Err(Attempt::Stale) if reused && replayable && head.method.is_idempotent() => {
                    fresh_only = true;
                    continue;
                }
                Err(Attempt::Stale) if reused => return Err(Failure::Status(502, !body.is_done())),
                Err(Attempt::Stale) | Err(Attempt::Reset) | Err(Attempt::Malformed) => {
                    let rest = core.upstreams.borrow_mut().failed(addr, up, Instant::now());
                    core.note_target(up, addr, rest);
                    return Err(Failure::Status(502, !body.is_done()));
                }
                Err(Attempt::Timeout) => {
                    let rest = core.upstreams.borrow_mut().failed(addr, up, Instant::now());
                    core.note_target(up, addr, rest);
                    return Err(Failure::Status(504, !body.is_done()));
                }
                Err(Attempt::Client(f)) => return Err(f),
            }
        };
        if core.upstreams.borrow_mut().succeeded(answered.addr) {
            core.note_target(up, answered.addr, None);
        }
        let resp = &answered.resp;
        if resp.body == BodyKind::Chunked && resp.extra_codings && head.minor == 0 {
            // An HTTP/1.0 client gets the body decoded from chunked, which would leave
            // the other codings unlabelled.
            return Err(Failure::Status(502, !body.is_done()));
        }
        self.req.exchange.status = resp.status;

        let result = self
            .relay_response(&mut answered, out, body.is_done())
            .await;
        let Answered {
            stream, addr, rbuf, ..
        } = answered;
        core.give_buffer(rbuf);
        match result {
            Ok((keep_client, reuse_upstream)) => {
                if reuse_upstream {
                    core.upstreams.borrow_mut().put_idle(
                        addr,
                        stream,
                        up.max_idle_per_core,
                        core.timers.now(),
                    );
                }
                Ok(keep_client)
            }
            Err(()) => {
                self.conn.truncated = true;
                Ok(false)
            }
        }
    }
}

enum Attempt {
    /// The pooled connection was closed before any response byte.
    Stale,
    /// The upstream closed or failed after part of a response.
    Reset,
    /// What the upstream sent is not a response this gateway relays (no head
    /// within the buffer, a head that does not parse, a 101).
    Malformed,
    Timeout,
    Client(Failure),
}

impl<S: ClientIo> Forward<'_, '_, S> {
    /// Sends `out` (head and what of the body was buffered), pumps the rest of the body,
    /// and reads the final response head (skipping 1xx).
    async fn send_and_receive(
        &mut self,
        stream: &mut UpstreamConn,
        out: &mut Vec<u8>,
        body: &mut BodyState,
    ) -> Result<(Vec<u8>, ResponseHead), Attempt> {
        let (core, up, head) = (self.core, self.up, self.req.head);
        let conn = &mut *self.conn;
        match conn
            .deadline
            .within(up.response_timeout, stream.write_all(std::mem::take(out)))
            .await
        {
            Ok((Ok(_), o)) => *out = o,
            Ok((Err(_), o)) => {
                *out = o;
                return Err(Attempt::Stale);
            }
            Err(_) => return Err(Attempt::Timeout),
        }
        if !body.is_done() {
            match pump(core, conn, body, Some(stream)).await {
                Ok(()) => {}
                // The upstream stopped reading the body: it may have answered early
                // (413, 401, ...). Read on; that answer goes to the client, which is then
                // closed because the rest of its body was never read.
                Err(BodyError::Upstream) => {}
                Err(e) => return Err(Attempt::Client(e.into())),
            }
        }
        let mut rbuf = core.take_buffer();
        // The response timeout runs from when the request was fully sent.
        let deadline = conn.deadline.timers().deadline_tick(up.response_timeout);
        let head_request = head.method == Method::Head;
        loop {
            if rbuf.len() == rbuf.capacity() {
                core.give_buffer(rbuf);
                return Err(Attempt::Malformed);
            }
            let len = rbuf.len();
            let cap = rbuf.capacity();
            let (r, b) = match conn
                .deadline
                .at_tick(deadline, stream.read(rbuf.slice_mut(len..cap)))
                .await
            {
                Ok(v) => v,
                Err(_) => return Err(Attempt::Timeout),
            };
            rbuf = b.into_inner();
            match r {
                Ok(0) | Err(_) if rbuf.is_empty() => {
                    core.give_buffer(rbuf);
                    return Err(Attempt::Stale);
                }
                Ok(0) | Err(_) => {
                    core.give_buffer(rbuf);
                    return Err(Attempt::Reset);
                }
                Ok(_) => {}
            }
            loop {
                match parse_response(&rbuf, head_request, &mut conn.resp_headers) {
                    Ok(Some(resp)) if (100..200).contains(&resp.status) && resp.status != 101 => {
                        // An interim response: drop it, the final one follows.
                        rbuf.drain(..resp.len);
                    }
                    Ok(Some(resp)) if resp.status == 101 => {
                        core.give_buffer(rbuf);
                        return Err(Attempt::Malformed);
                    }
                    Ok(Some(resp)) => return Ok((rbuf, resp)),
                    Ok(None) => break,
                    Err(_) => {
                        core.give_buffer(rbuf);
                        return Err(Attempt::Malformed);
                    }
                }
            }
        }
    }
}

/// Tracks the response body as it passes to the client.
struct ResponseBody {
    framing: ClientFraming,
    remaining: u64,
    scanner: Option<ChunkedScanner>,
    done: bool,
    /// The upstream sent bytes beyond the body: do not reuse the connection.
    extra: bool,
}

impl ResponseBody {
    /// Makes `buf[from..]` hold what goes to the client and returns its end.
    fn process(&mut self, buf: &mut [u8], from: usize) -> Result<usize, ()> {
        let piece_len = buf.len() - from;
        match self.framing {
            ClientFraming::Empty(_) => {
                self.extra |= piece_len > 0;
                self.done = true;
                Ok(from)
            }
            ClientFraming::Length(_) => {
                let take = self.remaining.min(piece_len as u64) as usize;
                self.remaining -= take as u64;
                self.extra |= take < piece_len;
                self.done = self.remaining == 0;
                Ok(from + take)
            }
            ClientFraming::Close => Ok(buf.len()),
            ClientFraming::Chunked => {
                let s = self
                    .scanner
                    .as_mut()
                    .expect("chunked framing has a scanner");
                let n = s.feed(&buf[from..], |_| {}).map_err(|_| ())?;
                self.extra |= n < piece_len;
                self.done = s.is_done();
                Ok(from + n)
            }
            ClientFraming::Decoded => {
                let s = self
                    .scanner
                    .as_mut()
                    .expect("decoded framing has a scanner");
                let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
                let n = s.feed(&buf[from..], |r| ranges.push(r)).map_err(|_| ())?;
                self.extra |= n < piece_len;
                self.done = s.is_done();
                let mut w = from;
                for r in ranges {
                    let len = r.len();
                    buf.copy_within(from + r.start..from + r.end, w);
                    w += len;
                }
                Ok(w)
            }
        }
    }
}

impl<S: ClientIo> Forward<'_, '_, S> {
    /// Writes the response head and streams the body. `Ok((keep_client, reuse_upstream))`;
    /// `Err(())` when the exchange broke midway and the client must be closed.
    async fn relay_response(
        &mut self,
        answered: &mut Answered,
        out: &mut Vec<u8>,
        body_read: bool,
    ) -> Result<(bool, bool), ()> {
        let (core, up, head) = (self.core, self.up, self.req.head);
        let Answered {
            stream, rbuf, resp, ..
        } = answered;
        let conn = &mut *self.conn;
        let req = &mut *self.req;
        let client_10 = head.minor == 0;
        let framing = match resp.body {
            BodyKind::None if head.method == Method::Head || resp.status == 304 => {
                ClientFraming::Empty(resp.content_length)
            }
            BodyKind::None if resp.status == 204 || resp.status < 200 => ClientFraming::Empty(None),
            BodyKind::None => ClientFraming::Empty(Some(0)),
            BodyKind::Length(n) => ClientFraming::Length(n),
            BodyKind::Chunked if client_10 => ClientFraming::Decoded,
            BodyKind::Chunked => ClientFraming::Chunked,
            BodyKind::UntilClose => ClientFraming::Close,
        };
        // A body the client is still sending (the upstream answered early) leaves
        // the connection unusable.
        let close = !body_read
            || !head.keep_alive
            || core.draining.get()
            || matches!(framing, ClientFraming::Decoded | ClientFraming::Close);
        let mut body = ResponseBody {
            framing,
            remaining: if let ClientFraming::Length(n) = framing {
                n
            } else {
                0
            },
            scanner: matches!(framing, ClientFraming::Chunked | ClientFraming::Decoded)
                .then(|| ChunkedScanner::new(64 << 10)),
            done: false,
            extra: false,
        };

        out.clear();
        headers::client_response(
            out,
            headers::UpstreamHead {
                bytes: rbuf,
                head: resp,
                headers: &conn.resp_headers,
            },
            headers::ClientAdditions {
                request_id: req.id.as_bytes(),
                extra: req.additions.client.as_bytes(),
                replace_access_control: req.cors,
            },
            framing,
            close,
            client_10 && !close,
        );
        let end = body.process(rbuf, resp.len)?;
        out.extend_from_slice(&rbuf[resp.len..end]);
        let n = out.len() as u64;
        *out = conn.write_all(std::mem::take(out)).await.map_err(|_| ())?;
        req.exchange.bytes_out += n;

        let deadline_each = up.response_timeout;
        while !body.done {
            rbuf.clear();
            let cap = rbuf.capacity();
            let (r, b) = match conn
                .deadline
                .within(
                    deadline_each,
                    stream.read(std::mem::take(rbuf).slice_mut(0..cap)),
                )
                .await
            {
                Ok(v) => v,
                Err(_) => return Err(()),
            };
            *rbuf = b.into_inner();
            match r {
                Ok(0) if framing == ClientFraming::Close => break,
                Ok(0) | Err(_) => return Err(()),
                Ok(_) => {}
            }
            let end = body.process(rbuf, 0)?;
            if end > 0 {
                *rbuf = conn
                    .write_all(std::mem::take(rbuf).slice(0..end))
                    .await
                    .map_err(|_| ())?
                    .into_inner();
                req.exchange.bytes_out += end as u64;
            }
        }
        let reuse = resp.keep_alive && body.done && !body.extra && body_read;
        Ok((!close, reuse))
    }
}
