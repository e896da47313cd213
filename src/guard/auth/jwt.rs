//! JWT bearer tokens (Cognito user-pool style): find the token, verify its
//! signature with the authorizer's JWKS, check `iss`, `aud` (or Cognito's
//! `client_id`), `exp`, `nbf` and `iat` with leeway, and hand the claims on.
//!
//! Refused: `alg: none` and any algorithm outside the authorizer's allowlist; a key
//! used with an algorithm other than its own (so no HS/RS confusion); a token
//! without `kid` when the key set has several keys; an unknown `kid` (which also
//! asks for an early JWKS fetch). Verified tokens are kept per core in a bounded
//! cache until they expire, so a client that reuses its token costs a hash lookup
//! and a byte comparison, not a signature check; a key-set change invalidates them.
//! The reason for a refusal goes to the debug log; the token never does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::{JwksCache, Lookup};
use crate::limit::BoundedMap;

/// Verified tokens a core remembers.
const TOKEN_CACHE_ENTRIES: usize = 10_000;
/// The longest token accepted.
const MAX_TOKEN_BYTES: usize = 16 << 10;

/// Where an authorizer finds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (or another header with the Bearer scheme).
    Bearer(Box<[u8]>),
    /// A header whose whole value is the token.
    Header(Box<[u8]>),
    Query(Box<[u8]>),
    Cookie(Box<[u8]>),
}

impl TokenSource {
    /// `header:authorization` (Bearer), `header:NAME`, `query:NAME`, `cookie:NAME`.
    pub fn parse(s: &str) -> Option<TokenSource> {
        let (kind, name) = s.split_once(':')?;
        if name.is_empty() {
            return None;
        }
        let n: Box<[u8]> = name.as_bytes().into();
        match kind {
            "header" if name.eq_ignore_ascii_case("authorization") => Some(TokenSource::Bearer(
                name.to_ascii_lowercase().into_bytes().into(),
            )),
            "header" => Some(TokenSource::Header(
                name.to_ascii_lowercase().into_bytes().into(),
            )),
            "query" => Some(TokenSource::Query(n)),
            "cookie" => Some(TokenSource::Cookie(n)),
            _ => None,
        }
    }
}

/// A compiled `type = "jwt"` authorizer.
pub struct JwtAuth {
    /// Distinguishes this compilation's cache entries from an earlier config's
    /// ([`JwtAuth::next_cache_id`]).
    pub cache_id: u64,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub leeway: u64,
    /// Claim → upstream header (lower case).
    pub forward_claims: Vec<(String, String)>,
    pub token: TokenSource,
    pub forward_authorization: bool,
    pub jwks: Arc<JwksCache>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("issuer", &self.issuer)
            .field("jwks", &self.jwks.source)
            .finish()
    }
}

static CACHE_IDS: AtomicU64 = AtomicU64::new(1);

/// Verified claims, with what the route stages need from them ready.
#[derive(Debug)]
pub struct Claims {
    pub map: Map<String, Value>,
    /// `scope` (space-separated) and `scp` (array or string), merged.
    pub scopes: Vec<String>,
    pub exp: u64,
    /// The `forward_claims` header lines for the upstream.
    pub upstream: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token where the authorizer looks (→ `error="invalid_request"`).
    Missing,
    /// Anything wrong with the token (→ `error="invalid_token"`), with the reason.
    Invalid(&'static str),
}

impl JwtAuth {
    /// A cache id no other compiled authorizer has: `cache_id` of a new
    /// `JwtAuth`, so its verified tokens never serve an earlier config's.
    pub fn next_cache_id() -> u64 {
        CACHE_IDS.fetch_add(1, Ordering::Relaxed)
    }

