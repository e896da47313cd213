//! The guard pipeline: the checks a route runs before its action.
//!
//! [`pipeline`] assembles a route's stages in their fixed order and says what the
//! order is; each stage has its own module. A route carries its compiled
//! [`Guard`] list; the connection loop calls [`run`] after routing and before
//! proxying. Each stage answers [`Verdict::Continue`] or a ready response, and
//! reads the request through [`RequestCtx`] without copying it. What a stage
//! establishes for later ones (the API key and its plan) and what it adds to the
//! exchange (identity headers for the upstream, RateLimit fields for the client)
//! is written into the context. Guards are pure policy: a compiled stage carries
//! everything it needs, and nothing here sees the whole `Gateway`.

pub mod api_key;
pub mod auth;
pub mod authorize;
pub mod cors;
pub mod pipeline;
pub mod quota;
pub mod resource_policy;
pub mod throttle;
pub mod waf;

use std::net::IpAddr;
use std::sync::Arc;

use crate::http::reply::Reply;
use crate::http::request::{Header, HeaderRole};
use crate::limit::Shard;

pub use api_key::{ApiKey, KeyTable, Plan};

/// What a guard sees of a request, and what guards hand on to later stages.
pub struct RequestCtx<'a> {
    /// The client address the gateway believes (peer, or from trusted X-Forwarded-For).
    pub client_ip: IpAddr,
    pub method: &'a [u8],
    /// The path as routed: percent-escapes of unreserved characters decoded and
    /// slashes merged when the request had any (see `http::request::normalize_path`).
    pub path: &'a [u8],
    /// The request id the exchange carries.
    pub request_id: &'a [u8],
    /// The path as sent on the request line (not normalized).
    pub raw_path: &'a [u8],
    /// The body (or its first part), when a stage needed it buffered; `has_body`:
    /// the request has one; `body_complete`: `body` is all of it.
    pub body: Option<&'a [u8]>,
    pub has_body: bool,
    pub body_complete: bool,
    /// The matched route's name.
    pub route: Option<&'a str>,
    /// Where audit lines go (the access log stream), if anywhere.
    pub audit: Option<&'a crate::log::AccessSink>,
    /// This core's series counters (WAF rule matches).
    pub counters: &'a crate::metrics::CoreCounters,
    /// The WAF rule ids that matched (comma-separated), for the access log;
    /// set only when there is one.
    pub waf_rules: Option<String>,
    /// The query string as sent (without `?`), empty when there is none.
    pub query: &'a [u8],
    /// The head's bytes, which `headers` index into. A guard that consumes a
    /// credential marks its header [`HeaderRole::Credential`] so it is not forwarded.
    pub head: &'a [u8],
    pub headers: &'a mut [Header],
    /// This core's limiter shard and API keys.
    pub shard: &'a Shard,
    pub keys: &'a KeyTable,
    pub auth: &'a auth::CoreState,
    /// The connection's verified client certificate (mTLS), if any.
    pub client_cert: Option<&'a crate::tls::ClientCert>,
    /// Set by the authentication stage.
    pub identity: auth::Identity,
    /// Set by the API key stage.
    pub api_key: Option<(&'a ApiKey, &'a Plan)>,
    pub additions: Additions,
}

impl RequestCtx<'_> {
    /// The first header named `name` (lower case), and its index.
    pub fn header(&self, name: &[u8]) -> Option<(usize, &[u8])> {
        self.headers.iter().enumerate().find_map(|(i, h)| {
            (h.role != HeaderRole::HopByHop && h.name.get(self.head).eq_ignore_ascii_case(name))
                .then(|| (i, h.value.get(self.head)))
        })
    }
}

/// Header lines (`name: value\r\n`) the guards add to the exchange.
#[derive(Debug, Default)]
pub struct Additions {
    /// For the upstream request (the identity the gateway established).
    pub upstream: String,
    /// For the client response, whoever answers it.
    pub client: String,
}

impl Additions {
    /// Empties both, keeping their capacity.
    pub fn clear(&mut self) {
        self.upstream.clear();
        self.client.clear();
    }
}

/// A guard's answer.
pub enum Verdict {
    Continue,
    /// An answer that is not a refusal (a CORS preflight's 204).
    Respond(Reply),
    /// A refusal, and why (counted in `portcullis_denied_total`).
    Deny(Reply, Reason),
}

