//! `portcullis audit --config FILE`: a valid config checked against the
//! controls gateways are audited on (AWS Security Hub's API Gateway
//! controls, and the mistakes security guides list) — open routes not marked
//! `public`, an API key as a route's only credential, a WAF counting instead
//! of blocking or absent, plain HTTP where clients could reach it, upstream
//! TLS without verification, an admin API off loopback, no throttle at any
//! level, the access log off.
//!
//! One line per finding, `FILE:LINE: SEVERITY: what — fix: how`; the exit
//! code is 1 when a `high` finding exists (`--strict`: any finding). A config
//! that does not load is reported as `check` reports it (exit 1).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use crate::config::{Config, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        })
    }
}

/// One control a config fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub severity: Severity,
    pub what: String,
    pub fix: String,
}

/// The findings of the config at `path` (sorted by line), or the load error.
pub fn audit_file(path: &Path) -> Result<(Source, Vec<Finding>), String> {
    let (config, source, _) = crate::gateway::load(path).map_err(|e| e.to_string())?;
    let findings = audit(&config, &source);
    Ok((source, findings))
}

/// What `portcullis audit` prints for `findings`, and whether it exits 1.
pub fn report(source: &Source, findings: &[Finding], strict: bool) -> (String, bool) {
    let mut out = String::new();
    for f in findings {
        let (file, line) = source.locate(f.line);
        out.push_str(&format!(
            "{}:{}: {}: {} — fix: {}\n",
            file.display(),
            line,
            f.severity,
            f.what,
            f.fix
        ));
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let (high, medium, low) = (
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
    );
    out.push_str(&format!(
        "audit: {} finding(s): {high} high, {medium} medium, {low} low\n",
        findings.len()
    ));
    (out, high > 0 || (strict && !findings.is_empty()))
}

/// The line of the first line of the source that starts with `prefix`, or 1.
fn line_of(source: &Source, prefix: &str) -> usize {
    source
        .text
        .lines()
        .position(|l| l.trim_start().starts_with(prefix))
        .map_or(1, |i| i + 1)
}

fn loopback(a: &SocketAddr) -> bool {
    a.ip().is_loopback()
}

/// Every finding for `config`.
pub fn audit(config: &Config, source: &Source) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |line: usize, severity, what: String, fix: &str| {
        out.push(Finding {
            line,
            severity,
            what,
            fix: fix.to_string(),
        })
    };
    let named = |v: &Option<crate::config::Spanned<String>>| {
        v.as_ref()
            .map(|s| s.get_ref().as_str())
            .filter(|s| !s.is_empty() && *s != "none" && *s != "off")
            .map(str::to_string)
    };

    for r in &config.routes {
        let line = source.line(r.name.span().start);
        let name = r.name.get_ref();
        let auth = named(&r.auth);
        if auth.is_none() && !r.api_key && !r.public {
            add(
                line,
                Severity::High,
                format!("route {name:?} has no authentication and is not marked public"),
                "set auth = \"NAME\" (an [auth.NAME] authorizer), or public = true if it is meant to be open",
            );
        } else if auth.is_none() && r.api_key && !r.public {
            add(
                line,
                Severity::Medium,
                format!("route {name:?}: an API key is its only credential (keys identify a caller for usage plans; they do not authenticate)"),
                "add auth = \"NAME\" (JWT, SigV4, mTLS or an external authorizer) beside api_key",
            );
        }
        if named(&r.waf).is_none() {
            add(
                line,
                Severity::Medium,
                format!("route {name:?} has no WAF"),
                "set waf = \"NAME\" (a [waf.NAME] with the native rules, the CRS, or both)",
            );
        }
    }

    for (name, w) in &config.waf {
        if let Some(mode) = w.mode.as_ref().filter(|m| m.get_ref() == "count") {
            add(
                source.line(mode.span().start),
                Severity::Medium,
                format!("waf {name:?} is in count mode: it logs attacks and lets them through"),
                "set mode = \"block\" once its matches have been reviewed",
            );
        }
    }

    let https_only = config.server.tls.iter().any(|t| t.https_only);
    for l in &config.server.listen {
        if !loopback(l.get_ref()) && !https_only {
            add(
                source.line(l.span().start),
                Severity::High,
                format!("plain HTTP listener {} off loopback, without https_only", l.get_ref()),
                "serve HTTPS ([[server.tls]]) and set https_only = true there, so plain requests are redirected",
            );
        }
    }

    for (i, u) in config.upstreams.iter().enumerate() {
        if u.tls.as_ref().is_some_and(|t| !t.verify) {
            add(
                source.line(u.name.span().start),
                Severity::High,
                format!(
                    "upstream {:?} (upstream[{i}]): TLS without certificate verification",
                    u.name.get_ref()
                ),
                "remove verify = false (give the upstream's CA in ca instead)",
            );
        }
    }

    if let Some(a) = &config.admin {
        if !loopback(a.listen.get_ref()) {
            add(
                source.line(a.listen.span().start),
                Severity::Medium,
                format!("the admin API listens off loopback ({})", a.listen.get_ref()),
                "listen on 127.0.0.1 (reach it through SSH or a private network), or firewall the port",
            );
        }
    }

    let throttled = config
        .throttle
        .as_ref()
        .is_some_and(|t| t.rate.is_some() || t.per_ip.is_some())
        || config.routes.iter().any(|r| r.throttle.is_some())
        || config
            .plans
            .iter()
            .any(|p| p.throttle.is_some() || p.quota.is_some());
    if !throttled {
        add(
            line_of(source, "[throttle]").max(1),
            Severity::Medium,
            "no throttle at any level (account, route, client IP or plan)".into(),
            "set [throttle] rate and burst (the account level), per_ip, or a route's throttle",
        );
    }

    if config.log.access == "off" {
        add(
            line_of(source, "access"),
            Severity::Medium,
            "the access log is off: refusals and attacks leave no record".into(),
            "set [log] access = \"stdout\" or a file path",
        );
    }

    out.sort_by_key(|f| (f.line, std::cmp::Reverse(f.severity)));
    out
}
