//! The Gateway: one immutable, compiled snapshot of the config that the cores serve
//! from. A reload compiles a new one beside the old and swaps it in; nothing in it
//! changes while it serves.
//!
//! Compiling resolves everything a request would otherwise look up: routes into a
//! [`RouteTable`], upstream names into indices, target names into addresses, mock
//! responses into ready replies, and each route's guard list. Errors name the file,
//! line and field.

mod plans;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::config::{Cidr, Config, ConfigError, Source, Spanned};
use crate::guard::api_key::Plan;
use crate::guard::auth::{self, jwks::JwksRegistry};
use crate::guard::{self, BodyNeed};
use crate::http::reply::Reply;
use crate::limit::{Level, Policy};
use crate::route::{host_match, Action, HostMatch, PathMatch, Route, RouteTable};
use crate::store::StoredKey;
pub use crate::upstream::Upstream;

/// `[server]`, compiled: the client side's size limits and timeouts.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `[server] stage`, when set.
    pub stage: Option<Arc<str>>,
    /// `/ready` 503 before the listeners close, at SIGTERM.
    pub shutdown_delay: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_connections: usize,
}

/// `[throttle]`, compiled: the levels every route shares.
#[derive(Debug, Clone)]
pub struct Throttling {
    pub account: Option<Level>,
    pub per_ip: Option<Policy>,
    pub headers: bool,
    pub max_tracked: usize,
}

/// `[store]`, compiled.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub flush_interval: Duration,
    /// Whether this config needs the store at all (API key routes or quotas).
    pub needed: bool,
}

/// `https_only`: plain-listener requests answer 308 to `https://HOST[:port]`.
#[derive(Debug, Clone)]
pub struct HttpsRedirect {
    /// The HTTPS port to name (omitted when 443).
    pub port: u16,
    /// Non-idempotent methods get 403 instead of a redirect.
    pub forbid_unsafe: bool,
}

#[derive(Debug)]
pub struct Gateway {
    pub server: ServerSettings,
    /// HTTPS listeners, in `[[server.tls]]` order (a worker's TLS listener i uses
    /// entry i of the snapshot current at its handshake).
    pub tls: Vec<crate::tls::ServerTls>,
    /// `https_only`: where plain listeners send clients.
    pub https_redirect: Option<HttpsRedirect>,
    pub trusted_proxies: Vec<Cidr>,
    pub routes: RouteTable,
    pub upstreams: Vec<Upstream>,
    pub throttle: Throttling,
    pub plans: Arc<FxHashMap<Arc<str>, Plan>>,
    /// `[[api_key]]` entries (by hash).
    pub declared_keys: Vec<StoredKey>,
    pub store: StoreSettings,
    /// `[admin]`, when the admin API is on.
    pub admin: Option<AdminSettings>,
    /// What loaded, for `check` and the reload log: one line per CRS-backed WAF.
    pub report: Vec<String>,
    /// The config this snapshot was compiled from, as JSON with its secrets
    /// redacted (`GET /config`).
    pub config_json: String,
}

/// `[admin]`, compiled: where it listens (bound at start only) and the bearer
/// tokens it accepts (reloaded with the config).
#[derive(Debug)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub tokens: Vec<String>,
}

impl Gateway {
    /// Compiles a parsed config. `source` is the text it came from, for error lines.
    pub fn compile(config: &Config, source: &Source) -> Result<Gateway, ConfigError> {
        Gateway::compile_with(config, source, &JwksRegistry::default())
    }

