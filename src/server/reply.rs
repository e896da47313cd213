//! The answers the gateway writes itself (a mock, 404, 405, a guard's refusal, a
//! redirect): the request body, if any, is read and dropped first so the
//! connection can carry the next request.

use crate::gateway::Gateway;
use crate::http::reply::{render, Persistence, Reply};
use crate::http::request::Method;
use crate::session::{pump, BodyError, BodyState, ClientConn, ClientIo, Core, Request};

/// Answers with a reply the gateway made (mock, 404, guard refusal). A request body
/// is read and dropped first so the connection can carry the next request.
pub(super) async fn answer<S: ClientIo>(
    core: &Core,
    gw: &Gateway,
    conn: &mut ClientConn<S>,
    req: &mut Request<'_>,
    reply: &Reply,
) -> bool {
    let head = req.head;
    let ex = &mut req.exchange;
    conn.start += head.len;
    let mut keep = head.keep_alive && !core.draining.get();
    let mut status = reply.status;
    match BodyState::new(
        head.body,
        req.body_limit,
        head.expect_continue,
        gw.server.max_header_bytes,
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
                        } else if let Err(e) = pump(core, conn, &mut body, None).await {
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
        req.id.as_bytes(),
        req.additions.client.as_bytes(),
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

pub(super) fn body_error_status(e: BodyError) -> u16 {
    match e {
        BodyError::TooLarge => 413,
        BodyError::Malformed => 400,
        BodyError::Timeout => 408,
        BodyError::ClientGone | BodyError::Upstream => 400,
    }
}