    /// Verifies `token`, through `cache`. `now`: unix seconds.
    pub fn verify(
        &self,
        token: &[u8],
        cache: &mut TokenCache,
        now: u64,
    ) -> Result<Arc<Claims>, Refusal> {
        if token.is_empty() {
            return Err(Refusal::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Invalid("token too long"));
        }
        let generation = self.jwks.generation();
        let key = cache_key(self.cache_id, token);
        if let Some(slot) = cache.map.slot_of(&key) {
            let e = cache.map.at(slot);
            if e.token[..] == *token && e.cache_id == self.cache_id && e.generation == generation {
                if now <= e.claims.exp.saturating_add(self.leeway) {
                    return Ok(e.claims.clone());
                }
                return Err(Refusal::Invalid("expired"));
            }
        }
        let claims = Arc::new(self.verify_uncached(token, now)?);
        let entry = CachedToken {
            token: token.into(),
            cache_id: self.cache_id,
            generation,
            claims: claims.clone(),
        };
        match cache.map.slot_of(&key) {
            Some(slot) => *cache.map.at(slot) = entry,
            None => {
                cache.map.insert(key, entry, |e| e.claims.exp);
            }
        }
        Ok(claims)
    }

    /// Verifies without the cache: a signature check every time.
    pub fn verify_uncached(&self, token: &[u8], now: u64) -> Result<Claims, Refusal> {
        let invalid = Refusal::Invalid;
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => invalid("algorithm not allowed"),
            _ => invalid("malformed token"),
        })?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid("algorithm not allowed"));
        }
        let keys = self.jwks.keys();
        let key = match keys.find(header.kid.as_deref()) {
            Lookup::Found(k) => k,
            Lookup::UnknownKid if keys.is_empty() => {
                // Before the first fetch succeeds the retry schedule covers it;
                // asking now would spend the early refetch a rotation may need.
                return Err(invalid("no keys yet"));
            }
            Lookup::UnknownKid => {
                self.jwks.want_refetch();
                return Err(invalid("unknown kid"));
            }
            Lookup::NeedKid => return Err(invalid("no kid and several keys")),
        };
        if key.alg != header.alg {
            return Err(invalid("algorithm does not match the key"));
        }
        let mut v = Validation::new(header.alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "iss"]);
        v.set_issuer(&[&self.issuer]);
        let token_str = std::str::from_utf8(token).map_err(|_| invalid("malformed token"))?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token_str, &key.decoding, &v)
            .map_err(|e| {
                invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not yet valid (nbf)",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::MissingRequiredClaim(_) => "missing exp or iss",
                    ErrorKind::InvalidAlgorithm => "algorithm does not match the key",
                    _ => "malformed token",
                })
            })?;
        let map = data.claims;
        if let Some(iat) = map.get("iat").and_then(Value::as_u64) {
            if iat > now.saturating_add(self.leeway) {
                return Err(invalid("issued in the future (iat)"));
            }
        }
        if !self.audiences.is_empty() && !audience_matches(&map, &self.audiences) {
            return Err(invalid("wrong audience"));
        }
        let exp = map
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(invalid("missing exp or iss"))?;
        let mut upstream = String::new();
        for (claim, header) in &self.forward_claims {
            if let Some(v) = map.get(claim).and_then(header_value) {
                upstream.push_str(header);
                upstream.push_str(": ");
                upstream.push_str(&v);
                upstream.push_str("\r\n");
            }
        }
        Ok(Claims {
            scopes: scopes(&map),
            exp,
            upstream,
            map,
        })
    }
}

fn audience_matches(map: &Map<String, Value>, audiences: &[String]) -> bool {
    let ok = |v: &Value| v.as_str().is_some_and(|s| audiences.iter().any(|a| a == s));
    match map.get("aud") {
        Some(Value::Array(a)) => a.iter().any(ok),
        Some(v) => ok(v),
        None => map.get("client_id").is_some_and(ok),
    }
}

fn scopes(map: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(s) = map.get("scope").and_then(Value::as_str) {
        out.extend(s.split_whitespace().map(str::to_owned));
    }
    match map.get("scp") {
        Some(Value::Array(a)) => out.extend(a.iter().filter_map(Value::as_str).map(str::to_owned)),
        Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_owned)),
        _ => {}
    }
    out
}

