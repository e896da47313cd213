//! CORS (the Fetch standard's cross-origin protocol): a route's `[cors.NAME]`
//! policy, the first stage of its pipeline.
//!
//! 1. A **preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//!    is answered here and goes no further: 204 with the policy's
//!    `Access-Control-Allow-*` fields when the origin, the method and every
//!    requested header are allowed, else 403 `{"message":"Forbidden"}` with no
//!    CORS fields. The route phase sends a preflight to the route that would serve
//!    the *requested* method ([`crate::route::RouteTable::find_preflight`]), so a
//!    route need not list `OPTIONS`.
//! 2. An **actual request** from an allowed origin gets `Access-Control-Allow-Origin`,
//!    `-Expose-Headers`, `-Allow-Credentials` and `Vary: Origin` written into
//!    [`Additions::client`](super::Additions), which every answer carries —
//!    the upstream's, and the gateway's own refusals from the later stages (401,
//!    403, 429), body errors (400, 413) and forward failures (502, 504) — so a
//!    page can read why it failed. A disallowed origin gets only `Vary: Origin`
//!    (no `Access-Control-*` field: the browser withholds the response from the
//!    page). A request without `Origin` gets nothing.
//!
//! Why first, before the resource policy and the WAF: a preflight carries no
//! credentials and no body, and answering it reveals only the configured policy;
//! the actual request still meets every stage. Being first is also what puts the
//! CORS fields on the refusals of every later stage.
//!
//! Every line but the echoed origin is rendered at compile time; a request costs
//! one scan of its header index for `Origin` and, when it has one, an append to
//! the reused `additions` string.
//!
//! What it does not do: count disallowed origins (there are no metrics yet), or
//! strip the upstream's `Access-Control-*` fields — the proxy layer above does that
//! on a route with a policy, when it writes the client's response head.

use std::borrow::Cow;

use crate::config::{ConfigError, CorsConfig, Source};
use crate::http::list_items;
use crate::http::reply::Reply;
use crate::http::request::{Header, HeaderRole};

use super::{Reason, RequestCtx, Verdict};

/// A compiled `[cors.NAME]`.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<OriginRule>,
    /// `"*"`: any origin (never with credentials), answered with `*`.
    any_origin: bool,
    methods: Vec<Box<[u8]>>,
    /// Lower case.
    headers: Vec<Box<[u8]>>,
    /// `headers = ["*"]`: any request header (never with credentials).
    any_header: bool,
    private_network: bool,
    /// A preflight's answer after `access-control-allow-origin`.
    preflight_lines: String,
    /// An actual response's lines after `access-control-allow-origin`.
    actual_lines: String,
}

#[derive(Debug, PartialEq, Eq)]
enum OriginRule {
    /// `scheme://host[:port]`, lower case.
    Exact(Box<str>),
    /// `scheme://*.rest`: `prefix` = `scheme://`, `suffix` = `.rest` (with the
    /// port, if any); one or more DNS labels in place of `*`.
    Subdomains { prefix: Box<str>, suffix: Box<str> },
}

impl OriginRule {
    fn matches(&self, origin: &[u8]) -> bool {
        match self {
            OriginRule::Exact(o) => o.as_bytes().eq_ignore_ascii_case(origin),
            OriginRule::Subdomains { prefix, suffix } => {
                let (p, s) = (prefix.as_bytes(), suffix.as_bytes());
                if origin.len() <= p.len() + s.len()
                    || !origin[..p.len()].eq_ignore_ascii_case(p)
                    || !origin[origin.len() - s.len()..].eq_ignore_ascii_case(s)
                {
                    return false;
                }
                let labels = &origin[p.len()..origin.len() - s.len()];
                labels.split(|&b| b == b'.').all(|l| {
                    !l.is_empty() && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
                })
            }
        }
    }
}

/// The method a preflight asks for: `Some` when the head (`method`, its bytes
/// `hb` and header index) is `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn preflight_method<'h>(method: &[u8], hb: &'h [u8], headers: &[Header]) -> Option<&'h [u8]> {
    if method != b"OPTIONS" {
        return None;
    }
    let mut origin = false;
    let mut requested = None;
    for h in headers.iter().filter(|h| h.role != HeaderRole::HopByHop) {
        let name = h.name.get(hb);
        if name.eq_ignore_ascii_case(b"origin") {
            origin = true;
        } else if name.eq_ignore_ascii_case(b"access-control-request-method") {
            requested.get_or_insert(h.value.get(hb));
        }
    }
    requested.filter(|_| origin)
}

