//! The client side: accepting connections and serving them.
//!
//! [`accept_loop`] admits connections up to `max_connections` per core (beyond it a
//! plain client gets 503 and a close, a TLS client just the close) and runs each in
//! its own task behind [`CatchUnwind`], so a panic while serving one connection
//! closes that connection and nothing else. On an HTTPS listener the task first
//! completes the TLS handshake (bounded by `handshake_timeout`) with the listener's
//! config from the snapshot current at that moment — so a reload's certificates
//! serve new handshakes while live connections keep theirs — then serves the TLS
//! stream with the same connection loop as plain TCP.

mod conn;
mod redirect;
mod reply;
mod request;

use std::rc::Rc;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpListener;

pub use crate::session::{ClientConn, ClientIo, ConnTls};

use crate::http::reply::{render, Persistence, Reply};
use crate::panic::CatchUnwind;
use crate::session::Core;
use crate::time::Deadline;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Plain,
    /// HTTPS: entry `i` of `[[server.tls]]`.
    Tls(usize),
}

/// Accepts connections until the listener is shut down.
pub async fn accept_loop(core: Rc<Core>, listener: TcpListener, kind: ListenerKind) {
    let label: Rc<str> = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string())
        .into();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if core.draining.get() {
                    return;
                }
                let _ = stream.set_nodelay(true);
                let server = &core.gateway().server;
                // A client that stops reading cannot hold a response write forever.
                crate::sock::set_user_timeout(&stream, server.idle_timeout);
                let limit = server.max_connections;
                if core.connections.get() >= limit {
                    if kind == ListenerKind::Plain {
                        monoio::spawn(refuse(stream, core.new_request_id()));
                    }
                    continue;
                }
                core.connections.set(core.connections.get() + 1);
                core.counters
                    .bump("portcullis_connections_total", &[("listener", &label)]);
                let c = core.clone();
                let label = label.clone();
                monoio::spawn(async move {
                    let peer_ip = peer.ip();
                    let served = match kind {
                        ListenerKind::Plain => {
                            CatchUnwind::new(conn::serve(c.clone(), stream, peer, None)).await
                        }
                        ListenerKind::Tls(i) => {
                            CatchUnwind::new(serve_tls(c.clone(), stream, peer, i, &label)).await
                        }
                    };
                    if served.is_err() {
                        tracing::error!(client = %peer_ip, "panic while serving a connection; connection closed");
                    }
                    c.connections.set(c.connections.get() - 1);
                    c.counters.bump(
                        "portcullis_connections_closed_total",
                        &[("listener", &label)],
                    );
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

/// Completes the TLS handshake of listener `i`, then serves the connection.
async fn serve_tls(
    core: Rc<Core>,
    stream: monoio::net::TcpStream,
    peer: std::net::SocketAddr,
    i: usize,
    label: &str,
) {
    let gw = core.gateway();
    let Some(listener) = gw.tls.get(i) else {
        // A reload removed this listener's entry; it serves again after a restart.
        return;
    };
    let Ok(session) = rustls::ServerConnection::new(listener.config.clone()) else {
        return;
    };
    let timeout = listener.handshake_timeout;
    drop(gw);
    let mut deadline = Deadline::new(&core.timers);
    let result = deadline
        .within(timeout, crate::tls::TlsStream::handshake(stream, session))
        .await;
    let outcome = match &result {
        Ok(Ok(_)) => "ok",
        Ok(Err(_)) => "error",
        Err(_) => "timeout",
    };
    core.counters.bump(
        "portcullis_tls_handshakes_total",
        &[("listener", label), ("result", outcome)],
    );
    let tls = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer.ip(), "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(client = %peer.ip(), "TLS handshake timed out");
            return;
        }
    };
    let client_cert = tls
        .session()
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| crate::tls::ClientCert::from_der(leaf))
        .map(Box::new);
    let version = match tls.session().protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let facts = ConnTls {
        listener: i,
        client_cert,
        version,
    };
    conn::serve(core, tls, peer, Some(facts)).await;
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
