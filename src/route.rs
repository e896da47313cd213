//! The route table: which compiled [`Route`] takes a request, by host, path and method.
//!
//! Routes are sorted once at compile time by specificity — a route naming the host
//! before one that doesn't, `path_exact` before prefixes, longer prefixes first, then
//! config order — so matching is one scan that stops at the first route that fits.
//! Prefixes match on segment boundaries: `/v1/orders` takes `/v1/orders/7`, never
//! `/v1/ordersX`.

use std::sync::Arc;

use crate::guard::{cors::Cors, BodyNeed, Guard};
use crate::http::reply::Reply;

/// What a route does with a request that passed its guards.
#[derive(Debug)]
pub enum Action {
    /// Forward to the upstream with this index in [`crate::gateway::Gateway::upstreams`].
    Proxy(usize),
    /// Answer with a canned response.
    Mock(Reply),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// Lowercase host without port.
    Exact(Box<str>),
    /// `*.example.com` stored as `.example.com`.
    Suffix(Box<str>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(Box<str>),
    Exact(Box<str>),
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub host: HostMatch,
    pub path: PathMatch,
    /// Empty: any method.
    pub methods: Vec<Box<[u8]>>,
    /// The guard pipeline, run in order before the action.
    pub guards: Vec<Guard>,
    /// How much of a body the guards need buffered (from `guards`).
    pub body_need: BodyNeed,
    pub max_body_bytes: u64,
    pub action: Action,
    /// The route's position in its table (set by [`RouteTable::new`]).
    pub index: usize,
}

impl Route {
    /// The route's CORS policy (the first stage of its pipeline, when it has one).
    pub fn cors(&self) -> Option<&Cors> {
        match self.guards.first() {
            Some(Guard::Cors(c)) => Some(c),
            _ => None,
        }
    }

    fn serves(&self, method: &[u8]) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| **m == *method)
    }
}

/// Where a CORS preflight goes.
pub enum Preflight<'a> {
    /// The route that would serve the requested method, which has a CORS policy:
    /// its CORS stage answers.
    Route(&'a Route),
    /// Routes with a CORS policy take this host and path, but none serves the
    /// requested method: 403, with no CORS fields.
    Refuse,
    /// No CORS policy is concerned: route the `OPTIONS` as any request.
    Plain,
}

/// The outcome of a lookup.
pub enum RouteMatch<'a> {
    Found(&'a Route),
    /// Host and path matched some routes, none of them allows the method.
    MethodNotAllowed(String),
    NotFound,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Builds the table; `routes` are in config order.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let mut indexed: Vec<(usize, Route)> = routes.into_iter().enumerate().collect();
        indexed.sort_by(|(ia, a), (ib, b)| {
            host_rank(&b.host)
                .cmp(&host_rank(&a.host))
                .then(path_rank(&b.path).cmp(&path_rank(&a.path)))
                .then(ia.cmp(ib))
        });
        let mut routes: Vec<Route> = indexed.into_iter().map(|(_, r)| r).collect();
        for (i, r) in routes.iter_mut().enumerate() {
            r.index = i;
        }
        RouteTable { routes }
    }

    /// The routes in match order (a route's [`Route::index`] is its position).
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for a request. `host` is the Host header as sent (may carry a port).
    pub fn find(&self, host: &[u8], path: &[u8], method: &[u8]) -> RouteMatch<'_> {
        let host = strip_port(host);
        let mut allowed: Option<Vec<&[u8]>> = None;
        for r in &self.routes {
            if !host_matches(&r.host, host) || !path_matches(&r.path, path) {
                continue;
            }
            if r.serves(method) {
                return RouteMatch::Found(r);
            }
            let list = allowed.get_or_insert_with(Vec::new);
            for m in &r.methods {
                if !list.contains(&&**m) {
                    list.push(m);
                }
            }
        }
        match allowed {
            Some(list) => RouteMatch::MethodNotAllowed(
                list.iter()
                    .map(|m| String::from_utf8_lossy(m))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => RouteMatch::NotFound,
        }
    }

    /// Routes a CORS preflight asking for method `requested`: to the route that
    /// would serve that method, so a route need not list `OPTIONS` for its
    /// preflights to be answered.
    pub fn find_preflight(&self, host: &[u8], path: &[u8], requested: &[u8]) -> Preflight<'_> {
        let host = strip_port(host);
        let mut cors_here = false;
        for r in &self.routes {
            if !host_matches(&r.host, host) || !path_matches(&r.path, path) {
                continue;
            }
            if r.serves(requested) {
                return match r.cors() {
                    Some(_) => Preflight::Route(r),
                    None => Preflight::Plain,
                };
            }
            cors_here |= r.cors().is_some();
        }
        if cors_here {
            Preflight::Refuse
        } else {
            Preflight::Plain
        }
    }
}

fn host_rank(h: &HostMatch) -> (u8, usize) {
    match h {
        HostMatch::Exact(_) => (2, 0),
        HostMatch::Suffix(s) => (1, s.len()),
        HostMatch::Any => (0, 0),
    }
}

