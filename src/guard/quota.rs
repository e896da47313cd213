//! The quota stage: a request identified by an API key whose usage plan has a
//! `quota = { limit, period }` spends one of the period's requests; once they are
//! spent it is refused with 429 `{"message":"Limit Exceeded"}` and `Retry-After`
//! until the period ends.
//!
//! It runs after throttling and is decided in the same limiter call
//! ([`Shard::check`](crate::limit::Shard::check)), so that a request refused by
//! either spends nothing of the other, and the RateLimit fields name the most
//! restrictive of all of them: [`Throttle::check`](super::throttle::Throttle::check)
//! asks this module what quota applies and how a refusal reads.

use super::api_key::{ApiKey, Plan};
use crate::limit::{QuotaKey, QuotaPolicy};

/// The quota the request counts against, if its key's plan has one.
pub fn of(api_key: Option<(&ApiKey, &Plan)>) -> Option<(QuotaKey, QuotaPolicy)> {
    let (key, plan) = api_key?;
    let q = plan.quota?;
    Some((
        QuotaKey {
            key: key.hash,
            period: q.period,
        },
        q,
    ))
}

/// The body of a refusal because the quota is used up.
pub const EXCEEDED: &str = r#"{"message":"Limit Exceeded"}"#;
