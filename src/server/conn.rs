//! The client connection loop: read a head (bounded by `max_header_bytes`, under
//! `header_timeout`; `idle_timeout` between requests), route it, run the route's
//! guards, then mock or forward; repeat while keep-alive holds. Pipelined requests
//! wait in the read buffer and are answered in order.
//!
//! A head is parsed in place in the connection's read buffer; the buffer starts
//! small (idle connections stay cheap) and grows only for a large head.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;

use crate::gateway::{Gateway, Limits};
use crate::guard::{self, Additions, RequestCtx, Verdict};
use crate::http::reply::{render, Persistence, Reply};
use crate::http::request::{normalize_path, parse_head, Header, Method, RequestHead};
use crate::http::BodyKind;
use crate::log::AccessRecord;
use crate::proxy::{forward, headers::client_ip, Exchange};
use crate::route::{Action, RouteMatch};
use crate::session::Core;
use crate::session::{pump, BodyError, BodyState, ClientConn, ClientIo, ConnTls};
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
        write_timeout: core.gateway().limits.idle_timeout,
        tls,
        truncated: false,
        additions: Additions::default(),
    };
    let mut headers: Vec<Header> = Vec::new();
    let accepted = Instant::now();
    let mut first = true;
    loop {
        // Only the limits while waiting: an idle connection holds no snapshot, and
        // the request is served by the snapshot current when its head arrived.
        let limits = core.gateway().limits.clone();
        let head = match read_head(
            &core,
            &limits,
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
        conn.write_timeout = gw.limits.idle_timeout;
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
    limits: &Limits,
    conn: &mut ClientConn<S>,
    headers: &mut Vec<Header>,
    accepted: Option<Instant>,
) -> HeadRead {
    let mut deadline: Option<Instant> = accepted.map(|t| t + limits.header_timeout);
    loop {
        let pending = conn.buf.len() - conn.start;
        if pending > 0 {
            match parse_head(&conn.buf[conn.start..], headers) {
                Ok(Some(head)) if head.len > limits.max_header_bytes => {
                    return HeadRead::Refuse(431)
                }
                Ok(Some(head)) => return HeadRead::Head(head),
                Ok(None) if pending >= limits.max_header_bytes => return HeadRead::Refuse(431),
                Ok(None) => {}
                Err(e) => return HeadRead::Refuse(e.status),
            }
            if deadline.is_none() {
                deadline = Some(Instant::now() + limits.header_timeout);
            }
        } else if core.draining.get() {
            return HeadRead::Closed;
        }
        make_room(conn, limits.max_header_bytes);
        let buf = std::mem::take(&mut conn.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = conn.stream.read(buf.slice_mut(len..cap));
        let result = match deadline {
            Some(d) => match conn.deadline.until(d, read).await {
                Ok(r) => r,
                Err(_) => return HeadRead::Refuse(408),
            },
            None => match conn.deadline.within(limits.idle_timeout, read).await {
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

/// What a routed request gets.
enum Next<'a> {
    /// A reply the gateway makes, and the body limit while the body is discarded.
    Answer(Cow<'a, Reply>, u64),
    Forward(&'a crate::gateway::Upstream, u64),
}

/// The request id to use: the client's if sane, else a fresh UUID.
struct RequestId {
    bytes: [u8; 128],
    len: usize,
}

impl RequestId {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Serves one request whose head is at `conn.buf[conn.start..]`. Returns whether the
/// connection stays open.
async fn handle<S: ClientIo>(
    core: &Core,
    gw: &Gateway,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
    headers: &mut [Header],
) -> bool {
    let started = core.access.is_some().then(Instant::now);
    let base = conn.start;
    let mut rid = RequestId {
        bytes: [0; 128],
        len: 0,
    };
    let client: IpAddr;
    let routed;
    // The path routes and guards see, when it differs from the path as sent.
    let mut normalized = Vec::new();
    {
        let hb = &conn.buf[base..base + head.len];
        match head.request_id {
            Some(s) => {
                rid.len = s.len();
                rid.bytes[..rid.len].copy_from_slice(s.get(hb));
            }
            None => {
                rid.len = 36;
                rid.bytes[..36].copy_from_slice(&core.new_request_id());
            }
        }
        client = client_ip(
            conn.peer.ip().to_canonical(),
            hb,
            headers,
            &gw.trusted_proxies,
        );
        let host = head.host.map_or(&b""[..], |h| h.get(hb));
        if head.normalize {
            normalized = normalize_path(head.path.get(hb));
        }
        let path = if head.normalize {
            &normalized[..]
        } else {
            head.path.get(hb)
        };
        routed = gw.routes.find(host, path, head.method_span.get(hb));
    }
    let mut ex = Exchange {
        bytes_in: head.len as u64,
        timed: started.is_some(),
        ..Exchange::default()
    };
    let mut route_name = None;
    let mut additions = std::mem::take(&mut conn.additions);
    additions.clear();
    // Decide first, then await one of two futures: each `.await` site gets its own
    // slot in this future's state, and a smaller state is cheaper to box per request.
    let next = match routed {
        _ if conn.tls.is_none()
            && gw.https_redirect.is_some()
            && !forwarded_https(conn, gw, &conn.buf[base..base + head.len], headers) =>
        {
            let hb = &conn.buf[base..base + head.len];
            let redirect = gw.https_redirect.as_ref().expect("checked");
            Next::Answer(
                Cow::Owned(to_https(redirect, head, hb)),
                gw.limits.max_body_bytes,
            )
        }
        RouteMatch::NotFound => {
            Next::Answer(Cow::Owned(Reply::error(404)), gw.limits.max_body_bytes)
        }
        RouteMatch::MethodNotAllowed(allow) => Next::Answer(
            Cow::Owned(Reply::error(405).with_header("allow", &allow)),
            gw.limits.max_body_bytes,
        ),
        RouteMatch::Found(route) => {
            route_name = Some(&*route.name);
            // A stage that reads the body (SigV4's hash, the WAF) needs it before
            // deciding: read it (or its first part) into the buffer now, bounded,
            // where forwarding finds it.
            let mut buffered = None;
            if let BodyKind::Length(n) = head.body {
                let want = route.body_need.bytes(n.min(route.max_body_bytes));
                if want > 0 {
                    if buffer_body(
                        conn,
                        base + head.len,
                        want as usize,
                        head.expect_continue,
                        &gw.limits,
                    )
                    .await
                    .is_err()
                    {
                        return false;
                    }
                    buffered = Some(want as usize);
                }
            }
            let verdict = if route.guards.is_empty() {
                Verdict::Continue
            } else {
                let keys = core.keys();
                let hb = &conn.buf[base..base + head.len];
                let body_start = base + head.len;
                let body = buffered.map(|n| &conn.buf[body_start..body_start + n]);
                let target = head.target.get(hb);
                let raw_path = match memchr::memchr(b'?', target) {
                    Some(i) => &target[..i],
                    None => target,
                };
                let mut ctx = RequestCtx {
                    client_ip: client,
                    method: head.method_span.get(hb),
                    path: if head.normalize {
                        &normalized
                    } else {
                        head.path.get(hb)
                    },
                    query: query_of(target),
                    raw_path,
                    body,
                    has_body: !matches!(head.body, BodyKind::None),
                    body_complete: match head.body {
                        BodyKind::Length(n) => n == 0 || buffered == Some(n as usize),
                        BodyKind::None => true,
                        _ => false,
                    },
                    route: Some(&route.name),
                    audit: core.access.as_ref(),
                    request_id: rid.as_bytes(),
                    head: hb,
                    headers: &mut *headers,
                    limits: &core.limits,
                    keys: &keys,
                    auth: &core.auth,
                    client_cert: conn.tls.as_ref().and_then(|t| t.client_cert.as_deref()),
                    identity: Default::default(),
                    api_key: None,
                    additions: std::mem::take(&mut additions),
                };
                let v = guard::run(&route.guards, &mut ctx).await;
                additions = ctx.additions;
                v
            };
            match (verdict, &route.action) {
                (Verdict::Respond(reply), _) => {
                    Next::Answer(Cow::Owned(reply), route.max_body_bytes)
                }
                (Verdict::Continue, Action::Mock(reply)) => {
                    Next::Answer(Cow::Borrowed(reply), route.max_body_bytes)
                }
                (Verdict::Continue, Action::Proxy(idx)) => {
                    Next::Forward(&gw.upstreams[*idx], route.max_body_bytes)
                }
            }
        }
    };
    if let Some(line) = conn
        .tls
        .as_ref()
        .and_then(|t| gw.tls.get(t.listener))
        .and_then(|l| l.hsts_line.as_deref())
    {
        additions.client.push_str(line);
    }
    let keep = match next {
        Next::Answer(reply, limit) => {
            answer(
                core,
                &gw.limits,
                conn,
                head,
                &reply,
                rid.as_bytes(),
                additions.client.as_bytes(),
                limit,
                &mut ex,
            )
            .await
        }
        Next::Forward(up, limit) => {
            let keep = forward(
                core,
                gw,
                up,
                conn,
                base,
                head,
                headers,
                rid.as_bytes(),
                &additions,
                limit,
                &mut ex,
            )
            .await;
            ex.bytes_in = ((conn.start - base) as u64).max(head.len as u64);
            keep
        }
    };
    if let (Some(sink), Some(started)) = (&core.access, started) {
        let hb = &conn.buf[base..base + head.len];
        sink.record(&AccessRecord {
            request_id: rid.as_bytes(),
            client_ip: client,
            method: head.method_span.get(hb),
            path: head.target.get(hb),
            route: route_name,
            status: ex.status,
            bytes_in: ex.bytes_in,
            bytes_out: ex.bytes_out,
            upstream: ex.upstream,
            upstream_time: ex.upstream_time,
            duration: started.elapsed(),
        });
    }
    conn.additions = additions;
    keep
}

/// Answers with a reply the gateway made (mock, 404, guard refusal). A request body
/// is read and dropped first so the connection can carry the next request.
#[allow(clippy::too_many_arguments)]
async fn answer<S: ClientIo>(
    core: &Core,
    limits: &Limits,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
    reply: &Reply,
    rid: &[u8],
    extra: &[u8],
    body_limit: u64,
    ex: &mut Exchange,
) -> bool {
    conn.start += head.len;
    let mut keep = head.keep_alive && !core.draining.get();
    let mut status = reply.status;
    match BodyState::new(
        head.body,
        body_limit,
        head.expect_continue,
        limits.max_header_bytes,
    ) {
        Err(e) => {
            status = body_error_status(e);
            keep = false;
        }
        Ok(mut body) if !body.is_done() => {
            let buffered = body.take(&conn.buf[conn.start..]);
            match buffered {
                Err(e) => {
                    status = body_error_status(e);
                    keep = false;
                }
                Ok(n) => {
                    conn.start += n;
                    if !body.is_done() {
                        if head.expect_continue && reply.status >= 400 {
                            // The client waits for 100 before sending its body: refuse
                            // without inviting it, and close.
                            keep = false;
                        } else if let Err(e) =
                            pump(core, conn, &mut body, None, limits.idle_timeout).await
                        {
                            if e == BodyError::ClientGone {
                                return false;
                            }
                            status = body_error_status(e);
                            keep = false;
                        }
                    }
                }
            }
            ex.bytes_in += body.received;
        }
        Ok(_) => {}
    }
    let replacement;
    let reply = if status == reply.status {
        reply
    } else {
        replacement = Reply::error(status);
        &replacement
    };
    ex.status = status;
    let mut out = core.take_buffer();
    render(
        &mut out,
        reply,
        rid,
        extra,
        Persistence::for_request(keep, head.minor),
        head.method == Method::Head,
    );
    ex.bytes_out += out.len() as u64;
    match conn.write_all(out).await {
        Ok(out) => {
            core.give_buffer(out);
            keep
        }
        Err(_) => false,
    }
}

/// Reads until `conn.buf` holds `n` body bytes from `start` (sending `100 Continue`
/// first when the client waits for it). Err: the client went away or stalled.
async fn buffer_body<S: ClientIo>(
    conn: &mut ClientConn<S>,
    start: usize,
    n: usize,
    expect_continue: bool,
    limits: &Limits,
) -> Result<(), ()> {
    let need = start + n;
    if conn.buf.len() >= need {
        return Ok(());
    }
    if expect_continue {
        conn.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
            .await
            .map_err(|_| ())?;
    }
    if conn.buf.capacity() < need {
        conn.buf.reserve_exact(need - conn.buf.len());
    }
    while conn.buf.len() < need {
        let buf = std::mem::take(&mut conn.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = conn.stream.read(buf.slice_mut(len..cap));
        let (r, b) = conn
            .deadline
            .within(limits.idle_timeout, read)
            .await
            .map_err(|_| ())?;
        conn.buf = b.into_inner();
        match r {
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Whether a trusted proxy in front says the client spoke HTTPS to it
/// (`X-Forwarded-Proto: https`): then `https_only` has nothing to redirect, and a
/// redirect would loop behind a load balancer that terminates TLS.
fn forwarded_https<S: ClientIo>(
    conn: &ClientConn<S>,
    gw: &Gateway,
    hb: &[u8],
    headers: &[Header],
) -> bool {
    conn.peer_trusted(&gw.trusted_proxies)
        && headers.iter().any(|h| {
            h.name.get(hb).eq_ignore_ascii_case(b"x-forwarded-proto")
                && h.value.get(hb).eq_ignore_ascii_case(b"https")
        })
}

/// `https_only` on a plain listener: 308 to the same target on the HTTPS port
/// (403 for a non-idempotent method when so configured, or without a Host to name).
fn to_https(redirect: &crate::gateway::HttpsRedirect, head: &RequestHead, hb: &[u8]) -> Reply {
    let host = head.host.map(|h| h.get(hb)).filter(|h| !h.is_empty());
    let Some(host) = host else {
        return Reply::error(403);
    };
    if redirect.forbid_unsafe && !head.method.is_idempotent() {
        return Reply::error(403);
    }
    // The host without its port; an IPv6 literal keeps its brackets.
    let name = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[..i],
        _ => host,
    };
    let mut location = String::from("https://");
    location.push_str(&String::from_utf8_lossy(name));
    if redirect.port != 443 {
        location.push(':');
        location.push_str(itoa::Buffer::new().format(redirect.port));
    }
    // The target as sent (origin-form; an absolute-form target keeps its path;
    // `OPTIONS *` goes to the root).
    let target = match head.target.get(hb) {
        b"*" => &b"/"[..],
        t => t,
    };
    let path = match target.iter().position(|&b| b == b'/') {
        Some(i) if target.first() != Some(&b'/') => match target[i..].strip_prefix(b"//") {
            Some(rest) => rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |j| &rest[j..]),
            None => &target[i..],
        },
        _ => target,
    };
    location.push_str(&String::from_utf8_lossy(path));
    Reply::error(308).with_header("location", &location)
}

/// The query of a request target (after `?`), or empty.
fn query_of(target: &[u8]) -> &[u8] {
    match memchr::memchr(b'?', target) {
        Some(i) => &target[i + 1..],
        None => b"",
    }
}

fn body_error_status(e: BodyError) -> u16 {
    match e {
        BodyError::TooLarge => 413,
        BodyError::Malformed => 400,
        BodyError::Timeout => 408,
        BodyError::ClientGone | BodyError::Upstream => 400,
    }
}

fn log_refusal<S>(core: &Core, conn: &ClientConn<S>, id: &[u8], status: u16) {
    if let Some(sink) = &core.access {
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
        });
    }
}
