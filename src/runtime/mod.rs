//! The runtime: one worker thread per core, each pinned and running its own monoio
//! runtime with its own SO_REUSEPORT listeners, plus the control thread (the main
//! thread) that owns signals — SIGHUP reloads, SIGUSR1 reopens the access log file,
//! SIGTERM/SIGINT drain and exit — and
//! the ticker thread that drives every core's deadline sweeper.
//!
//! A reload compiles a new [`Gateway`] on the control thread and publishes it through
//! an `ArcSwap` and a generation counter that each core checks per request; a config
//! that fails to load or compile is logged and the old snapshot keeps serving.

mod control;
mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

use crate::admin::Control;
use crate::config::{Config, DriverChoice};
use crate::guard::auth::jwks::JwksRegistry;
use crate::limit::Limiter;
use crate::log::AccessLog;
use crate::server::ListenerKind;

pub use crate::session::{Core, Shared};

/// Starts the gateway from the config at `path` and runs until SIGTERM/SIGINT.
pub fn run(path: &Path) -> Result<(), String> {
    // rustls (JWKS over https) uses aws-lc-rs, like the rest of the gateway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let jwks = JwksRegistry::default();
    let (config, source, gateway) =
        crate::gateway::load_with(path, &jwks).map_err(|e| e.to_string())?;
    crate::log::init_tracing(&config.log.level);

    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let listen: Vec<(SocketAddr, ListenerKind)> = config
        .server
        .listeners()
        .map(|(tls, a)| {
            (
                *a.get_ref(),
                tls.map_or(ListenerKind::Plain, ListenerKind::Tls),
            )
        })
        .collect();
    if listen.is_empty() {
        return Err(format!(
            "{}: server.listen: no listener configured (and no [[server.tls]])",
            path.display()
        ));
    }
    // Bind every core's listeners before any thread starts, so a bad address fails
    // the start with a clear error instead of a dead worker.
    for (addr, _) in &listen {
        refuse_if_claimed(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    let mut listeners: Vec<Vec<(std::net::TcpListener, ListenerKind)>> =
        Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut mine = Vec::with_capacity(listen.len());
        for (addr, kind) in &listen {
            let l = bind_reuseport(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            mine.push((l, *kind));
        }
        listeners.push(mine);
    }

    let limiter = Limiter::new(workers, gateway.throttle.max_tracked);
    let (mut housekeeper, keys) = control::Housekeeper::start(&gateway, &limiter)?;
    let shared = Arc::new(Shared {
        gateway: ArcSwap::from_pointee(gateway),
        generation: AtomicU64::new(1),
        shutdown: AtomicBool::new(false),
        keys: ArcSwap::from_pointee(keys),
        keys_generation: AtomicU64::new(1),
        limiter,
        metrics: crate::metrics::Registry::new(workers),
    });
    let (access, writer) = start_access_log(&config, source.dir(), workers)?;
    // Bound before the cores start, so a bad address fails the start; served
    // once they are (`/ready` says when).
    let (control, reload_requests) = Control::new();
    housekeeper.flush_errors = control.store_flush_errors.clone();
    if let Some(a) = &access {
        let _ = control.access_log.set(a.clone());
    }
    let admin_listener = match &shared.gateway.load().admin {
        Some(a) => Some(crate::admin::bind(a.listen)?),
        None => None,
    };

    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let driver = config.server.driver;
    let drivers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut handles = Vec::with_capacity(workers);
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (ticker, tick_sockets) = start_ticker(workers)?;
    for ((id, mine), ticks) in listeners.into_iter().enumerate().zip(tick_sockets) {
        let shared = shared.clone();
        let sink = access.as_ref().map(|a| a.sink(id));
        let pin = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let drivers = drivers.clone();
        let handle = std::thread::Builder::new()
            .name(format!("core-{id}"))
            .spawn(move || {
                if let Some(c) = pin {
                    core_affinity::set_for_current(c);
                }
                worker::run(id, shared, sink, mine, ticks, driver, &drivers)
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(handle);
    }
    // Wait until each worker has chosen its driver, then say what runs.
    let started = std::time::Instant::now();
    while drivers.lock().map(|d| d.len()).unwrap_or(workers) < workers
        && started.elapsed().as_secs() < 5
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let names: Vec<&str> = drivers.lock().map(|d| d.clone()).unwrap_or_default();
    let driver_name = names.first().copied().unwrap_or("unknown");
    let _ = control.driver.set(driver_name.to_string());
    if let Some(l) = admin_listener {
        crate::admin::start(l, shared.clone(), control.clone())?;
    }
    control.ready.store(true, Ordering::Release);
    tracing::info!(
        "portcullis running: workers={workers} driver={driver_name} stage={} listen={} routes={} config={}",
        shared.gateway.load().server.stage.as_deref().unwrap_or("-"),
        listen
            .iter()
            .map(|(a, k)| match k {
                ListenerKind::Plain => a.to_string(),
                ListenerKind::Tls(_) => format!("https://{a}"),
            })
            .collect::<Vec<_>>()
            .join(","),
        shared.gateway.load().routes.len(),
        path.display()
    );

    // SIGTERM/SIGINT: when the listeners close (after server.shutdown_delay).
    let mut stop_at: Option<std::time::Instant> = None;
    'control: loop {
        if stop_at.is_some_and(|t| std::time::Instant::now() >= t) {
            shared.shutdown.store(true, Ordering::Release);
            break 'control;
        }
        for signal in signals.pending() {
            match signal {
                SIGHUP => {
                    let ok = reload(path, &shared, &config, &jwks).is_ok();
                    control.reloaded(ok);
                    if ok {
                        housekeeper.reloaded(&shared);
                    }
                }
                SIGUSR1 => {
                    if let Some(a) = &access {
                        a.reopen();
                    }
                }
                _ => {
                    let server = &shared.gateway.load().server;
                    let delay = server.shutdown_delay;
                    // A second signal during the delay stops at once.
                    if delay.is_zero() || stop_at.is_some() {
                        tracing::info!(
                            "signal {signal}: draining (up to {:?})",
                            server.drain_timeout
                        );
                        control.stopping.store(true, Ordering::Release);
                        shared.shutdown.store(true, Ordering::Release);
                        break 'control;
                    }
                    tracing::info!(
                        "signal {signal}: /ready says 503; serving {delay:?} more, then draining (up to {:?})",
                        server.drain_timeout
                    );
                    control.stopping.store(true, Ordering::Release);
                    stop_at = Some(std::time::Instant::now() + delay);
                }
            }
        }
        while let Ok(request) = reload_requests.try_recv() {
            let result = reload(path, &shared, &config, &jwks);
            control.reloaded(result.is_ok());
            if result.is_ok() {
                housekeeper.reloaded(&shared);
            }
            let _ = request
                .reply
                .send(result.map(|()| shared.generation.load(Ordering::Acquire)));
        }
        housekeeper.tick(&shared);
        jwks.poll();
        std::thread::sleep(CONTROL_POLL);
    }
    // While the cores drain, keep flushing counters and applying key changes: a
    // drain can last drain_timeout, and a kill at its end must lose no more than
    // a flush interval.
    while handles.iter().any(|h| !h.is_finished()) {
        while let Ok(request) = reload_requests.try_recv() {
            let _ = request.reply.send(Err("draining: no reload".into()));
        }
        housekeeper.tick(&shared);
        std::thread::sleep(CONTROL_POLL);
    }
    for h in handles {
        let _ = h.join();
    }
    housekeeper.flush(&shared, true);
    ticker.stop();
    if let Some(a) = access {
        a.stop();
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Drives every core's sweeper: one byte per tick into each core's socket. A thread
/// rather than a timer in each runtime, so the cores run without monoio's timer
/// driver and its bookkeeping on every park.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_ticker(cores: usize) -> Result<(Ticker, Vec<std::os::unix::net::UnixStream>), String> {
    use std::io::Write;
    let mut writers = Vec::with_capacity(cores);
    let mut readers = Vec::with_capacity(cores);
    for _ in 0..cores {
        let (w, r) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| format!("cannot create tick socket: {e}"))?;
        // A core that stops reading must not stall the ticker or the others.
        w.set_nonblocking(true)
            .map_err(|e| format!("tick socket: {e}"))?;
        r.set_nonblocking(true)
            .map_err(|e| format!("tick socket: {e}"))?;
        writers.push(w);
        readers.push(r);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            while !stopped.load(Ordering::Acquire) {
                std::thread::sleep(crate::time::TICK);
                for w in &mut writers {
                    let _ = w.write(&[1]);
                }
            }
        })
        .map_err(|e| format!("cannot start ticker thread: {e}"))?;
    Ok((
        Ticker {
            stop,
            thread: Some(thread),
        },
        readers,
    ))
}

/// How often the control thread looks at signals and due work.
const CONTROL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Loads and compiles the config again; on success publishes it to every core.
/// The error (`FILE:LINE:COL: FIELD: MESSAGE`) leaves the old config serving.
fn reload(
    path: &Path,
    shared: &Shared,
    started_with: &Config,
    jwks: &JwksRegistry,
) -> Result<(), String> {
    match crate::gateway::load_with(path, jwks) {
        Ok((config, _, gateway)) => {
            let listeners = |c: &Config| {
                c.server
                    .listeners()
                    .map(|(tls, a)| (tls, *a.get_ref()))
                    .collect::<Vec<_>>()
            };
            if listeners(&config) != listeners(started_with)
                || config.server.workers != started_with.server.workers
            {
                tracing::warn!(
                    "reload: server.listen, server.tls listen addresses and server.workers take effect at restart only"
                );
            }
            if config.admin.as_ref().map(|a| *a.listen.get_ref())
                != started_with.admin.as_ref().map(|a| *a.listen.get_ref())
            {
                tracing::warn!("reload: admin.listen takes effect at restart only");
            }
            if config.log.access != started_with.log.access
                || config.log.level != started_with.log.level
            {
                tracing::warn!("reload: log.access and log.level take effect at restart only");
            }
            if gateway.throttle.max_tracked != shared.gateway.load().throttle.max_tracked {
                tracing::warn!("reload: throttle.max_tracked takes effect at restart only");
            }
            let routes = gateway.routes.len();
            shared.limiter.config_changed();
            shared.gateway.store(Arc::new(gateway));
            shared.generation.fetch_add(1, Ordering::AcqRel);
            tracing::info!(routes, "reload ok");
            Ok(())
        }
        Err(e) => {
            tracing::error!("reload failed: {e}; keeping the running config");
            Err(e.to_string())
        }
    }
}

/// The access log handle and its writer thread, when the log is on.
type AccessLogParts = (Option<Arc<AccessLog>>, Option<std::thread::JoinHandle<()>>);

fn start_access_log(config: &Config, dir: &Path, workers: usize) -> Result<AccessLogParts, String> {
    let (out, reopen): (Box<dyn std::io::Write + Send>, Option<crate::log::Reopen>) =
        match config.log.access.as_str() {
            "off" => return Ok((None, None)),
            "stdout" => (Box::new(std::io::stdout()), None),
            file => {
                let p: PathBuf = dir.join(file);
                let open = move || -> std::io::Result<Box<dyn std::io::Write + Send>> {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)?;
                    Ok(Box::new(std::io::BufWriter::with_capacity(64 << 10, f)))
                };
                let out = open().map_err(|e| {
                    format!("log.access: cannot open {}: {e}", dir.join(file).display())
                })?;
                (out, Some(Box::new(open)))
            }
        };
    let combined = config.log.format == crate::config::LogFormat::Combined;
    let log = AccessLog::with_format(workers, combined);
    let writer = log.spawn_writer(out, reopen);
    Ok((Some(log), Some(writer)))
}

/// Fails when some other socket already listens on `addr`. The cores' listeners
/// use SO_REUSEPORT, which would otherwise let a second process of the same user
/// (a stale gateway left running, say) silently take a share of the connections
/// with its own config. A plain bind (SO_REUSEADDR only, so connections in
/// TIME_WAIT do not count) conflicts with any listener, SO_REUSEPORT or not.
/// The probe is closed before the cores bind; what could slip into that gap is
/// only a process binding the same port in the same microseconds.
fn refuse_if_claimed(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    tcp_socket(addr)?
        .bind(&addr.into())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => std::io::Error::new(
                e.kind(),
                "address already in use: another process listens on it",
            ),
            _ => e,
        })
}

/// A TCP socket for `addr`'s family with SO_REUSEADDR (a listener restarts
/// while its old connections sit in TIME_WAIT).
fn tcp_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = tcp_socket(addr)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Which driver a worker should try first.
pub(crate) fn wants_uring(choice: DriverChoice) -> bool {
    choice != DriverChoice::Epoll
}