    /// Compiles with the running gateway's key-set caches, so a reload keeps the
    /// JWKS it has already fetched.
    pub fn compile_with(
        config: &Config,
        source: &Source,
        jwks: &JwksRegistry,
    ) -> Result<Gateway, ConfigError> {
        let s = &config.server;
        let stage = match &s.stage {
            Some(st) => {
                let v = st.get_ref();
                let ok = !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                if !ok {
                    return Err(source.error_at(
                        st.span(),
                        "server.stage",
                        format!("{v:?}: use 1-64 letters, digits, '-', '_' or '.' (it becomes a metric label)"),
                    ));
                }
                Some(Arc::from(v.as_str()))
            }
            None => None,
        };
        let server = ServerSettings {
            stage,
            shutdown_delay: s.shutdown_delay.0,
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
            let index = upstreams.len();
            upstreams.push(Upstream {
                name: u.name.get_ref().as_str().into(),
                index,
                targets,
                balance: u.balance,
                connect_timeout: u.connect_timeout.0,
                response_timeout: u.response_timeout.0,
                max_idle_per_core: u.max_idle_per_core,
                max_fails: u.max_fails.max(1),
                fail_timeout: u.fail_timeout.0,
                keepalive_timeout: u.keepalive_timeout.0,
                tls: match &u.tls {
                    Some(t) => Some(crate::tls::upstream::compile(
                        &field("tls"),
                        t,
                        &u.targets,
                        source,
                    )?),
                    None => None,
                },
            });
        }

        let mut authorizers = auth::compile::Authorizers::new();
        for (name, a) in &config.auth {
            let compiled = auth::compile::compile(name, a, source, jwks)?;
            authorizers.insert(name.clone(), std::sync::Arc::new(compiled));
        }
        let mut wafs = std::collections::BTreeMap::new();
        for (name, w) in &config.waf {
            let compiled = crate::guard::waf::compile::compile(name, w, source)?;
            wafs.insert(name.clone(), std::sync::Arc::new(compiled));
        }
        let mut cors = std::collections::BTreeMap::new();
        for (name, c) in &config.cors {
            let compiled = crate::guard::cors::compile(name, c, source)?;
            cors.insert(name.clone(), std::sync::Arc::new(compiled));
        }
        let throttling = plans::compile_throttle(config, source)?;
        let plans = Arc::new(plans::compile_plans(config, source)?);
        let declared_keys = plans::compile_keys(config, source, &plans)?;
        let header = config.api_keys.header.get_ref();
        let api_key_header: Arc<[u8]> = header.to_ascii_lowercase().into_bytes().into();
        if header.is_empty() || !header.bytes().all(is_token_byte) {
            return Err(source.error_at(
                config.api_keys.header.span(),
                "api_keys.header",
                format!("invalid header name {header:?}"),
            ));
        }
        if let Some(r) = &config.store.redis {
            return Err(source.error_at(
                r.span(),
                "store.redis",
                "a Redis store is not supported yet; remove it to use the embedded store (store.path)",
            ));
        }

        let stages = guard::pipeline::Stages {
            cors: &cors,
            wafs: &wafs,
            authorizers: &authorizers,
            api_key_header: &api_key_header,
            plans: &plans,
            account: throttling.account,
            per_ip: throttling.per_ip,
            rate_headers: throttling.headers,
        };
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
            let guards = guard::pipeline::compile(r, &field, &stages, source)?;
            routes.push(Route {
                name: r.name.get_ref().as_str().into(),
                host,
                path,
                methods,
                body_need: BodyNeed::of(&guards),
                guards,
                max_body_bytes: r
                    .max_body_bytes
                    .map_or(server.max_body_bytes, |b| b.0.min(server.max_body_bytes)),
                action,
                index: 0,
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

        let store = StoreSettings {
            path: source.dir().join(&config.store.path),
            flush_interval: config.store.flush_interval.0.max(Duration::from_millis(50)),
            needed: config.routes.iter().any(|r| r.api_key)
                || plans.values().any(|p| p.quota.is_some()),
        };
        check_listeners_apart(s, source)?;
        let mut tls = Vec::with_capacity(s.tls.len());
        for (i, t) in s.tls.iter().enumerate() {
            tls.push(crate::tls::server::compile(i, t, source)?);
        }
        if let Some((name, a)) = config.auth.iter().find(|(_, a)| a.kind.get_ref() == "mtls") {
            if !s.tls.iter().any(|t| t.client_ca.is_some()) {
                return Err(source.error_at(
                    a.kind.span(),
                    &format!("auth.{name}.type"),
                    "an mtls authorizer needs a [[server.tls]] listener with client_ca",
                ));
            }
        }
        let https_redirect = tls.iter().find(|t| t.https_only).map(|t| HttpsRedirect {
            port: t.listen.port(),
            forbid_unsafe: t.forbid_unsafe,
        });
        let admin = match &config.admin {
            Some(a) => Some(compile_admin(a, s, source)?),
            None => None,
        };
        let report = wafs
            .iter()
            .filter_map(|(name, w)| Some(format!("waf.{name}: {}", w.crs.as_ref()?.summary())))
            .collect();
        Ok(Gateway {
            report,
            config_json: crate::config::redact::redacted_json(&source.text),
            admin,
            server,
            tls,
            https_redirect,
            trusted_proxies: s.trusted_proxies.clone(),
            routes: RouteTable::new(routes),
            upstreams,
            throttle: throttling,
            plans,
            declared_keys,
            store,
        })
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn compile_admin(
    a: &crate::config::AdminConfig,
    s: &crate::config::ServerConfig,
    source: &Source,
) -> Result<AdminSettings, ConfigError> {
    let refs = a.token_refs().map_err(|span| {
        source.error_at(
            span,
            "admin.token",
            "a secret reference (\"env:NAME\", \"file:PATH\") or a list of them",
        )
    })?;
    let many = refs.len() > 1;
    let mut tokens = Vec::new();
    for (i, t) in refs.iter().enumerate() {
        let field = if many {
            format!("admin.token[{i}]")
        } else {
            "admin.token".to_string()
        };
        let token = crate::config::secret::resolve(source, t, &field)?;
        let token = token.trim();
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(source.error_at(
                t.span(),
                &field,
                "an admin token is at least 16 printable ASCII characters, without spaces",
            ));
        }
        tokens.push(token.to_string());
    }
    let listen = *a.listen.get_ref();
    if tokens.is_empty() && !listen.ip().is_loopback() {
        return Err(source.error_at(
            a.listen.span(),
            "admin.listen",
            format!(
                "{listen} is not a loopback address: an admin listener off loopback needs a token"
            ),
        ));
    }
    if let Some((_, other)) = s.listeners().find(|(_, l)| overlap(listen, *l.get_ref())) {
        return Err(source.error_at(
            a.listen.span(),
            "admin.listen",
            format!("{listen} overlaps the request listener {}", other.get_ref()),
        ));
    }
    Ok(AdminSettings { listen, tokens })
}

fn checked_path<'a>(
    source: &Source,
    p: &'a Spanned<String>,
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
    load_with(path, &JwksRegistry::default())
}

/// [`load`] with the running gateway's key-set caches.
///
/// A panic while loading or compiling (a bug in a parser or compiler, whatever
/// the file holds) is caught here and returned as an error naming the file, so a
/// reload can never take the running gateway down and `check` exits 1.
pub fn load_with(
    path: &std::path::Path,
    jwks: &JwksRegistry,
) -> Result<(Config, Source, Gateway), ConfigError> {
    // AssertUnwindSafe: on a panic everything built so far is dropped; the only
    // shared state touched is the JWKS registry, whose caches stay valid.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let (config, source) = crate::config::load(path)?;
        let gateway = Gateway::compile_with(&config, &source, jwks)?;
        Ok((config, source, gateway))
    }))
    .unwrap_or_else(|payload| Err(ConfigError::panicked(path, payload.as_ref())))
}