/// Why a stage refused a request: a fixed set, so metric labels stay bounded.
/// Each reason belongs to one stage ([`Reason::labels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    // protocol (refused before routing)
    Malformed,
    Timeout,
    BodyTooLarge,
    UriTooLong,
    HeadTooLarge,
    Unsupported,
    // policy
    IpDeny,
    // waf
    WafRule,
    WafIpSet,
    WafRate,
    WafOversize,
    // cors
    CorsPreflight,
    // auth
    AuthMissing,
    AuthInvalid,
    AuthExpired,
    BadSignature,
    UnknownAccessKey,
    ClientCert,
    AuthorizerDenied,
    // authz
    Scope,
    // api_key
    KeyMissing,
    KeyUnknown,
    KeyRevoked,
    KeyExpired,
    KeyMultiple,
    KeyNoPlan,
    // throttle (by the level that ran dry), quota
    ThrottleApiKey,
    ThrottleRoute,
    ThrottleAccount,
    ThrottleIp,
    QuotaExceeded,
}

impl Reason {
    pub const ALL: [Reason; 31] = [
        Reason::Malformed,
        Reason::Timeout,
        Reason::BodyTooLarge,
        Reason::UriTooLong,
        Reason::HeadTooLarge,
        Reason::Unsupported,
        Reason::IpDeny,
        Reason::WafRule,
        Reason::WafIpSet,
        Reason::WafRate,
        Reason::WafOversize,
        Reason::CorsPreflight,
        Reason::AuthMissing,
        Reason::AuthInvalid,
        Reason::AuthExpired,
        Reason::BadSignature,
        Reason::UnknownAccessKey,
        Reason::ClientCert,
        Reason::AuthorizerDenied,
        Reason::Scope,
        Reason::KeyMissing,
        Reason::KeyUnknown,
        Reason::KeyRevoked,
        Reason::KeyExpired,
        Reason::KeyMultiple,
        Reason::KeyNoPlan,
        Reason::ThrottleApiKey,
        Reason::ThrottleRoute,
        Reason::ThrottleAccount,
        Reason::ThrottleIp,
        Reason::QuotaExceeded,
    ];

    /// (stage, reason) as metric labels and the access log's `denied` field.
    pub fn labels(self) -> (&'static str, &'static str) {
        use Reason::*;
        match self {
            Malformed => ("protocol", "malformed"),
            Timeout => ("protocol", "timeout"),
            BodyTooLarge => ("protocol", "body_too_large"),
            UriTooLong => ("protocol", "uri_too_long"),
            HeadTooLarge => ("protocol", "head_too_large"),
            Unsupported => ("protocol", "unsupported"),
            IpDeny => ("policy", "ip_deny"),
            WafRule => ("waf", "rule"),
            WafIpSet => ("waf", "ip_deny"),
            WafRate => ("waf", "rate"),
            WafOversize => ("waf", "oversize"),
            CorsPreflight => ("cors", "preflight"),
            AuthMissing => ("auth", "missing"),
            AuthInvalid => ("auth", "invalid"),
            AuthExpired => ("auth", "expired"),
            BadSignature => ("auth", "bad_signature"),
            UnknownAccessKey => ("auth", "unknown_key"),
            ClientCert => ("auth", "client_cert"),
            AuthorizerDenied => ("auth", "authorizer_denied"),
            Scope => ("authz", "scope"),
            KeyMissing => ("api_key", "missing"),
            KeyUnknown => ("api_key", "unknown"),
            KeyRevoked => ("api_key", "revoked"),
            KeyExpired => ("api_key", "expired"),
            KeyMultiple => ("api_key", "multiple"),
            KeyNoPlan => ("api_key", "no_plan"),
            ThrottleApiKey | ThrottleRoute | ThrottleAccount | ThrottleIp => ("throttle", "rate"),
            QuotaExceeded => ("quota", "exceeded"),
        }
    }