impl Cors {
    pub fn check(&self, ctx: &mut RequestCtx<'_>) -> Verdict {
        let (v, disallowed) =
            self.apply(ctx.method, ctx.head, ctx.headers, &mut ctx.additions.client);
        // An actual request from an origin the policy does not allow goes on
        // without CORS fields (the browser keeps the answer from the page), and
        // is counted: `portcullis_cors_disallowed_total{route}`.
        if disallowed {
            let route = ctx.route.unwrap_or("");
            ctx.counters
                .bump("portcullis_cors_disallowed_total", &[("route", route)]);
        }
        v
    }

    /// The stage on a request head (`method`, its bytes `hb` and header index):
    /// the preflight's answer, or `Continue` with the CORS lines for the client
    /// appended to `client`; and whether it was an actual request from an
    /// origin the policy does not allow.
    pub fn apply(
        &self,
        method: &[u8],
        hb: &[u8],
        headers: &[Header],
        client: &mut String,
    ) -> (Verdict, bool) {
        let Some(origin) = field(hb, headers, b"origin") else {
            return (Verdict::Continue, false);
        };
        let allowed = self.allowed_origin(origin);
        if let Some(requested) = preflight_method(method, hb, headers) {
            let v = match allowed {
                Some(echo) if self.preflight_allowed(hb, headers, requested) => {
                    push_allow_origin(client, echo);
                    client.push_str(&self.preflight_lines);
                    if self.private_network
                        && field(hb, headers, b"access-control-request-private-network")
                            .is_some_and(|v| v.eq_ignore_ascii_case(b"true"))
                    {
                        client.push_str("access-control-allow-private-network: true\r\n");
                    }
                    Verdict::Respond(no_content())
                }
                _ => Verdict::Deny(Reply::error(403), Reason::CorsPreflight),
            };
            return (v, false);
        }
        match allowed {
            Some(echo) => {
                push_allow_origin(client, echo);
                client.push_str(&self.actual_lines);
            }
            None => client.push_str("vary: origin\r\n"),
        }
        (Verdict::Continue, allowed.is_none())
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
    fn allowed_origin<'o>(&self, origin: &'o [u8]) -> Option<&'o str> {
        if self.any_origin {
            return Some("*");
        }
        // A matched origin is the ASCII of a configured one (or of DNS labels),
        // so the echo cannot inject a line.
        self.origins
            .iter()
            .any(|r| r.matches(origin))
            .then(|| std::str::from_utf8(origin).ok())
            .flatten()
    }

    fn preflight_allowed(&self, hb: &[u8], headers: &[Header], requested: &[u8]) -> bool {
        if !self.methods.iter().any(|m| **m == *requested) {
            return false;
        }
        if self.any_header {
            return true;
        }
        headers
            .iter()
            .filter(|h| {
                h.role != HeaderRole::HopByHop
                    && h.name
                        .get(hb)
                        .eq_ignore_ascii_case(b"access-control-request-headers")
            })
            .flat_map(|h| list_items(h.value.get(hb)))
            .all(|name| self.headers.iter().any(|a| a.eq_ignore_ascii_case(name)))
    }
}

/// The first field named `name` (lower case) of the head `hb`.
fn field<'h>(hb: &'h [u8], headers: &[Header], name: &[u8]) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.role != HeaderRole::HopByHop && h.name.get(hb).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(hb))
}

fn push_allow_origin(out: &mut String, origin: &str) {
    out.push_str("access-control-allow-origin: ");
    out.push_str(origin);
    out.push_str("\r\n");
}

/// A preflight's 204: no body, no content type; its fields are in `additions`.
fn no_content() -> Reply {
    Reply {
        status: 204,
        content_type: Cow::Borrowed(""),
        body: Cow::Borrowed(""),
        extra: String::new(),
    }
}