/// Refuses two listeners on one port whose addresses overlap (the same, or one
/// a wildcard covering the other): each core's listeners use SO_REUSEPORT, so
/// the kernel would share the port's connections between them, plain and TLS
/// alike, instead of refusing the second bind.
fn check_listeners_apart(
    s: &crate::config::ServerConfig,
    source: &Source,
) -> Result<(), ConfigError> {
    // Plain listeners come first, so a plain one's place is its index.
    let field = |k: usize, tls: Option<usize>| match tls {
        None => format!("server.listen[{k}]"),
        Some(i) => format!("server.tls[{i}].listen"),
    };
    let all: Vec<_> = s.listeners().collect();
    for (k, &(tls, addr)) in all.iter().enumerate() {
        if let Some((j, &(other_tls, other))) = all[..k]
            .iter()
            .enumerate()
            .find(|(_, (_, other))| overlap(*addr.get_ref(), *other.get_ref()))
        {
            return Err(source.error_at(
                addr.span(),
                &field(k, tls),
                format!(
                    "{} overlaps {} ({}): two listeners on one port would share its connections",
                    addr.get_ref(),
                    field(j, other_tls),
                    other.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether listeners on `a` and `b` would take connections meant for each
/// other: the same port (not 0), and the same address or a wildcard that
/// covers the other (`[::]` takes IPv4 too, as the cores bind it).
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let (x, y) = (a.ip(), b.ip());
    if x.is_ipv4() == y.is_ipv4() {
        x == y || x.is_unspecified() || y.is_unspecified()
    } else {
        // One of each: only the IPv6 wildcard covers IPv4.
        let v6 = if x.is_ipv6() { x } else { y };
        v6.is_unspecified()
    }
}

#[cfg(test)]
mod tests;
