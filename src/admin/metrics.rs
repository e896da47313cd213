//! `GET /metrics`: the Prometheus text exposition format 0.0.4, written by hand
//! (a few lines of text; the request-path counters of the metrics issue will
//! bring a registry).
//!
//! Exported now: `portcullis_build_info{version,driver}` (1),
//! `portcullis_config_generation`, `portcullis_reloads_total{result}` (`ok`,
//! `error`), `portcullis_config_last_reload_success_timestamp_seconds` and
//! `portcullis_ready` (1 once serving, 0 while starting or draining).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::Control;
use crate::session::Shared;

/// The exposition text.
pub fn render(shared: &Shared, control: &Control) -> String {
    let mut out = String::with_capacity(1024);
    let driver = control.driver.get().map_or("unknown", |d| d.as_str());
    family(
        &mut out,
        "portcullis_build_info",
        "gauge",
        "The running build: version and io driver.",
    );
    let _ = writeln!(
        out,
        "portcullis_build_info{{version=\"{}\",driver=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        driver
    );
    family(
        &mut out,
        "portcullis_config_generation",
        "gauge",
        "The generation of the config serving (1 at start, +1 per successful reload).",
    );
    let _ = writeln!(
        out,
        "portcullis_config_generation {}",
        shared.generation.load(Ordering::Acquire)
    );
    family(
        &mut out,
        "portcullis_reloads_total",
        "counter",
        "Reloads (SIGHUP or POST /reload) by result.",
    );
    let _ = writeln!(
        out,
        "portcullis_reloads_total{{result=\"ok\"}} {}",
        control.reloads_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "portcullis_reloads_total{{result=\"error\"}} {}",
        control.reloads_failed.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "portcullis_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When the config serving was loaded (Unix seconds).",
    );
    let _ = writeln!(
        out,
        "portcullis_config_last_reload_success_timestamp_seconds {}",
        control.last_reload_success.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "portcullis_ready",
        "gauge",
        "1 while serving; 0 while starting or draining.",
    );
    let ready = control.ready.load(Ordering::Acquire) && !shared.shutdown.load(Ordering::Acquire);
    let _ = writeln!(out, "portcullis_ready {}", u8::from(ready));
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
