//! The gateway-wide parts of throttling and usage plans, compiled: the
//! `[throttle]` levels every route shares, the `[[plan]]`s and the config's
//! `[[api_key]]` entries (stored by hash).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Throttling;
use crate::config::{Config, ConfigError, RateConfig, Source};
use crate::guard::api_key::Plan;
use crate::guard::throttle;
use crate::limit::{period, Level, LimitKey, QuotaPolicy};
use crate::store::StoredKey;

pub(super) fn compile_throttle(
    config: &Config,
    source: &Source,
) -> Result<Throttling, ConfigError> {
    let Some(t) = &config.throttle else {
        return Ok(Throttling {
            account: None,
            per_ip: None,
            headers: false,
            max_tracked: 100_000,
        });
    };
    let account = match (&t.rate, &t.burst) {
        (Some(rate), burst) => Some(Level {
            name: "account",
            key: LimitKey::Account,
            policy: throttle::compile_policy(
                source,
                &RateConfig {
                    rate: rate.clone(),
                    burst: burst.clone(),
                },
                "throttle",
            )?,
        }),
        (None, Some(b)) => {
            return Err(source.error_at(
                b.span(),
                "throttle.burst",
                "burst without rate: set throttle.rate too",
            ))
        }
        (None, None) => None,
    };
    let per_ip = match &t.per_ip {
        Some(rc) => Some(throttle::compile_policy(source, rc, "throttle.per_ip")?),
        None => None,
    };
    Ok(Throttling {
        account,
        per_ip,
        headers: t.headers,
        max_tracked: t.max_tracked.clamp(1024, 10_000_000),
    })
}

pub(super) fn compile_plans(
    config: &Config,
    source: &Source,
) -> Result<FxHashMap<Arc<str>, Plan>, ConfigError> {
    let mut plans = FxHashMap::default();
    for (i, p) in config.plans.iter().enumerate() {
        let field = |f: &str| format!("plan[{i}].{f}");
        let name: Arc<str> = p.name.get_ref().as_str().into();
        if !crate::guard::api_key::is_field_safe(&name) || plans.contains_key(&name) {
            return Err(source.error_at(
                p.name.span(),
                &field("name"),
                format!("duplicate or invalid plan name {name:?} (1-128 visible ASCII characters)"),
            ));
        }
        let throttle = match &p.throttle {
            Some(rc) => Some(throttle::compile_policy(source, rc, &field("throttle"))?),
            None => None,
        };
        let quota = match &p.quota {
            Some(q) if *q.limit.get_ref() == 0 => {
                return Err(source.error_at(
                    q.limit.span(),
                    &field("quota.limit"),
                    "a quota limit must be at least 1",
                ))
            }
            Some(q) => Some(QuotaPolicy {
                limit: *q.limit.get_ref(),
                period: q.period,
            }),
            None => None,
        };
        plans.insert(
            name.clone(),
            Plan {
                name,
                throttle,
                quota,
            },
        );
    }
    Ok(plans)
}

pub(super) fn compile_keys(
    config: &Config,
    source: &Source,
    plans: &FxHashMap<Arc<str>, Plan>,
) -> Result<Vec<StoredKey>, ConfigError> {
    let mut keys: Vec<StoredKey> = Vec::with_capacity(config.keys.len());
    for (i, k) in config.keys.iter().enumerate() {
        let field = |f: &str| format!("api_key[{i}].{f}");
        if !plans.contains_key(k.plan.get_ref().as_str()) {
            return Err(source.error_at(
                k.plan.span(),
                &field("plan"),
                format!("unknown plan {:?}", k.plan.get_ref()),
            ));
        }
        let hash = parse_key_hash(k.hash.get_ref()).ok_or_else(|| {
            source.error_at(
                k.hash.span(),
                &field("hash"),
                "expected \"sha256:\" and 64 hex digits (the SHA-256 of the key)",
            )
        })?;
        let expires = match &k.expires {
            Some(e) => Some(period::parse_rfc3339(e.get_ref()).map_err(|m| {
                source.error_at(e.span(), &field("expires"), format!("invalid time: {m}"))
            })?),
            None => None,
        };
        if !crate::guard::api_key::is_field_safe(k.name.get_ref()) {
            return Err(source.error_at(
                k.name.span(),
                &field("name"),
                "use 1-128 visible ASCII characters (the name is sent upstream in a header)",
            ));
        }
        if keys
            .iter()
            .any(|x| x.hash == hash || x.name == *k.name.get_ref())
        {
            return Err(source.error_at(
                k.name.span(),
                &field("name"),
                "duplicate api_key name or hash",
            ));
        }
        keys.push(StoredKey {
            hash,
            name: k.name.get_ref().clone(),
            plan: k.plan.get_ref().clone(),
            expires,
            revoked: k.revoked,
            created: 0,
        });
    }
    Ok(keys)
}

/// `sha256:<64 hex>` → the hash.
fn parse_key_hash(s: &str) -> Option<[u8; 32]> {
    crate::hex::decode32(s.strip_prefix("sha256:")?)
}