/// A claim as a header value: strings, numbers and booleans as text, arrays
/// joined by commas; nothing that could break the header.
pub fn header_value(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a
            .iter()
            .filter_map(header_value)
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    };
    (s.len() <= 4096 && s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))).then_some(s)
}

fn cache_key(cache_id: u64, token: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one((cache_id, token))
}

struct CachedToken {
    token: Box<[u8]>,
    cache_id: u64,
    generation: u64,
    claims: Arc<Claims>,
}

/// A core's verified tokens (bounded; the soonest to expire are evicted first).
pub struct TokenCache {
    map: BoundedMap<u64, CachedToken>,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            map: BoundedMap::new(TOKEN_CACHE_ENTRIES),
        }
    }
}

impl TokenCache {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The token of a request according to `source`: `head` is the request head,
/// `headers` its (name, value) pairs, `query` the raw query string.
pub fn find_token<'a>(
    source: &TokenSource,
    mut header: impl FnMut(&[u8]) -> Option<&'a [u8]>,
    query: &'a [u8],
) -> Option<&'a [u8]> {
    match source {
        TokenSource::Bearer(name) => {
            let v = trim(header(name)?);
            let scheme = v.get(..7)?;
            scheme
                .eq_ignore_ascii_case(b"bearer ")
                .then(|| trim(&v[7..]))
        }
        TokenSource::Header(name) => Some(trim(header(name)?)),
        TokenSource::Query(name) => query.split(|&b| b == b'&').find_map(|pair| {
            let (k, v) = match memchr::memchr(b'=', pair) {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (k == &name[..]).then_some(v)
        }),
        TokenSource::Cookie(name) => header(b"cookie")?.split(|&b| b == b';').find_map(|c| {
            let c = trim(c);
            let i = memchr::memchr(b'=', c)?;
            (c[..i] == name[..]).then(|| trim(&c[i + 1..]))
        }),
    }
}

fn trim(v: &[u8]) -> &[u8] {
    crate::http::trim_ows(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources() {
        let h = |name: &[u8]| -> Option<&'static [u8]> {
            match name {
                b"authorization" => Some(b"Bearer abc.def.ghi "),
                b"x-token" => Some(b" t1"),
                b"cookie" => Some(b"a=1; id=t2; b=3"),
                _ => None,
            }
        };
        let src = |s: &str| TokenSource::parse(s).unwrap();
        assert_eq!(
            find_token(&src("header:Authorization"), h, b""),
            Some(&b"abc.def.ghi"[..])
        );
        assert_eq!(find_token(&src("header:x-token"), h, b""), Some(&b"t1"[..]));
        assert_eq!(find_token(&src("cookie:id"), h, b""), Some(&b"t2"[..]));
        assert_eq!(
            find_token(&src("query:access_token"), h, b"a=1&access_token=t3"),
            Some(&b"t3"[..])
        );
        assert_eq!(find_token(&src("query:access_token"), h, b"a=1"), None);
        let basic = |_: &[u8]| -> Option<&'static [u8]> { Some(b"Basic abc") };
        assert_eq!(find_token(&src("header:authorization"), basic, b""), None);
        assert!(TokenSource::parse("body:x").is_none());
    }

    #[test]
    fn claim_values_and_scopes() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"scope":"a b","scp":["c"],"aud":["x","web"],"n":5,"bad":"a\nb"}"#,
        )
        .unwrap();
        assert_eq!(scopes(&m), vec!["a", "b", "c"]);
        assert!(audience_matches(&m, &["web".into()]));
        assert!(!audience_matches(&m, &["other".into()]));
        assert_eq!(header_value(&m["n"]).as_deref(), Some("5"));
        assert_eq!(header_value(&m["bad"]), None);
        let cognito: Map<String, Value> = serde_json::from_str(r#"{"client_id":"web"}"#).unwrap();
        assert!(audience_matches(&cognito, &["web".into()]));
    }
}
