//! One request, in its phases: **route** (the route, or the answer a request gets
//! without one — 404, 405, the HTTPS redirect; a CORS preflight is routed by the
//! method it asks for), **guard** (the body a stage needs
//! read into the buffer, then the route's guard pipeline), **act** (the reply the
//! gateway writes, or the forward to the upstream) and **log** (the access line).
//! [`handle`] reads them top to bottom; each phase takes the [`Request`] by
//! reference.

use std::borrow::Cow;

use monoio::buf::IoBufMut;
use std::time::Instant;

use super::redirect::{forwarded_https, to_https};
use super::reply::answer;
use crate::gateway::{Gateway, Upstream};
use crate::guard::cors::preflight_method;
use crate::guard::{self, RequestCtx, Verdict};
use crate::http::reply::Reply;
use crate::http::request::{normalize_path, Header, RequestHead};
use crate::http::BodyKind;
use crate::log::AccessRecord;
use crate::proxy::{forward, headers::client_ip};
use crate::route::{Action, Preflight, Route, RouteMatch};
use crate::session::{ClientConn, ClientIo, Core, Exchange, Request, RequestId};

/// What a request gets once routed and guarded.
enum Next<'a> {
    /// A reply the gateway makes; the body (if any) is read and dropped first.
    Answer(Cow<'a, Reply>),
    Forward(&'a Upstream),
}

/// Serves one request whose head is at `conn.buf[conn.start..]`. Returns whether the
/// connection stays open.
pub(super) async fn handle<S: ClientIo>(
    core: &Core,
    gw: &Gateway,
    conn: &mut ClientConn<S>,
    head: &RequestHead,
    headers: &mut [Header],
) -> bool {
    let mut req = begin(core, gw, conn, head, headers);
    // Futures are moved whole when they are created, so the phases that await
    // are awaited here and only when needed: a route without guards never builds
    // the guard phase's future, and the act phase's two awaits share one slot of
    // this future's state (which is boxed per request).
    let (routed, next) = match route(gw, conn, &mut req) {
        Ok(r) if r.guards.is_empty() => (Some(r), action(gw, r, Verdict::Continue)),
        Ok(r) => match guard(core, conn, &mut req, r).await {
            Some(verdict) => {
                if let Verdict::Deny(_, reason) = &verdict {
                    req.exchange.denied = Some(*reason);
                }
                (Some(r), action(gw, r, verdict))
            }
            None => return false,
        },
        Err(next) => (None, next),
    };
    // Act phase: the gateway's reply, or the forward.
    add_hsts(gw, conn, &mut req);
    let keep = match next {
        Next::Answer(reply) => answer(core, gw, conn, &mut req, &reply).await,
        Next::Forward(up) => {
            let keep = forward(core, gw, up, conn, &mut req).await;
            req.exchange.bytes_in = ((conn.start - req.base) as u64).max(req.head.len as u64);
            keep
        }
    };
    log(core, gw, conn, &req, routed);
    conn.additions = req.additions;
    keep
}

/// The request's state before any phase: its id, the client's address, the path
/// as routes see it.
fn begin<'r, S>(
    core: &Core,
    gw: &Gateway,
    conn: &mut ClientConn<S>,
    head: &'r RequestHead,
    headers: &'r mut [Header],
) -> Request<'r> {
    let base = conn.start;
    let hb = &conn.buf[base..base + head.len];
    let id = RequestId::new(head.request_id.map(|s| s.get(hb)), || core.new_request_id());
    let client_ip = client_ip(
        conn.peer.ip().to_canonical(),
        hb,
        headers,
        &gw.trusted_proxies,
    );
    let normalized = head.normalize.then(|| normalize_path(head.path.get(hb)));
    let mut additions = std::mem::take(&mut conn.additions);
    additions.clear();
    // Every request is timed: the latency histogram needs it.
    let started = Instant::now();
    Request {
        base,
        head,
        headers,
        id,
        client_ip,
        normalized,
        additions,
        body_limit: gw.server.max_body_bytes,
        cors: false,
        started,
        exchange: Exchange {
            bytes_in: head.len as u64,
            ..Exchange::default()
        },
    }
}

