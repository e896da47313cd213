//! `GET /metrics`: the Prometheus text exposition format 0.0.4.
//!
//! Written by hand rather than through `prometheus-client`: the request-path
//! counters live in [`crate::metrics`]' per-core slots (no registry object
//! can own them without a shared write per request), so a scrape reads and
//! sums those and formats a few families, which is all a registry would do.
//!
//! Exported now: `portcullis_build_info{version,driver}` (1),
//! `portcullis_config_generation`, `portcullis_reloads_total{result}` (`ok`,
//! `error`), `portcullis_config_last_reload_success_timestamp_seconds`,
//! `portcullis_ready` (1 once serving, 0 while starting or draining),
//! `portcullis_requests_total{route,code}` (`route="(unmatched)"` when no route
//! matched, including requests refused before routing) and
//! `portcullis_denied_total{route,stage,reason}` (every refusal by a stage or,
//! under `(unmatched)`, by the protocol checks before routing; the reasons are
//! [`crate::guard::Reason`]'s fixed set),
//! `portcullis_throttled_total{route,level}` (`api_key`, `route`, `account`,
//! `ip`, `quota`: the level that refused; no per-key or per-IP series),
//! `portcullis_waf_matches_total{waf,rule,action}`,
//! `portcullis_upstream_duration_seconds{upstream}` (a histogram),
//! `portcullis_upstream_errors_total{upstream,kind}`,
//! `portcullis_upstream_target_up{upstream,target}`,
//! `portcullis_connections_total{listener}` (and `_closed_total`, and the
//! `portcullis_connections_active` gauge, their difference),
//! `portcullis_tls_handshakes_total{listener,result}`,
//! `portcullis_access_log_dropped_total`, `portcullis_store_flush_errors_total`,
//! `portcullis_authorizer_cache_hits_total` / `_misses_total{authorizer}`,
//! `portcullis_jwks_keys` and `portcullis_jwks_last_success_timestamp_seconds{authorizer}`,
//! `portcullis_request_duration_seconds{route}` (a histogram of the whole
//! request, head read to response end; buckets [`crate::metrics::BUCKETS`]).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::Control;
use crate::guard::Reason;
use crate::metrics::{RouteTotals, BUCKETS, REASONS};

const _: () = assert!(Reason::ALL.len() <= REASONS, "every reason needs a counter");
use crate::session::Shared;

/// A metric family: name, type, help, and its samples as (labels, value).
type Family<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

/// The exposition text.
pub fn render(shared: &Shared, control: &Control) -> String {
    let mut out = String::with_capacity(1024);
    let driver = control.driver.get().map_or("unknown", |d| d.as_str());
    let stage = shared.gateway.load().server.stage.clone();
    let build = format!(
        "{{version=\"{}\",driver=\"{driver}\",stage=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        stage.as_deref().unwrap_or("")
    );
    let ready = control.ready.load(Ordering::Acquire)
        && !control.stopping.load(Ordering::Acquire)
        && !shared.shutdown.load(Ordering::Acquire);
    let dropped = control.access_log.get().map_or(0, |a| a.dropped());
    let flush_errors = control.store_flush_errors.load(Ordering::Relaxed);
    let families: [Family<'_>; 7] = [
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
        (
            "portcullis_access_log_dropped_total",
            "counter",
            "Access log lines dropped because a core's queue was full.",
            &[("", dropped)],
        ),
        (
            "portcullis_store_flush_errors_total",
            "counter",
            "Quota counter flushes to the store that failed (retried at the next interval).",
            &[("", flush_errors)],
        ),
    ];
    for (name, kind, help, samples) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    routes(&mut out, &shared.metrics.routes());
    histogram(
        &mut out,
        "portcullis_upstream_duration_seconds",
        "Exchanges with an upstream, from picking a target (connect included) to the response head, by upstream.",
        "upstream",
        &shared.metrics.upstreams(),
    );
    series(&mut out, &shared.metrics.series_totals());
    jwks(&mut out, &shared.gateway.load());
    targets(&mut out, shared);
    out
}

/// `portcullis_upstream_target_up`: 0 while any core rests the target after
/// `max_fails` failures in a row (passive health), 1 otherwise.
fn targets(out: &mut String, shared: &Shared) {
    let family = "portcullis_upstream_target_up";
    let _ = writeln!(
        out,
        "# HELP {family} 1 unless a core rests the target after max_fails failures in a row."
    );
    let _ = writeln!(out, "# TYPE {family} gauge");
    let now = crate::limit::period::unix_now();
    let gw = shared.gateway.load();
    for u in &gw.upstreams {
        for t in &u.targets {
            let until = shared.metrics.series_max(&crate::metrics::series_name(
                crate::metrics::TARGET_REST,
                &[("upstream", &u.name), ("target", &t.to_string())],
            ));
            let up = u64::from(until <= now);
            let _ = writeln!(
                out,
                "{family}{{upstream=\"{}\",target=\"{t}\"}} {up}",
                Label(&u.name)
            );
        }
    }
}

