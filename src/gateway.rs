//! The Gateway: one immutable, compiled snapshot of the config that the cores serve
//! from. A reload compiles a new one beside the old and swaps it in; nothing in it
//! changes while it serves.
//!
//! Compiling resolves everything a request would otherwise look up: routes into a
//! [`RouteTable`], upstream names into indices, target names into addresses, mock
//! responses into ready replies, and each route's guard list. Errors name the file,
//! line and field.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Balance, Cidr, Config, ConfigError, Source};
use crate::guard::{ip::IpPolicy, Guard};
use crate::http::reply::Reply;
use crate::route::{host_match, Action, HostMatch, PathMatch, Route, RouteTable};

/// Client-side limits and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_connections: usize,
}

/// A compiled `[[upstream]]`.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<SocketAddr>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle_per_core: usize,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub keepalive_timeout: Duration,
}

#[derive(Debug)]
pub struct Gateway {
    pub limits: Limits,
    pub trusted_proxies: Vec<Cidr>,
    pub routes: RouteTable,
    pub upstreams: Vec<Upstream>,
}

impl Gateway {
    /// Compiles a parsed config. `source` is the text it came from, for error lines.
    pub fn compile(config: &Config, source: &Source) -> Result<Gateway, ConfigError> {
        let s = &config.server;
        let limits = Limits {
            max_header_bytes: usize::try_from(s.max_header_bytes.0)
                .unwrap_or(usize::MAX)
                .clamp(1024, 1 << 20),
            max_body_bytes: s.max_body_bytes.0,
            header_timeout: s.header_timeout.0,
            idle_timeout: s.idle_timeout.0,
            drain_timeout: s.drain_timeout.0,
            max_connections: s.max_connections.max(1),
        };

        let mut upstreams: Vec<Upstream> = Vec::with_capacity(config.upstreams.len());
        for (i, u) in config.upstreams.iter().enumerate() {
            let field = |f: &str| format!("upstream[{i}].{f}");
            if upstreams.iter().any(|x| *x.name == **u.name.get_ref()) {
                return Err(source.error_at(
                    u.name.span(),
                    &field("name"),
                    format!("duplicate upstream name {:?}", u.name.get_ref()),
                ));
            }
            if u.targets.get_ref().is_empty() {
                return Err(source.error_at(
                    u.targets.span(),
                    &field("targets"),
                    "at least one target is required",
                ));
            }
            let mut targets = Vec::new();
            for t in u.targets.get_ref() {
                let addr = t
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        source.error_at(
                            u.targets.span(),
                            &field("targets"),
                            format!("cannot resolve target {t:?} (expected host:port)"),
                        )
                    })?;
                targets.push(addr);
            }
            upstreams.push(Upstream {
                name: u.name.get_ref().as_str().into(),
                targets,
                balance: u.balance,
                connect_timeout: u.connect_timeout.0,
                response_timeout: u.response_timeout.0,
                max_idle_per_core: u.max_idle_per_core,
                max_fails: u.max_fails.max(1),
                fail_timeout: u.fail_timeout.0,
                keepalive_timeout: u.keepalive_timeout.0,
            });
        }

        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let field = |f: &str| format!("route[{i}].{f}");
            if config.routes[..i]
                .iter()
                .any(|x| x.name.get_ref() == r.name.get_ref())
            {
                return Err(source.error_at(
                    r.name.span(),
                    &field("name"),
                    format!("duplicate route name {:?}", r.name.get_ref()),
                ));
            }
            let path = match (&r.path, &r.path_exact) {
                (Some(p), None) => {
                    PathMatch::Prefix(checked_path(source, p, &field("path"))?.into())
                }
                (None, Some(p)) => {
                    PathMatch::Exact(checked_path(source, p, &field("path_exact"))?.into())
                }
                (Some(p), Some(_)) => {
                    return Err(source.error_at(
                        p.span(),
                        &field("path"),
                        "set either path or path_exact, not both",
                    ))
                }
                (None, None) => {
                    return Err(source.error_at(
                        r.name.span(),
                        &field("path"),
                        "a route needs path or path_exact",
                    ))
                }
            };
            let host = match &r.host {
                None => HostMatch::Any,
                Some(h) => {
                    let v = h.get_ref();
                    if v.is_empty()
                        || v.contains(['/', ' ', ':'])
                        || (v.contains('*') && !v.starts_with("*."))
                    {
                        return Err(source.error_at(
                            h.span(),
                            &field("host"),
                            format!("invalid host {v:?} (a name, or *.suffix)"),
                        ));
                    }
                    host_match(v)
                }
            };
            let mut methods: Vec<Box<[u8]>> = Vec::new();
            for m in &r.methods {
                let v = m.get_ref();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(source.error_at(
                        m.span(),
                        &field("methods"),
                        format!("invalid method {v:?} (upper case, e.g. \"GET\")"),
                    ));
                }
                methods.push(v.as_bytes().into());
            }
            let action = match (&r.upstream, &r.mock) {
                (Some(u), None) => {
                    let idx = upstreams
                        .iter()
                        .position(|x| *x.name == **u.get_ref())
                        .ok_or_else(|| {
                            source.error_at(
                                u.span(),
                                &field("upstream"),
                                format!("unknown upstream {:?}", u.get_ref()),
                            )
                        })?;
                    Action::Proxy(idx)
                }
                (None, Some(m)) => {
                    let status = *m.status.get_ref();
                    if matches!(status, 204 | 304) && !m.body.is_empty() {
                        return Err(source.error_at(
                            m.status.span(),
                            &field("mock.status"),
                            format!("status {status} cannot carry a body"),
                        ));
                    }
                    if !(200..=599).contains(&status) {
                        return Err(source.error_at(
                            m.status.span(),
                            &field("mock.status"),
                            format!("status {status} is not 200..=599"),
                        ));
                    }
                    let mut reply = Reply {
                        status,
                        content_type: m.content_type.clone().into(),
                        body: m.body.clone().into(),
                        extra: String::new(),
                    };
                    for (k, v) in &m.headers {
                        let ok_name = !k.is_empty()
                            && k.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
                            });
                        let ok_value = v.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
                        if !ok_name
                            || !ok_value
                            || crate::http::is_hop_by_hop(k.as_bytes())
                            || k.eq_ignore_ascii_case("content-length")
                        {
                            return Err(source.error_at(
                                r.name.span(),
                                &field("mock.headers"),
                                format!("invalid mock header {k:?}"),
                            ));
                        }
                        reply = reply.with_header(k, v);
                    }
                    Action::Mock(reply)
                }
                (Some(u), Some(_)) => {
                    return Err(source.error_at(
                        u.span(),
                        &field("upstream"),
                        "set either upstream or mock, not both",
                    ))
                }
                (None, None) => {
                    return Err(source.error_at(
                        r.name.span(),
                        &field("upstream"),
                        "a route needs an upstream or a mock",
                    ))
                }
            };
            let mut guards = Vec::new();
            if !r.allow_ips.is_empty() || !r.deny_ips.is_empty() {
                guards.push(Guard::IpPolicy(IpPolicy {
                    allow: r.allow_ips.clone(),
                    deny: r.deny_ips.clone(),
                }));
            }
            routes.push(Route {
                name: r.name.get_ref().as_str().into(),
                host,
                path,
                methods,
                guards,
                max_body_bytes: r
                    .max_body_bytes
                    .map_or(limits.max_body_bytes, |b| b.0.min(limits.max_body_bytes)),
                action,
            });
        }
        if routes.is_empty() {
            return Err(ConfigError {
                file: source.path.display().to_string(),
                line: 0,
                col: 0,
                field: Some("route".into()),
                message: "at least one [[route]] is required".into(),
            });
        }

        Ok(Gateway {
            limits,
            trusted_proxies: s.trusted_proxies.clone(),
            routes: RouteTable::new(routes),
            upstreams,
        })
    }
}

