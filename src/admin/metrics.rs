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

/// A metric family: name, type, help, and its samples as (labels, value).
type Family<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

/// The exposition text.
pub fn render(shared: &Shared, control: &Control) -> String {
    let mut out = String::with_capacity(1024);
    let driver = control.driver.get().map_or("unknown", |d| d.as_str());
    let build = format!(
        "{{version=\"{}\",driver=\"{driver}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    let ready = control.ready.load(Ordering::Acquire) && !shared.shutdown.load(Ordering::Acquire);
    let families: [Family<'_>; 5] = [
        (
            "portcullis_build_info",
            "gauge",
            "The running build: version and io driver.",
            &[(&build, 1)],
        ),
        (
            "portcullis_config_generation",
            "gauge",
            "The generation of the config serving (1 at start, +1 per successful reload).",
            &[("", shared.generation.load(Ordering::Acquire))],
        ),
        (
            "portcullis_reloads_total",
            "counter",
            "Reloads (SIGHUP or POST /reload) by result.",
            &[
                (
                    "{result=\"ok\"}",
                    control.reloads_ok.load(Ordering::Relaxed),
                ),
                (
                    "{result=\"error\"}",
                    control.reloads_failed.load(Ordering::Relaxed),
                ),
            ],
        ),
        (
            "portcullis_config_last_reload_success_timestamp_seconds",
            "gauge",
            "When the config serving was loaded (Unix seconds).",
            &[("", control.last_reload_success.load(Ordering::Relaxed))],
        ),
        (
            "portcullis_ready",
            "gauge",
            "1 while serving; 0 while starting or draining.",
            &[("", u64::from(ready))],
        ),
    ];
    for (name, kind, help, samples) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    out
}
