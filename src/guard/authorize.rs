//! The authorization stage: whether the identity authentication established may
//! call this route — any of its `scopes`, and for each of its `claims` one of the
//! listed values. Only a JWT identity carries claims (`check` refuses scopes and
//! claims on a route without a jwt authorizer). Refusals are 403.

use serde_json::Value;

use super::auth::{jwt, Identity};
use super::{Reason, Verdict};
use crate::http::reply::Reply;

/// A route's `scopes` (any of) and `claims` (each listed claim must hold one of
/// its values).
#[derive(Debug, Default)]
pub struct Requirements {
    pub scopes: Vec<String>,
    pub claims: Vec<(String, Vec<String>)>,
}

impl Requirements {
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty() && self.claims.is_empty()
    }

    pub fn check(&self, identity: &Identity) -> Verdict {
        let Some(claims) = &identity.claims else {
            return Verdict::Deny(Reply::error(403), Reason::Scope);
        };
        let scope_ok =
            self.scopes.is_empty() || claims.scopes.iter().any(|s| self.scopes.contains(s));
        let claims_ok = self.claims.iter().all(|(name, accepted)| {
            let has = |v: &Value| jwt::header_value(v).is_some_and(|s| accepted.contains(&s));
            match claims.map.get(name) {
                Some(Value::Array(a)) => a.iter().any(has),
                Some(v) => has(v),
                None => false,
            }
        });
        if scope_ok && claims_ok {
            Verdict::Continue
        } else {
            tracing::debug!(scope_ok, claims_ok, "authorization refused");
            Verdict::Deny(Reply::error(403), Reason::Scope)
        }
    }
}
