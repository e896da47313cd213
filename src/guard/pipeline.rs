//! The pipeline's assembly: one route's stages compiled, in their fixed order.
//!
//! A request meets, in this order (the first that answers decides):
//! 0. **CORS** ([`cors`](super::cors)) — a preflight is answered here (204, or 403
//!    for an origin, method or header the policy does not allow); an actual
//!    request gets its CORS fields, which every later answer then carries. First
//!    because a preflight carries no credentials (so it cannot pass
//!    authentication) and no body, and so that the refusals below are readable by
//!    the page that caused them;
//! 1. **resource policy** ([`resource_policy`](super::resource_policy)) — client IP allow and deny lists: 403;
//! 2. **WAF** ([`waf`](super::waf)) — IP sets, the rate-based rule, the rule scan: 403;
//! 3. **API key** ([`api_key`](super::api_key)) — identification for usage plans: 403;
//! 4. **authentication** ([`auth`](super::auth)) — the route's authorizer (JWT, SigV4,
//!    external, mTLS): 401;
//! 5. **authorization** ([`Requirements`]) — the route's scopes and claims: 403;
//! 6. **throttle** ([`throttle`](super::throttle)) — plan, route, account and
//!    client-IP buckets: 429;
//! 7. **quota** ([`quota`](super::quota)) — the plan's requests per period: 429.
//!    Decided in the throttle stage's limiter call, so a refusal by either spends
//!    nothing of the other.
//!
//! A stage a route does not configure is not in its list at all. Adding a stage
//! means one file for it and one step here.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::api_key::{ApiKeyCheck, Plan};
use super::auth::{self, compile::Authorizers};
use super::authorize::Requirements;
use super::throttle::{compile_policy, Throttle};
use super::{cors::Cors, resource_policy, waf::Waf, Guard};
use crate::config::{ConfigError, RouteConfig, Source};
use crate::limit::{Level, LimitKey, Policy};

/// What the stages of every route share: the named CORS policies, WAFs and
/// authorizers, the API key header and plans, and the gateway-wide throttle levels.
pub struct Stages<'a> {
    pub cors: &'a BTreeMap<String, Arc<Cors>>,
    pub wafs: &'a BTreeMap<String, Arc<Waf>>,
    pub authorizers: &'a Authorizers,
    pub api_key_header: &'a Arc<[u8]>,
    pub plans: &'a Arc<FxHashMap<Arc<str>, Plan>>,
    pub account: Option<Level>,
    pub per_ip: Option<Policy>,
    pub rate_headers: bool,
}

/// Route `r`'s guard list; `field` names its fields in errors (`route[i].…`).
pub fn compile(
    r: &RouteConfig,
    field: &dyn Fn(&str) -> String,
    stages: &Stages<'_>,
    source: &Source,
) -> Result<Vec<Guard>, ConfigError> {
    let mut guards = Vec::new();
    if let Some(c) = &r.cors {
        let found = stages.cors.get(c.get_ref()).ok_or_else(|| {
            source.error_at(
                c.span(),
                &field("cors"),
                format!(
                    "unknown cors policy {:?} (no [cors.{}])",
                    c.get_ref(),
                    c.get_ref()
                ),
            )
        })?;
        guards.push(Guard::Cors(found.clone()));
    }
    if !r.allow_ips.is_empty() || !r.deny_ips.is_empty() {
        guards.push(Guard::IpPolicy(resource_policy::IpPolicy {
            allow: r.allow_ips.clone(),
            deny: r.deny_ips.clone(),
        }));
    }
    match &r.waf {
        Some(w) if w.get_ref() != "off" => {
            let found = stages.wafs.get(w.get_ref()).ok_or_else(|| {
                source.error_at(
                    w.span(),
                    &field("waf"),
                    format!("unknown waf {:?} (no [waf.{}])", w.get_ref(), w.get_ref()),
                )
            })?;
            guards.push(Guard::Waf(found.clone()));
        }
        _ => {}
    }
    if r.api_key {
        guards.push(Guard::ApiKey(ApiKeyCheck {
            header: stages.api_key_header.clone(),
            plans: stages.plans.clone(),
        }));
    }
    let authorizer = match &r.auth {
        Some(a) if a.get_ref() != "none" => {
            let found = stages.authorizers.get(a.get_ref()).ok_or_else(|| {
                source.error_at(
                    a.span(),
                    &field("auth"),
                    format!(
                        "unknown authorizer {:?} (no [auth.{}])",
                        a.get_ref(),
                        a.get_ref()
                    ),
                )
            })?;
            guards.push(Guard::Auth(a.get_ref().as_str().into(), found.clone()));
            Some(found)
        }
        _ => None,
    };
    let requirements = Requirements {
        scopes: r.scopes.clone(),
        claims: r
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    if !requirements.is_empty() {
        if !matches!(authorizer.map(|a| &**a), Some(auth::Authorizer::Jwt(_))) {
            return Err(source.error_at(
                r.name.span(),
                &field("scopes"),
                "scopes and claims need a jwt authorizer (auth = \"NAME\")",
            ));
        }
        guards.push(Guard::Authorize(requirements));
    }
    let route_level = match &r.throttle {
        Some(rc) => Some(Level {
            name: "route",
            key: LimitKey::route(r.name.get_ref()),
            policy: compile_policy(source, rc, &field("throttle"))?,
        }),
        None => None,
    };
    if r.api_key || route_level.is_some() || stages.account.is_some() || stages.per_ip.is_some() {
        guards.push(Guard::Throttle(Throttle {
            route: route_level,
            account: stages.account,
            per_ip: stages.per_ip,
            headers: stages.rate_headers,
        }));
    }
    Ok(guards)
}
