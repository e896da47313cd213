//! Logging: the operational log (tracing, to stdout) and the access log.
//!
//! The access log is one JSON line per request. A core formats its line and pushes
//! it onto its own bounded queue; a writer thread drains every core's queue to the
//! destination. A full queue drops the line and counts it — the request path never
//! waits for the disk.

mod access;
mod time;

pub use access::{AccessLog, AccessRecord, AccessSink};

/// Installs the tracing subscriber for the operational log at `level`.
pub fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