/// Route phase: the route the request goes to, or what it gets instead.
fn route<'g, S: ClientIo>(
    gw: &'g Gateway,
    conn: &ClientConn<S>,
    req: &mut Request<'_>,
) -> Result<&'g Route, Next<'g>> {
    let head = req.head;
    let hb = req.head_bytes(&conn.buf);
    if let Some(redirect) = &gw.https_redirect {
        if conn.tls.is_none() && !forwarded_https(conn, gw, hb, req.headers) {
            return Err(Next::Answer(Cow::Owned(to_https(redirect, head, hb))));
        }
    }
    let host = head.host.map_or(&b""[..], |h| h.get(hb));
    let (path, method) = (req.path(hb), head.method_span.get(hb));
    // A CORS preflight goes to the route that would serve the method it asks for.
    let found = match preflight_method(method, hb, req.headers)
        .map(|requested| gw.routes.find_preflight(host, path, requested))
    {
        Some(Preflight::Route(r)) => RouteMatch::Found(r),
        Some(Preflight::Refuse) => return Err(Next::Answer(Cow::Owned(Reply::error(403)))),
        Some(Preflight::Plain) | None => gw.routes.find(host, path, method),
    };
    match found {
        RouteMatch::NotFound => Err(Next::Answer(Cow::Owned(Reply::error(404)))),
        RouteMatch::MethodNotAllowed(allow) => Err(Next::Answer(Cow::Owned(
            Reply::error(405).with_header("allow", &allow),
        ))),
        RouteMatch::Found(route) => {
            req.body_limit = route.max_body_bytes;
            req.cors = route.cors().is_some();
            Ok(route)
        }
    }
}

/// Guard phase: reads what of the body a stage needs (SigV4's hash, the WAF),
/// bounded, into the buffer where forwarding finds it, then runs the route's
/// pipeline. `None`: the client went away or stalled while sending the body.
async fn guard<S: ClientIo>(
    core: &Core,
    conn: &mut ClientConn<S>,
    req: &mut Request<'_>,
    route: &Route,
) -> Option<Verdict> {
    let head = req.head;
    let mut buffered = None;
    // A chunked body's first bytes, decoded (its framing stays in the buffer,
    // forwarded as it came); and whether that is the whole body.
    let mut decoded: Option<(Vec<u8>, bool)> = None;
    match head.body {
        BodyKind::Length(n) => {
            let want = route.body_need.bytes(n.min(route.max_body_bytes));
            if want > 0 {
                let body_start = req.base + head.len;
                buffer_body(conn, body_start, want as usize, head.expect_continue)
                    .await
                    .ok()?;
                buffered = Some(want as usize);
            }
        }
        BodyKind::Chunked => {
            let want = route.body_need.chunked_prefix().min(route.max_body_bytes);
            if want > 0 {
                let body_start = req.base + head.len;
                let max_trailer = usize::try_from(route.max_body_bytes).unwrap_or(usize::MAX);
                decoded = Some(
                    buffer_chunked(
                        conn,
                        body_start,
                        want as usize,
                        head.expect_continue,
                        max_trailer,
                    )
                    .await
                    .ok()?,
                );
            }
        }
        _ => {}
    }
    let keys = core.keys();
    let hb = req.head_bytes(&conn.buf);
    let body_start = req.base + head.len;
    let target = head.target.get(hb);
    let raw_path = match memchr::memchr(b'?', target) {
        Some(i) => &target[..i],
        None => target,
    };
    let path = match &req.normalized {
        Some(p) => &p[..],
        None => head.path.get(hb),
    };
    let mut ctx = RequestCtx {
        client_ip: req.client_ip,
        method: head.method_span.get(hb),
        path,
        query: query_of(target),
        raw_path,
        body: match &decoded {
            Some((d, _)) => Some(&d[..]),
            None => buffered.map(|n| &conn.buf[body_start..body_start + n]),
        },
        has_body: !matches!(head.body, BodyKind::None),
        body_complete: match head.body {
            BodyKind::Length(n) => n == 0 || buffered == Some(n as usize),
            BodyKind::None => true,
            _ => decoded.as_ref().is_some_and(|(_, whole)| *whole),
        },
        route: Some(&route.name),
        audit: core.access.as_ref(),
        counters: &core.counters,
        waf_rules: None,
        request_id: req.id.as_bytes(),
        head: hb,
        headers: &mut *req.headers,
        shard: &core.shard,
        keys: &keys,
        auth: &core.auth,
        client_cert: conn.tls.as_ref().and_then(|t| t.client_cert.as_deref()),
        identity: Default::default(),
        api_key: None,
        additions: std::mem::take(&mut req.additions),
    };
    let v = guard::run(&route.guards, &mut ctx).await;
    req.additions = ctx.additions;
    req.exchange.identity = ctx.identity.principal.take();
    req.exchange.waf_rules = ctx.waf_rules.take();
    Some(v)
}

