//! Logging: the operational log (tracing, to stdout) and the access log.
//!
//! The access log is one JSON line per request. A core formats its line and pushes
//! it onto its own bounded queue; a writer thread drains every core's queue to the
//! destination. A full queue drops the line and counts it — the request path never
//! waits for the disk. `SIGUSR1` makes the writer reopen a file destination (what
//! logrotate's `postrotate` sends), between two lines.

mod access;
mod time;

pub use access::{json_str, AccessLog, AccessRecord, AccessSink, Reopen};

/// Installs the tracing subscriber for the operational log at `level`. Colours
/// only on a terminal (and never with `NO_COLOR` set), so log files stay plain.
pub fn init_tracing(level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}