/// Compiles `[cors.NAME]`; errors name `cors.NAME.<field>` and its line.
pub fn compile(name: &str, c: &CorsConfig, source: &Source) -> Result<Cors, ConfigError> {
    let field = |f: &str| format!("cors.{name}.{f}");
    let mut origins = Vec::new();
    let mut any_origin = false;
    if c.origins.get_ref().is_empty() {
        return Err(source.error_at(
            c.origins.span(),
            &field("origins"),
            "at least one origin is required (e.g. \"https://app.example.com\")",
        ));
    }
    for o in c.origins.get_ref() {
        let v = o.get_ref();
        if v == "*" {
            if c.credentials {
                return Err(source.error_at(
                    o.span(),
                    &field("origins"),
                    "\"*\" cannot be used with credentials = true (browsers refuse it): list the origins",
                ));
            }
            any_origin = true;
            continue;
        }
        origins.push(origin_rule(v).map_err(|why| {
            source.error_at(o.span(), &field("origins"), format!("origin {v:?}: {why}"))
        })?);
    }

    let mut methods: Vec<Box<[u8]>> = Vec::new();
    for m in &c.methods {
        let v = m.get_ref();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(source.error_at(
                m.span(),
                &field("methods"),
                format!("invalid method {v:?} (upper case, e.g. \"PUT\")"),
            ));
        }
        methods.push(v.as_bytes().into());
    }
    if methods.is_empty() {
        methods = ["GET", "HEAD", "POST"]
            .iter()
            .map(|m| m.as_bytes().into())
            .collect();
    }

    let mut headers: Vec<Box<[u8]>> = Vec::new();
    let mut any_header = false;
    for h in &c.headers {
        let v = h.get_ref();
        if v == "*" {
            if c.credentials {
                return Err(source.error_at(
                    h.span(),
                    &field("headers"),
                    "\"*\" cannot be used with credentials = true (browsers take it literally): list the headers",
                ));
            }
            any_header = true;
        } else {
            headers.push(
                token(v, h.span(), &field("headers"), source)?
                    .into_bytes()
                    .into(),
            );
        }
    }
    let mut expose = Vec::new();
    for h in &c.expose_headers {
        expose.push(token(
            h.get_ref(),
            h.span(),
            &field("expose_headers"),
            source,
        )?);
    }

    let join = |list: &[Box<[u8]>]| {
        list.iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut preflight_lines = format!("access-control-allow-methods: {}\r\n", join(&methods));
    if any_header {
        preflight_lines.push_str("access-control-allow-headers: *\r\n");
    } else if !headers.is_empty() {
        preflight_lines.push_str(&format!(
            "access-control-allow-headers: {}\r\n",
            join(&headers)
        ));
    }
    if let Some(age) = &c.max_age {
        preflight_lines.push_str(&format!(
            "access-control-max-age: {}\r\n",
            age.get_ref().0.as_secs()
        ));
    }
    let mut actual_lines = String::new();
    if !expose.is_empty() {
        actual_lines.push_str(&format!(
            "access-control-expose-headers: {}\r\n",
            expose.join(", ")
        ));
    }
    if c.credentials {
        let line = "access-control-allow-credentials: true\r\n";
        preflight_lines.push_str(line);
        actual_lines.push_str(line);
    }
    preflight_lines.push_str(
        "vary: origin, access-control-request-method, access-control-request-headers\r\n",
    );
    actual_lines.push_str("vary: origin\r\n");
    Ok(Cors {
        origins,
        any_origin,
        methods,
        headers,
        any_header,
        private_network: c.private_network,
        preflight_lines,
        actual_lines,
    })
}

/// A header name, lower-cased; an error naming `field` when it is not a token.
fn token(
    v: &str,
    span: std::ops::Range<usize>,
    field: &str,
    source: &Source,
) -> Result<String, ConfigError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'+-.^_`|~".contains(&b));
    if !ok {
        return Err(source.error_at(span, field, format!("invalid header name {v:?}")));
    }
    Ok(v.to_ascii_lowercase())
}

/// `scheme://host[:port]` or `scheme://*.domain[:port]`, as browsers serialize
/// an origin: no path, no trailing slash.
fn origin_rule(v: &str) -> Result<OriginRule, &'static str> {
    if v == "null" {
        return Ok(OriginRule::Exact("null".into()));
    }
    let v = v.to_ascii_lowercase();
    let (scheme, rest) = v
        .split_once("://")
        .ok_or("expected scheme://host[:port], e.g. \"https://app.example.com\"")?;
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err("invalid scheme");
    }
    let (host, port) = if rest.starts_with('[') {
        let end = rest.find(']').ok_or("an IPv6 host needs its closing ]")? + 1;
        match &rest[end..] {
            "" => (&rest[..end], None),
            p => (
                &rest[..end],
                Some(p.strip_prefix(':').ok_or("expected :port after ]")?),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err("invalid port (an origin has no path: no trailing slash)");
        }
    }
    let (wild, domain) = match host.strip_prefix("*.") {
        Some(d) => (true, d),
        None => (false, host),
    };
    let ipv6 = !wild
        && domain.len() > 2
        && domain.starts_with('[')
        && domain[1..domain.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    let labels_ok = !domain.is_empty()
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !(labels_ok || ipv6) {
        return Err(if domain.contains('*') {
            "a wildcard may only stand for the leading labels (\"https://*.example.com\")"
        } else {
            "expected scheme://host[:port] (an origin has no path: no trailing slash)"
        });
    }
    Ok(if wild {
        OriginRule::Subdomains {
            prefix: format!("{scheme}://").into(),
            suffix: rest[1..].into(),
        }
    } else {
        OriginRule::Exact(v.into())
    })
}

#[cfg(test)]
mod tests;