/// What the route's action makes of the guards' verdict.
fn action<'g>(gw: &'g Gateway, route: &'g Route, verdict: Verdict) -> Next<'g> {
    match (verdict, &route.action) {
        (Verdict::Respond(reply) | Verdict::Deny(reply, _), _) => Next::Answer(Cow::Owned(reply)),
        (Verdict::Continue, Action::Mock(reply)) => Next::Answer(Cow::Borrowed(reply)),
        (Verdict::Continue, Action::Proxy(idx)) => Next::Forward(&gw.upstreams[*idx]),
    }
}

/// HSTS goes on whichever answer an HTTPS listener with `hsts` gives.
fn add_hsts<S>(gw: &Gateway, conn: &ClientConn<S>, req: &mut Request<'_>) {
    if let Some(line) = conn
        .tls
        .as_ref()
        .and_then(|t| gw.tls.get(t.listener))
        .and_then(|l| l.hsts_line.as_deref())
    {
        req.additions.client.push_str(line);
    }
}

/// Log phase: the request counted, and the access line when there is an access log.
fn log<S>(
    core: &Core,
    gw: &Gateway,
    conn: &ClientConn<S>,
    req: &Request<'_>,
    routed: Option<&Route>,
) {
    let took = req.started.elapsed();
    core.count_request(
        routed.map(|r| r.index),
        req.exchange.status,
        took,
        req.exchange.denied.map(|d| d.index()),
    );
    let Some(sink) = &core.access else {
        return;
    };
    let hb = req.head_bytes(&conn.buf);
    let ex = &req.exchange;
    let field = |name: &[u8]| {
        req.headers
            .iter()
            .find(|h| h.name.get(hb).eq_ignore_ascii_case(name))
            .map_or(&b""[..], |h| h.value.get(hb))
    };
    sink.record(&AccessRecord {
        request_id: req.id.as_bytes(),
        client_ip: req.client_ip,
        method: req.head.method_span.get(hb),
        path: req.head.target.get(hb),
        route: routed.map(|r| &*r.name),
        status: ex.status,
        bytes_in: ex.bytes_in,
        bytes_out: ex.bytes_out,
        upstream: ex.upstream,
        upstream_time: ex.upstream_time,
        duration: took,
        denied: req.exchange.denied.map(|d| d.labels()),
        user_agent: field(b"user-agent"),
        referer: field(b"referer"),
        tls: conn.tls.as_ref().map(|t| t.version),
        identity: ex.identity.as_deref(),
        waf: ex.waf_rules.as_deref(),
        http_minor: req.head.minor,
        stage: gw.server.stage.as_deref(),
    });
}