    /// For a throttling refusal, the level that refused it (`portcullis_throttled_total`'s
    /// `level`: `api_key`, `route`, `account`, `ip`, or `quota`).
    pub fn throttle_level(self) -> Option<&'static str> {
        match self {
            Reason::ThrottleApiKey => Some("api_key"),
            Reason::ThrottleRoute => Some("route"),
            Reason::ThrottleAccount => Some("account"),
            Reason::ThrottleIp => Some("ip"),
            Reason::QuotaExceeded => Some("quota"),
            _ => None,
        }
    }

    /// The throttling reason for the level named `level` (a limiter level's name).
    pub fn throttled_by(level: &str) -> Reason {
        match level {
            "api_key" => Reason::ThrottleApiKey,
            "account" => Reason::ThrottleAccount,
            "ip" => Reason::ThrottleIp,
            _ => Reason::ThrottleRoute,
        }
    }

    /// The reason's position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A refusal the connection loop answers before routing, by its status.
    pub fn of_protocol_status(status: u16) -> Reason {
        match status {
            408 => Reason::Timeout,
            413 => Reason::BodyTooLarge,
            414 => Reason::UriTooLong,
            431 => Reason::HeadTooLarge,
            501 | 505 => Reason::Unsupported,
            _ => Reason::Malformed,
        }
    }
}

/// One compiled stage of a route's pipeline.
#[derive(Debug)]
pub enum Guard {
    /// CORS: preflights answered (204, or 403), CORS fields on every answer.
    Cors(Arc<cors::Cors>),
    /// Resource policy: client IP allow / deny lists.
    IpPolicy(resource_policy::IpPolicy),
    /// Identification by API key (usage plan): 403 without a valid key.
    ApiKey(api_key::ApiKeyCheck),
    /// The WAF: IP sets, rate-based rule, rule scan: 403.
    Waf(Arc<waf::Waf>),
    /// Authentication by the route's authorizer: 401 without valid credentials.
    Auth(Arc<str>, Arc<auth::Authorizer>),
    /// Authorization: the route's required scopes and claims: 403.
    Authorize(authorize::Requirements),
    /// Throttling (plan, route, account, client IP) and the plan's quota: 429.
    Throttle(throttle::Throttle),
}

impl Guard {
    async fn check<'a>(&'a self, ctx: &mut RequestCtx<'a>) -> Verdict {
        match self {
            Guard::Cors(c) => c.check(ctx),
            Guard::IpPolicy(p) => p.check(ctx.client_ip),
            Guard::ApiKey(k) => k.check(ctx),
            Guard::Waf(w) => w.check(ctx),
            Guard::Auth(name, a) => auth::authenticate(name, a, ctx).await,
            Guard::Authorize(r) => r.check(&ctx.identity),
            Guard::Throttle(t) => t.check(ctx),
        }
    }
}

/// How much of a request body a route's stages need buffered before they can
/// decide: all of it for a signed payload (SigV4) within the authorizer's
/// `max_body`, the first `inspect_body` bytes for the WAF. Compiled with the
/// route, so the connection loop asks the route, not its stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyNeed {
    /// The whole body, when it is at most this long.
    whole_up_to: Option<u64>,
    /// At least this prefix.
    prefix: u64,
}

impl BodyNeed {
    /// What the stages in `guards` need together.
    pub fn of(guards: &[Guard]) -> BodyNeed {
        let mut need = BodyNeed::default();
        for g in guards {
            match g {
                Guard::Auth(_, a) => {
                    if let Some(max) = a.body_to_buffer() {
                        need.whole_up_to = Some(need.whole_up_to.map_or(max, |m| m.max(max)));
                    }
                }
                Guard::Waf(w) => need.prefix = need.prefix.max(w.inspect_body),
                _ => {}
            }
        }
        need
    }

    /// How many decoded bytes of a chunked body (whose length is unknown) to
    /// buffer: the WAF's prefix (a signed payload is never chunked here).
    pub fn chunked_prefix(&self) -> u64 {
        self.prefix
    }

    /// How many bytes of a body of `n` bytes to buffer; 0 for none.
    pub fn bytes(&self, n: u64) -> u64 {
        let whole = self.whole_up_to.filter(|&max| n <= max).map_or(0, |_| n);
        whole.max(n.min(self.prefix))
    }
}

/// Runs a route's guards in order; the first that answers decides.
pub async fn run<'a>(guards: &'a [Guard], ctx: &mut RequestCtx<'a>) -> Verdict {
    for g in guards {
        match g.check(ctx).await {
            Verdict::Continue => {}
            answer => return answer,
        }
    }
    Verdict::Continue
}

#[cfg(test)]
mod tests {
    use super::Reason;

    /// `index` is the declaration order, which `ALL` must list in full.
    #[test]
    fn reasons_are_listed_in_declaration_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        assert_eq!(Reason::ALL.last().unwrap().index() + 1, Reason::ALL.len());
    }
}
