//! JSON Web Key Sets: the keys a JWT authorizer verifies signatures with, and their
//! lifecycle.
//!
//! A [`JwksCache`] holds the last good [`KeySet`] of one source (`jwks_url` or
//! `jwks_file`). Cores only read it. Fetching happens off the request path: the
//! control thread calls [`JwksRegistry::poll`], which starts a fetch (ureq, on a
//! short-lived thread) when the refresh interval or the server's `Cache-Control:
//! max-age` has run out, when a core met an unknown `kid` (at most once per 30 s, so
//! a flood of made-up `kid`s cannot make the gateway hammer the IdP), or to retry a
//! failed fetch (1 s, doubling up to 30 s). A failed fetch keeps the last good keys
//! and says so in the log; before the first success every token is refused.
//!
//! Each key is used only with its own algorithm (RFC 8725 §3.1): the JWK's `alg`,
//! or the one its type implies (EC P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA,
//! RSA → RS256, oct → HS256).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Early refetches (unknown `kid`) happen at most this often per source.
pub const EARLY_REFETCH_EVERY: Duration = Duration::from_secs(30);
/// The largest JWKS document accepted.
const MAX_JWKS_BYTES: u64 = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key.
pub struct Key {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

/// The keys of one source, by `kid`.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid`.
    anonymous: Vec<Key>,
}

/// What a token's `kid` finds.
pub enum Lookup<'a> {
    Found(&'a Key),
    /// A `kid` this set does not have (a rotation, or made up).
    UnknownKid,
    /// No `kid`, and the set has more than one key: ambiguous, refused.
    NeedKid,
}

impl KeySet {
    /// Parses a JWKS document. Keys for encryption (`use: enc`) and key types
    /// that cannot verify are skipped; a document with no usable key is an error.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = KeySet::default();
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let Some(alg) = key_algorithm(jwk) else {
                skipped.push(jwk.common.key_id.clone().unwrap_or_default());
                continue;
            };
            let decoding = match DecodingKey::from_jwk(jwk) {
                Ok(k) => k,
                Err(e) => {
                    return Err(format!(
                        "key {:?}: {e}",
                        jwk.common.key_id.as_deref().unwrap_or("")
                    ))
                }
            };
            let key = Key { alg, decoding };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None => keys.anonymous.push(key),
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "no usable signing key (skipped: {})",
                if skipped.is_empty() {
                    "none".into()
                } else {
                    skipped.join(", ")
                }
            ));
        }
        Ok(keys)
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn find(&self, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) => Lookup::Found(k),
                None => Lookup::UnknownKid,
            },
            None if self.len() == 1 => {
                match (self.anonymous.first(), self.by_kid.values().next()) {
                    (Some(k), _) | (None, Some(k)) => Lookup::Found(k),
                    (None, None) => Lookup::NeedKid,
                }
            }
            None => Lookup::NeedKid,
        }
    }
}

/// The algorithm a key may verify: its `alg`, or what its type implies.
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    use KeyAlgorithm as K;
    if let Some(a) = jwk.common.key_algorithm {
        return Some(match a {
            K::HS256 => Algorithm::HS256,
            K::HS384 => Algorithm::HS384,
            K::HS512 => Algorithm::HS512,
            K::ES256 => Algorithm::ES256,
            K::ES384 => Algorithm::ES384,
            K::RS256 => Algorithm::RS256,
            K::RS384 => Algorithm::RS384,
            K::RS512 => Algorithm::RS512,
            K::PS256 => Algorithm::PS256,
            K::PS384 => Algorithm::PS384,
            K::PS512 => Algorithm::PS512,
            K::EdDSA => Algorithm::EdDSA,
            _ => return None,
        });
    }
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => {
            (okp.curve == EllipticCurve::Ed25519).then_some(Algorithm::EdDSA)
        }
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKey(_) => Some(Algorithm::HS256),
    }
}

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Url(String),
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(u) => f.write_str(u),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

struct FetchState {
    /// When the next scheduled fetch is due.
    due: Instant,
    last_early: Option<Instant>,
    in_flight: bool,
    failures: u32,
    refresh: Duration,
}

/// The last good key set of one source, shared by every core and every authorizer
/// that names the source; survives reloads that keep the source.
pub struct JwksCache {
    pub source: Source,
    keys: ArcSwap<KeySet>,
    /// Bumped whenever the key set changes (verified-token caches check it).
    generation: AtomicU64,
    /// Set by a core that met an unknown `kid`.
    refetch_wanted: AtomicBool,
    state: Mutex<FetchState>,
    /// Fetches started so far (for the log and tests).
    pub fetches: AtomicU64,
    /// When a key set was last installed (Unix seconds; 0: never).
    pub last_success: AtomicU64,
}

impl JwksCache {
    fn new(source: Source, refresh: Duration) -> JwksCache {
        JwksCache {
            source,
            keys: ArcSwap::from_pointee(KeySet::default()),
            generation: AtomicU64::new(0),
            refetch_wanted: AtomicBool::new(false),
            state: Mutex::new(FetchState {
                due: Instant::now(),
                last_early: None,
                in_flight: false,
                failures: 0,
                refresh,
            }),
            fetches: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
        }
    }

    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A core met a `kid` the set lacks: ask the control thread for an early fetch.
    pub fn want_refetch(&self) {
        if !self.refetch_wanted.load(Ordering::Relaxed) {
            self.refetch_wanted.store(true, Ordering::Release);
        }
    }