/// `100 Continue`, for a client that waits for it before sending its body.
async fn send_continue<S: ClientIo>(conn: &mut ClientConn<S>) -> Result<(), ()> {
    conn.write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
        .await
        .map(|_| ())
        .map_err(|_| ())
}

/// One read of the client into `conn.buf`'s spare capacity, filling it to at
/// most `limit` bytes, within `idle_timeout`. Err: the client went away,
/// failed or stalled.
async fn read_more<S: ClientIo>(conn: &mut ClientConn<S>, limit: usize) -> Result<(), ()> {
    let buf = std::mem::take(&mut conn.buf);
    let (len, cap) = (buf.len(), buf.capacity());
    let read = conn.stream.read(buf.slice_mut(len..cap.min(limit)));
    let (r, b) = conn
        .deadline
        .within(conn.idle_timeout, read)
        .await
        .map_err(|_| ())?;
    conn.buf = b.into_inner();
    match r {
        Ok(0) | Err(_) => Err(()),
        Ok(_) => Ok(()),
    }
}

/// Reads until `conn.buf` holds `n` body bytes from `start` (sending `100 Continue`
/// first when the client waits for it). Err: the client went away or stalled.
async fn buffer_body<S: ClientIo>(
    conn: &mut ClientConn<S>,
    start: usize,
    n: usize,
    expect_continue: bool,
) -> Result<(), ()> {
    let need = start + n;
    if conn.buf.len() >= need {
        return Ok(());
    }
    if expect_continue {
        send_continue(conn).await?;
    }
    if conn.buf.capacity() < need {
        conn.buf.reserve_exact(need - conn.buf.len());
    }
    while conn.buf.len() < need {
        read_more(conn, need).await?;
    }
    Ok(())
}

/// Reads a chunked body into `conn.buf` from `start` until `want` bytes of
/// chunk data are in (or the body ended, or its framing is refused: the
/// forward then answers that), and returns that data decoded and whether it
/// is the whole body. The raw bytes buffered are bounded (framing can be most
/// of a body made of tiny chunks): at most `4 × want + 4 KiB`.
async fn buffer_chunked<S: ClientIo>(
    conn: &mut ClientConn<S>,
    start: usize,
    want: usize,
    expect_continue: bool,
    max_trailer: usize,
) -> Result<(Vec<u8>, bool), ()> {
    use crate::http::chunked::ChunkedScanner;
    let raw_cap = want.saturating_mul(4).saturating_add(4096);
    let mut continued = false;
    // Fed incrementally: each read's new bytes only (a body sent a byte at a
    // time costs linear work, not a rescan per read).
    let mut scanner = ChunkedScanner::new(max_trailer);
    let mut data: Vec<u8> = Vec::new();
    let mut fed = start.min(conn.buf.len());
    let mut framing_ok = true;
    loop {
        if framing_ok && !scanner.is_done() {
            let raw = &conn.buf[fed..];
            let result = scanner.feed(raw, |r| {
                let room = want.saturating_sub(data.len());
                data.extend_from_slice(&raw[r.start..r.end.min(r.start + room)]);
            });
            match result {
                Ok(n) => fed += n,
                Err(_) => framing_ok = false,
            }
        }
        let raw_len = conn.buf.len().saturating_sub(start);
        // Whole: the body ended and all of its data fit in `want`.
        let whole = scanner.is_done() && scanner.data_len <= want as u64;
        if scanner.is_done() || !framing_ok || data.len() >= want || raw_len >= raw_cap {
            return Ok((data, whole));
        }
        if expect_continue && !continued {
            send_continue(conn).await?;
            continued = true;
        }
        let need = start + raw_cap;
        if conn.buf.capacity() < need.min(conn.buf.len() + 16 * 1024) {
            conn.buf.reserve(16 * 1024);
        }
        read_more(conn, need).await?;
    }
}

/// The query of a request target (after `?`), or empty.
fn query_of(target: &[u8]) -> &[u8] {
    match memchr::memchr(b'?', target) {
        Some(i) => &target[i + 1..],
        None => b"",
    }
}
