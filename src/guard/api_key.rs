//! API keys: identification for usage plans (AWS API Gateway's `x-api-key`), not
//! authentication. A route with `api_key = true` answers 403 to a request without
//! a valid key: missing, unknown, expired or revoked.
//!
//! Keys are known only by their SHA-256. A presented key is hashed, looked up by
//! the first 8 bytes of its hash, and confirmed by comparing all 32 bytes in
//! constant time. The [`KeyTable`] is rebuilt by the control thread from the config's
//! `[[api_key]]` entries and the store, and published to the cores without a reload.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::{Reason, RequestCtx, Verdict};
use crate::http::reply::Reply;
use crate::http::request::HeaderRole;
use crate::limit::{Policy, QuotaPolicy};
use crate::store::{KeyHash, StoredKey};

/// A compiled `[[plan]]`: what a key's usage plan allows.
#[derive(Debug)]
pub struct Plan {
    pub name: Arc<str>,
    pub throttle: Option<Policy>,
    pub quota: Option<QuotaPolicy>,
}

/// The API key stage of a route, with what it needs: the header keys come in
/// (lower case) and the config's plans.
#[derive(Debug)]
pub struct ApiKeyCheck {
    pub header: Arc<[u8]>,
    pub plans: Arc<FxHashMap<Arc<str>, Plan>>,
}

/// A key the gateway accepts (or knows to refuse).
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub hash: KeyHash,
    pub name: Arc<str>,
    pub plan: Arc<str>,
    /// Unix seconds; the key is refused from then on.
    pub expires: Option<u64>,
    pub revoked: bool,
}

/// Every known key, by hash.
#[derive(Debug, Default)]
pub struct KeyTable {
    by_prefix: FxHashMap<u64, Vec<ApiKey>>,
    len: usize,
}

impl KeyTable {
    /// The table of `declared` (the config's keys) and `stored` (the store's); a
    /// declared key wins over a stored one with the same hash.
    pub fn build(declared: &[StoredKey], stored: &[StoredKey]) -> KeyTable {
        let mut t = KeyTable::default();
        for k in declared.iter().chain(stored) {
            if !is_field_safe(&k.name) || !is_field_safe(&k.plan) {
                tracing::warn!(
                    "api key {:?}: name or plan holds characters a header cannot carry; ignored",
                    k.name.escape_debug().to_string()
                );
                continue;
            }
            let bucket = t.by_prefix.entry(prefix(&k.hash)).or_default();
            if bucket.iter().any(|x| x.hash == k.hash) {
                continue;
            }
            bucket.push(ApiKey {
                hash: k.hash,
                name: k.name.as_str().into(),
                plan: k.plan.as_str().into(),
                expires: k.expires,
                revoked: k.revoked,
            });
            t.len += 1;
        }
        t
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key whose text is `presented`, if any.
    pub fn find(&self, presented: &[u8]) -> Option<&ApiKey> {
        let hash = hash_key(presented);
        self.by_prefix
            .get(&prefix(&hash))?
            .iter()
            .find(|k| constant_time_eq(&k.hash, &hash))
    }
}

/// Whether `s` can be sent as a header value: visible ASCII and spaces, 1–128 bytes.
pub fn is_field_safe(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The SHA-256 of a key's text.
pub fn hash_key(text: &[u8]) -> KeyHash {
    Sha256::digest(text).into()
}

fn prefix(hash: &KeyHash) -> u64 {
    u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// Compares without an early exit, so the time taken says nothing about where two
/// hashes differ.
fn constant_time_eq(a: &KeyHash, b: &KeyHash) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A new key's text: `pk_` and 64 hex digits of randomness (256 bits).
pub fn generate_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes)?;
    let mut s = String::with_capacity(67);
    s.push_str("pk_");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

/// Why a key was refused, for the debug log (never the key itself).
fn refuse(reason: Reason, name: Option<&str>) -> Verdict {
    tracing::debug!(
        reason = reason.labels().1,
        key = name.unwrap_or("-"),
        "api key refused"
    );
    Verdict::Deny(Reply::error(403), reason)
}

impl ApiKeyCheck {
    /// The API key stage.
    pub fn check<'a>(&'a self, ctx: &mut RequestCtx<'a>) -> Verdict {
        let Some((idx, text)) = ctx.header(&self.header) else {
            return refuse(Reason::KeyMissing, None);
        };
        // Two keys in one request: which one would the upstream believe? Refuse.
        let copies = ctx
            .headers
            .iter()
            .filter(|h| h.name.get(ctx.head).eq_ignore_ascii_case(&self.header))
            .count();
        if copies > 1 {
            return refuse(Reason::KeyMultiple, None);
        }
        let Some(key) = ctx.keys.find(text) else {
            return refuse(Reason::KeyUnknown, None);
        };
        if key.revoked {
            return refuse(Reason::KeyRevoked, Some(&key.name));
        }
        if key.expires.is_some_and(|e| ctx.shard.unix_now() >= e) {
            return refuse(Reason::KeyExpired, Some(&key.name));
        }
        let Some(plan) = self.plans.get(&key.plan) else {
            return refuse(Reason::KeyNoPlan, Some(&key.name));
        };
        ctx.headers[idx].role = HeaderRole::Credential;
        // The identity fields are the gateway's to set: drop any a client sent.
        for h in ctx.headers.iter_mut() {
            let name = h.name.get(ctx.head);
            if name.eq_ignore_ascii_case(b"x-api-key-name")
                || name.eq_ignore_ascii_case(b"x-usage-plan")
            {
                h.role = HeaderRole::Credential;
            }
        }
        // The key stays with the gateway; the upstream learns whose it was.
        let adds = &mut ctx.additions.upstream;
        adds.push_str("x-api-key-name: ");
        adds.push_str(&key.name);
        adds.push_str("\r\nx-usage-plan: ");
        adds.push_str(&plan.name);
        adds.push_str("\r\n");
        ctx.api_key = Some((key, plan));
        if ctx.audit.is_some() && ctx.identity.principal.is_none() {
            ctx.identity.principal = Some(key.name.to_string());
        }
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str, name: &str) -> StoredKey {
        StoredKey {
            hash: hash_key(text.as_bytes()),
            name: name.into(),
            plan: "basic".into(),
            expires: None,
            revoked: false,
            created: 0,
        }
    }

    #[test]
    fn finds_by_hash_and_declared_wins() {
        let mut declared = stored("secret-1", "declared");
        declared.revoked = true;
        let t = KeyTable::build(
            &[declared],
            &[stored("secret-1", "stored"), stored("secret-2", "two")],
        );
        assert_eq!(t.len(), 2);
        let k = t.find(b"secret-1").unwrap();
        assert_eq!(&*k.name, "declared");
        assert!(k.revoked);
        assert_eq!(&*t.find(b"secret-2").unwrap().name, "two");
        assert!(t.find(b"secret-3").is_none());
        assert!(t.find(b"").is_none());
    }

    #[test]
    fn generated_keys_are_distinct_and_well_formed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        assert!(a.starts_with("pk_") && a[3..].bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn constant_time_eq_compares_all_bytes() {
        let a = [1u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] = 0;
        assert!(!constant_time_eq(&a, &b));
    }
}