fn path_rank(p: &PathMatch) -> (u8, usize) {
    match p {
        PathMatch::Exact(_) => (1, 0),
        PathMatch::Prefix(s) => (0, s.len()),
    }
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        // [v6]:port
        return match host.iter().position(|&b| b == b']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

fn host_matches(m: &HostMatch, host: &[u8]) -> bool {
    match m {
        HostMatch::Any => true,
        HostMatch::Exact(h) => h.as_bytes().eq_ignore_ascii_case(host),
        HostMatch::Suffix(s) => {
            let s = s.as_bytes();
            host.len() > s.len() && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
        }
    }
}

fn path_matches(m: &PathMatch, path: &[u8]) -> bool {
    match m {
        PathMatch::Exact(p) => p.as_bytes() == path,
        PathMatch::Prefix(p) => {
            let p = p.as_bytes();
            path.starts_with(p)
                && (path.len() == p.len() || p.ends_with(b"/") || path[p.len()] == b'/')
        }
    }
}

/// Parses a config `host` value into a matcher.
pub fn host_match(host: &str) -> HostMatch {
    let h = host.trim().to_ascii_lowercase();
    match h.strip_prefix('*') {
        Some(suffix) => HostMatch::Suffix(suffix.into()),
        None => HostMatch::Exact(h.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, host: HostMatch, path: PathMatch, methods: &[&str]) -> Route {
        Route {
            name: name.into(),
            host,
            path,
            methods: methods.iter().map(|m| m.as_bytes().into()).collect(),
            guards: Vec::new(),
            body_need: BodyNeed::default(),
            max_body_bytes: 0,
            action: Action::Mock(Reply::error(404)),
            index: 0,
        }
    }

    fn found(t: &RouteTable, host: &str, path: &str, method: &str) -> String {
        match t.find(host.as_bytes(), path.as_bytes(), method.as_bytes()) {
            RouteMatch::Found(r) => r.name.to_string(),
            RouteMatch::MethodNotAllowed(a) => format!("405 {a}"),
            RouteMatch::NotFound => "404".into(),
        }
    }

    #[test]
    fn precedence() {
        let t = RouteTable::new(vec![
            route("root", HostMatch::Any, PathMatch::Prefix("/".into()), &[]),
            route("v1", HostMatch::Any, PathMatch::Prefix("/v1".into()), &[]),
            route(
                "orders",
                HostMatch::Any,
                PathMatch::Prefix("/v1/orders".into()),
                &["GET", "POST"],
            ),
            route(
                "health",
                HostMatch::Any,
                PathMatch::Exact("/v1/orders/health".into()),
                &[],
            ),
            route(
                "api",
                host_match("api.example.com"),
                PathMatch::Prefix("/v1".into()),
                &[],
            ),
            route(
                "wild",
                host_match("*.example.com"),
                PathMatch::Prefix("/v1".into()),
                &[],
            ),
            route(
                "first",
                HostMatch::Any,
                PathMatch::Prefix("/dup".into()),
                &[],
            ),
            route(
                "second",
                HostMatch::Any,
                PathMatch::Prefix("/dup".into()),
                &[],
            ),
        ]);
        assert_eq!(found(&t, "x", "/v1/orders/7", "GET"), "orders");
        assert_eq!(found(&t, "x", "/v1/orders", "POST"), "orders");
        assert_eq!(found(&t, "x", "/v1/ordersX", "GET"), "v1");
        assert_eq!(found(&t, "x", "/v1/orders", "DELETE"), "v1");
        assert_eq!(found(&t, "x", "/v1/orders/health", "GET"), "health");
        assert_eq!(
            found(&t, "API.example.com:8080", "/v1/orders", "GET"),
            "api"
        );
        assert_eq!(found(&t, "eu.example.com", "/v1/orders", "GET"), "wild");
        assert_eq!(found(&t, "example.com", "/v1/orders", "GET"), "orders");
        assert_eq!(found(&t, "x", "/dup", "GET"), "first");
        assert_eq!(found(&t, "x", "/other", "GET"), "root");
    }

    fn with_cors(mut r: Route) -> Route {
        let text = "origins = [\"https://app.example.com\"]\n";
        let source = crate::config::Source::new("gw.toml", text);
        let c: crate::config::CorsConfig = toml::from_str(text).unwrap();
        let cors = crate::guard::cors::compile("web", &c, &source).unwrap();
        r.guards.insert(0, Guard::Cors(Arc::new(cors)));
        r
    }

    fn preflight(t: &RouteTable, path: &str, method: &str) -> String {
        match t.find_preflight(b"x", path.as_bytes(), method.as_bytes()) {
            Preflight::Route(r) => r.name.to_string(),
            Preflight::Refuse => "refuse".into(),
            Preflight::Plain => "plain".into(),
        }
    }

    #[test]
    fn preflights_route_by_the_requested_method() {
        let t = RouteTable::new(vec![
            with_cors(route(
                "api",
                HostMatch::Any,
                PathMatch::Prefix("/api".into()),
                &["GET", "PUT"],
            )),
            route(
                "api-delete",
                HostMatch::Any,
                PathMatch::Prefix("/api".into()),
                &["DELETE"],
            ),
            route(
                "open",
                HostMatch::Any,
                PathMatch::Prefix("/open".into()),
                &[],
            ),
        ]);
        assert_eq!(preflight(&t, "/api/7", "PUT"), "api");
        // The route serving DELETE has no policy: an ordinary OPTIONS.
        assert_eq!(preflight(&t, "/api/7", "DELETE"), "plain");
        // A policy is here but no route serves PATCH.
        assert_eq!(preflight(&t, "/api/7", "PATCH"), "refuse");
        assert_eq!(preflight(&t, "/open", "PUT"), "plain");
        assert_eq!(preflight(&t, "/nowhere", "PUT"), "plain");
    }

    #[test]
    fn method_not_allowed_and_not_found() {
        let t = RouteTable::new(vec![
            route(
                "a",
                HostMatch::Any,
                PathMatch::Prefix("/a".into()),
                &["GET"],
            ),
            route(
                "a2",
                HostMatch::Any,
                PathMatch::Exact("/a".into()),
                &["POST", "GET"],
            ),
        ]);
        assert_eq!(found(&t, "x", "/a", "PUT"), "405 POST, GET");
        assert_eq!(found(&t, "x", "/b", "GET"), "404");
        assert_eq!(found(&t, "[::1]:80", "/a/x", "GET"), "a");
    }
}
