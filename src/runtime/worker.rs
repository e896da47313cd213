//! One worker: build the core's monoio runtime (io_uring with COOP_TASKRUN,
//! SINGLE_ISSUER and DEFER_TASKRUN; epoll when io_uring is unavailable), serve its listeners, and on
//! shutdown stop accepting and wait for in-flight requests up to the drain timeout.

use monoio::io::AsyncReadRent;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::{Core, Shared};
use crate::config::DriverChoice;
use crate::log::AccessSink;

pub(super) fn run(
    id: usize,
    shared: Arc<Shared>,
    sink: Option<AccessSink>,
    listeners: Vec<(std::net::TcpListener, crate::server::ListenerKind)>,
    ticks: std::os::unix::net::UnixStream,
    choice: DriverChoice,
    drivers: &Mutex<Vec<&'static str>>,
) {
    let report = |name: &'static str| {
        if let Ok(mut d) = drivers.lock() {
            d.push(name);
        }
    };
    if super::wants_uring(choice) {
        // COOP_TASKRUN + SINGLE_ISSUER (+ DEFER_TASKRUN, kernel 6.1+: completions
        // are posted when the core asks for them, not by interrupting it) measured
        // ~5% more requests/s and a lower p99 here; older kernels get the first two.
        let build = |defer: bool| {
            let mut ring = io_uring::IoUring::builder();
            ring.setup_coop_taskrun().setup_single_issuer();
            if defer {
                ring.setup_defer_taskrun();
            }
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(ring)
                .with_entries(1024)
                .build()
        };
        match build(true).or_else(|_| build(false)) {
            Ok(mut rt) => {
                report("io_uring");
                rt.block_on(serve(id, shared, sink, listeners, ticks));
                return;
            }
            Err(e) if choice == DriverChoice::IoUring => {
                tracing::error!(
                    "core {id}: io_uring unavailable ({e}) and server.driver = \"io_uring\""
                );
                report("none");
                return;
            }
            Err(e) => {
                tracing::warn!("core {id}: io_uring unavailable ({e}); falling back to epoll")
            }
        }
    }
    match monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build() {
        Ok(mut rt) => {
            report("epoll");
            rt.block_on(serve(id, shared, sink, listeners, ticks));
        }
        Err(e) => {
            tracing::error!("core {id}: cannot build epoll runtime: {e}");
            report("none");
        }
    }
}

async fn serve(
    id: usize,
    shared: Arc<Shared>,
    sink: Option<AccessSink>,
    listeners: Vec<(std::net::TcpListener, crate::server::ListenerKind)>,
    ticks: std::os::unix::net::UnixStream,
) {
    let core = Rc::new(Core::new(id, shared.clone(), sink));
    // The sweeper: one byte from the ticker thread per tick.
    match monoio::net::UnixStream::from_std(ticks) {
        Ok(mut ticks) => {
            let core = core.clone();
            monoio::spawn(async move {
                let mut buf = vec![0u8; 64];
                loop {
                    let (r, b) = ticks.read(buf).await;
                    buf = b;
                    match r {
                        Ok(n) if n > 0 => {
                            core.timers.sweep();
                            core.shard.sweep(core.timers.ticks());
                        }
                        _ => break,
                    }
                }
            });
        }
        Err(e) => tracing::error!("core {id}: cannot register the tick socket: {e}"),
    }
    let mut fds = Vec::new();
    for (l, kind) in listeners {
        use std::os::fd::AsRawFd;
        fds.push(l.as_raw_fd());
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                monoio::spawn(crate::server::accept_loop(core.clone(), l, kind));
            }
            Err(e) => tracing::error!("core {id}: cannot register listener: {e}"),
        }
    }
    while !shared.shutdown.load(Ordering::Acquire) {
        core.timers.next_tick().await;
    }
    core.draining.set(true);
    for fd in fds {
        // SAFETY: `fd` belongs to a listener owned by this core's accept task, which
        // is still alive (the runtime has not been dropped). shutdown(2) only changes
        // the socket's state: it stops listening and wakes a pending accept.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
    let deadline = core
        .timers
        .deadline_tick(core.gateway().server.drain_timeout);
    while core.in_flight.get() > 0 && core.timers.ticks() < deadline {
        core.timers.next_tick().await;
    }
    if core.in_flight.get() > 0 {
        tracing::warn!(
            "core {id}: drain timeout with {} requests in flight",
            core.in_flight.get()
        );
    }
    // Hand back unspent allowances so the last quota flush counts exactly.
    core.shard.release_all();
}