    fn install(&self, set: KeySet) {
        self.keys.store(Arc::new(set));
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.last_success
            .store(crate::limit::period::unix_now(), Ordering::Relaxed);
    }

    /// Starts a fetch if one is due. Called by the control thread.
    fn poll(self: &Arc<Self>) {
        let now = Instant::now();
        let mut st = lock(&self.state);
        if st.in_flight {
            return;
        }
        let early = self.refetch_wanted.load(Ordering::Acquire)
            && st
                .last_early
                .is_none_or(|t| now.duration_since(t) >= EARLY_REFETCH_EVERY);
        if !early && now < st.due {
            return;
        }
        if early {
            st.last_early = Some(now);
            tracing::info!(source = %self.source, "jwks: unknown kid seen, fetching early");
        }
        self.refetch_wanted.store(false, Ordering::Release);
        st.in_flight = true;
        drop(st);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("jwks-fetch".into())
            .spawn(move || {
                let result = fetch(&me.source);
                me.finish(result);
            });
        if spawned.is_err() {
            lock(&self.state).in_flight = false;
        }
    }

    fn finish(&self, result: Result<(KeySet, Option<Duration>), String>) {
        let mut st = lock(&self.state);
        st.in_flight = false;
        match result {
            Ok((set, max_age)) => {
                if st.failures > 0 || self.keys().is_empty() {
                    tracing::info!(source = %self.source, keys = set.len(), "jwks: keys loaded");
                }
                st.failures = 0;
                st.due = Instant::now()
                    + max_age.map_or(st.refresh, |a| {
                        a.clamp(Duration::from_secs(30), Duration::from_secs(86_400))
                    });
                drop(st);
                self.install(set);
            }
            Err(e) => {
                st.failures += 1;
                let backoff = Duration::from_secs(1 << st.failures.min(5).saturating_sub(1))
                    .min(Duration::from_secs(30));
                st.due = Instant::now() + backoff;
                tracing::warn!(
                    source = %self.source,
                    failures = st.failures,
                    keys = self.keys().len(),
                    "jwks: fetch failed, keeping the last good keys: {e}"
                );
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads a source: the key set and the server's max-age, if any.
fn fetch(source: &Source) -> Result<(KeySet, Option<Duration>), String> {
    match source {
        Source::File(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((KeySet::parse(&bytes)?, None))
        }
        Source::Url(url) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(FETCH_TIMEOUT))
                .http_status_as_error(false)
                .build()
                .into();
            let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
            if resp.status() != 200 {
                return Err(format!("status {}", resp.status()));
            }
            let max_age = resp
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_JWKS_BYTES)
                .read_to_vec()
                .map_err(|e| e.to_string())?;
            Ok((KeySet::parse(&body)?, max_age))
        }
    }
}

/// `max-age=N` of a Cache-Control value.
fn max_age(v: &str) -> Option<Duration> {
    v.split(',').find_map(|d| {
        let d = d.trim();
        let n = d.strip_prefix("max-age=")?;
        n.trim_matches('"').parse().ok().map(Duration::from_secs)
    })
}

/// Every key set source the running config uses.
#[derive(Default)]
pub struct JwksRegistry {
    caches: Mutex<HashMap<Source, Arc<JwksCache>>>,
}

impl JwksRegistry {
    /// The cache for `source`, kept if an earlier config used it. A file source is
    /// read now, so a bad file fails the config.
    pub fn get(&self, source: Source, refresh: Duration) -> Result<Arc<JwksCache>, String> {
        let mut caches = lock(&self.caches);
        if let Some(c) = caches.get(&source) {
            lock(&c.state).refresh = refresh;
            if let Source::File(_) = source {
                // A reload rereads the file.
                let (set, _) = fetch(&source)?;
                c.install(set);
            }
            return Ok(c.clone());
        }
        let cache = Arc::new(JwksCache::new(source.clone(), refresh));
        if let Source::File(_) = source {
            let (set, _) = fetch(&source)?;
            cache.install(set);
            lock(&cache.state).due = Instant::now() + refresh;
        }
        caches.insert(source, cache.clone());
        Ok(cache)
    }

    /// Starts due fetches, and forgets sources no config uses any more.
    pub fn poll(&self) {
        let mut caches = lock(&self.caches);
        caches.retain(|_, c| Arc::strong_count(c) > 1);
        for c in caches.values() {
            c.poll();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    #[test]
    fn parses_and_infers_the_algorithm() {
        let set = KeySet::parse(EC_JWKS.as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        match set.find(Some("k1")) {
            Lookup::Found(k) => assert_eq!(k.alg, Algorithm::ES256),
            _ => panic!("k1 not found"),
        }
        assert!(matches!(set.find(Some("k2")), Lookup::UnknownKid));
        // One key: a token without kid may use it.
        assert!(matches!(set.find(None), Lookup::Found(_)));
    }

    #[test]
    fn rejects_documents_without_keys() {
        assert!(KeySet::parse(br#"{"keys":[]}"#).is_err());
        assert!(KeySet::parse(b"nope").is_err());
    }

    #[test]
    fn max_age_directive() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), None);
    }
}
