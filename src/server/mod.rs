//! The client side: accepting connections and serving them.
//!
//! [`accept_loop`] admits connections up to `max_connections` per core (beyond it a
//! client gets 503 and a close) and runs each in its own task behind
//! [`CatchUnwind`], so a panic while serving one connection closes that connection
//! and nothing else.

mod body;
mod conn;
mod deadline;
mod panic;

use std::rc::Rc;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpListener;

pub use body::{pump, BodyError, BodyState};
pub use conn::ClientConn;
pub use deadline::{Deadline, Elapsed, Timers, TICK};
pub use panic::CatchUnwind;

use crate::http::reply::{render, Persistence, Reply};
use crate::runtime::Core;

/// Accepts connections until the listener is shut down.
pub async fn accept_loop(core: Rc<Core>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if core.draining.get() {
                    return;
                }
                let _ = stream.set_nodelay(true);
                let limits = &core.gateway().limits;
                // A client that stops reading cannot hold a response write forever.
                crate::sock::set_user_timeout(&stream, limits.idle_timeout);
                let limit = limits.max_connections;
                if core.connections.get() >= limit {
                    monoio::spawn(refuse(stream, core.new_request_id()));
                    continue;
                }
                core.connections.set(core.connections.get() + 1);
                let c = core.clone();
                monoio::spawn(async move {
                    let peer_ip = peer.ip();
                    if CatchUnwind::new(conn::serve(c.clone(), stream, peer))
                        .await
                        .is_err()
                    {
                        tracing::error!(client = %peer_ip, "panic while serving a connection; connection closed");
                    }
                    c.connections.set(c.connections.get() - 1);
                });
            }
            Err(e) => {
                if core.draining.get() {
                    return;
                }
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                core.timers.next_tick().await;
            }
        }
    }
}

async fn refuse(mut stream: monoio::net::TcpStream, request_id: [u8; 36]) {
    let mut out = Vec::with_capacity(256);
    render(
        &mut out,
        &Reply::error(503),
        &request_id,
        b"",
        Persistence::Close,
        false,
    );
    // A few hundred bytes into a fresh socket's empty buffer: the write completes at
    // once; the user timeout bounds a peer that never acknowledges.
    crate::sock::set_user_timeout(&stream, std::time::Duration::from_secs(1));
    let _ = stream.write_all(out).await;
}