/// The key sets of the serving config's JWT authorizers.
fn jwks(out: &mut String, gw: &crate::gateway::Gateway) {
    use crate::guard::auth::Authorizer;
    use crate::guard::Guard;
    let mut seen: Vec<(&str, &crate::guard::auth::jwks::JwksCache)> = Vec::new();
    for r in gw.routes.iter() {
        for g in &r.guards {
            if let Guard::Auth(name, a) = g {
                if let Authorizer::Jwt(j) = &**a {
                    if !seen.iter().any(|(n, _)| *n == &**name) {
                        seen.push((name, &j.jwks));
                    }
                }
            }
        }
    }
    seen.sort_by_key(|(n, _)| *n);
    let families: [(&str, &str, &str); 2] = [
        (
            "portcullis_jwks_keys",
            "gauge",
            "Keys in the JWT authorizer's key set.",
        ),
        (
            "portcullis_jwks_last_success_timestamp_seconds",
            "gauge",
            "When the JWT authorizer's key set was last loaded (Unix seconds; 0: never).",
        ),
    ];
    for (i, (family, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for (name, cache) in &seen {
            let v = if i == 0 {
                cache.keys().len() as u64
            } else {
                cache.last_success.load(Ordering::Relaxed)
            };
            let _ = writeln!(out, "{family}{{authorizer=\"{}\"}} {v}", Label(name));
        }
    }
}

/// Families counted as named series, with their help text.
const SERIES: &[(&str, &str)] = &[
    (
        "portcullis_waf_matches_total",
        "WAF rule matches by WAF, rule id and action (block: the request was refused; count: it went on).",
    ),
    (
        "portcullis_cors_disallowed_total",
        "Requests from an origin the route's CORS policy does not allow (forwarded without CORS fields), by route.",
    ),
    (
        "portcullis_upstream_errors_total",
        "Failed exchanges with an upstream by kind (connect, timeout, reset, malformed).",
    ),
    (
        "portcullis_authorizer_cache_hits_total",
        "External authorizer decisions answered from the decision cache, by authorizer.",
    ),
    (
        "portcullis_authorizer_cache_misses_total",
        "External authorizer decisions that asked the authorizer, by authorizer.",
    ),
    ("portcullis_connections_total", "Client connections accepted, by listener."),
    ("portcullis_connections_closed_total", "Client connections closed, by listener."),
    (
        "portcullis_tls_handshakes_total",
        "TLS handshakes by listener and result (ok, error, timeout).",
    ),
];

/// The series counters, each family under its HELP and TYPE lines.
fn series(out: &mut String, totals: &[(std::sync::Arc<str>, u64)]) {
    let of = |family: &'static str| {
        totals.iter().filter_map(move |(name, n)| {
            let labels = name.strip_prefix(family)?;
            labels.starts_with('{').then_some((labels, *n))
        })
    };
    for (family, help) in SERIES {
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} counter");
        for (labels, n) in of(family) {
            let _ = writeln!(out, "{family}{labels} {n}");
        }
    }
    // Open connections: accepted minus closed, per listener.
    let family = "portcullis_connections_active";
    let _ = writeln!(out, "# HELP {family} Client connections open, by listener.");
    let _ = writeln!(out, "# TYPE {family} gauge");
    for (labels, opened) in of("portcullis_connections_total") {
        let closed = of("portcullis_connections_closed_total")
            .find(|(l, _)| *l == labels)
            .map_or(0, |(_, n)| n);
        let _ = writeln!(out, "{family}{labels} {}", opened.saturating_sub(closed));
    }
}

/// The per-route families, from the cores' summed counters.
fn routes(out: &mut String, routes: &[RouteTotals]) {
    let name = "portcullis_requests_total";
    let _ = writeln!(out, "# HELP {name} Requests by route and status code.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for r in routes {
        for (code, n) in &r.codes {
            let _ = writeln!(
                out,
                "{name}{{route=\"{}\",code=\"{code}\"}} {n}",
                Label(&r.route)
            );
        }
    }
    let name = "portcullis_denied_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests a stage refused, by route, stage and reason."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for r in routes {
        // Several reasons may share labels (throttling by any level is "rate").
        let mut series: Vec<((&str, &str), u64)> = Vec::new();
        for &(reason, n) in &r.denied {
            let Some(labels) = Reason::ALL.get(reason).map(|r| r.labels()) else {
                continue;
            };
            match series.iter_mut().find(|(l, _)| *l == labels) {
                Some(e) => e.1 += n,
                None => series.push((labels, n)),
            }
        }
        for ((stage, why), n) in series {
            let _ = writeln!(
                out,
                "{name}{{route=\"{}\",stage=\"{stage}\",reason=\"{why}\"}} {n}",
                Label(&r.route)
            );
        }
    }
    let name = "portcullis_throttled_total";
    let _ = writeln!(out, "# HELP {name} Requests refused by throttling or a quota, by route and the level that refused.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for r in routes {
        for &(reason, n) in &r.denied {
            if let Some(level) = Reason::ALL.get(reason).and_then(|r| r.throttle_level()) {
                let _ = writeln!(
                    out,
                    "{name}{{route=\"{}\",level=\"{level}\"}} {n}",
                    Label(&r.route)
                );
            }
        }
    }
    histogram(
        out,
        "portcullis_request_duration_seconds",
        "Whole requests, from the head read to the response's end, by route.",
        "route",
        routes,
    );
}

/// A histogram family over slots' buckets, one series per slot that counted.
fn histogram(out: &mut String, name: &str, help: &str, label: &str, slots: &[RouteTotals]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for r in slots.iter().filter(|r| r.count > 0) {
        let value = Label(&r.route);
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&r.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{label}=\"{value}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {}",
            r.count
        );
        let _ = writeln!(out, "{name}_sum{{{label}=\"{value}\"}} {}", r.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{label}=\"{value}\"}} {}", r.count);
    }
}

/// A label value, escaped as the text format wants (`\\`, `\"`, `\n`).
struct Label<'a>(&'a str);

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}