fn checked_path<'a>(
    source: &Source,
    p: &'a crate::config::Spanned<String>,
    field: &str,
) -> Result<&'a str, ConfigError> {
    let v = p.get_ref();
    if !v.starts_with('/') || v.contains(['?', '#', ' ']) {
        return Err(source.error_at(
            p.span(),
            field,
            format!("path {v:?} must start with / and hold no query"),
        ));
    }
    Ok(v)
}

/// Loads and compiles the config at `path`: what `check`, start and reload all run.
pub fn load(path: &std::path::Path) -> Result<(Config, Source, Gateway), ConfigError> {
    let (config, source) = crate::config::load(path)?;
    let gateway = Gateway::compile(&config, &source)?;
    Ok((config, source, gateway))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Gateway, String> {
        let source = Source {
            path: "gw.toml".into(),
            text: text.into(),
        };
        let config = crate::config::parse(&source).map_err(|e| e.to_string())?;
        Gateway::compile(&config, &source).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_upstream_names_line_and_field() {
        let e = compile("[[upstream]]\nname = \"a\"\ntargets = [\"127.0.0.1:1\"]\n\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"b\"\n").unwrap_err();
        assert!(e.starts_with("gw.toml:8:"), "{e}");
        assert!(
            e.contains("route[0].upstream: unknown upstream \"b\""),
            "{e}"
        );
    }

    #[test]
    fn route_needs_an_action() {
        let e = compile("[[route]]\nname = \"r\"\npath = \"/\"\n").unwrap_err();
        assert!(
            e.contains("gw.toml:2:") && e.contains("route[0].upstream"),
            "{e}"
        );
    }

    #[test]
    fn bad_path() {
        let e = compile("[[route]]\nname = \"r\"\npath = \"v1\"\nmock = {}\n").unwrap_err();
        assert!(
            e.contains("gw.toml:3:") && e.contains("route[0].path"),
            "{e}"
        );
    }

    #[test]
    fn compiles() {
        let g = compile("[[upstream]]\nname = \"a\"\ntargets = [\"localhost:9\"]\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"a\"\nallow_ips = [\"10.0.0.0/8\"]\n").unwrap();
        assert_eq!(g.routes.len(), 1);
        assert_eq!(g.upstreams[0].targets[0].port(), 9);
    }
}
