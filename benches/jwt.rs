//! JWT verification per request: a signature check (cold) versus a hit in the
//! per-core verified-token cache, for RS256 and ES256 tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use portcullis::guard::auth::jwks::{JwksRegistry, Source};
use portcullis::guard::auth::jwt::{JwtAuth, TokenCache, TokenSource};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn bench_verify(c: &mut Criterion) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa1.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec.pem")).unwrap();
    let mut keys = Vec::new();
    for (key, alg, kalg, kid) in [
        (&rsa, Algorithm::RS256, KeyAlgorithm::RS256, "r1"),
        (&ec, Algorithm::ES256, KeyAlgorithm::ES256, "e1"),
    ] {
        let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk.common.key_algorithm = Some(kalg);
        keys.push(jwk);
    }
    let dir = std::env::temp_dir().join(format!("portcullis-bench-jwt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&JwkSet { keys }).unwrap()).unwrap();
    let registry = JwksRegistry::default();
    let jwks = registry
        .get(Source::File(path), std::time::Duration::from_secs(600))
        .unwrap();
    let auth = JwtAuth {
        cache_id: JwtAuth::next_cache_id(),
        issuer: "https://idp.test/".into(),
        audiences: vec!["web".into()],
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway: 60,
        forward_claims: vec![("sub".into(), "x-user-id".into())],
        token: TokenSource::Bearer(b"authorization"[..].into()),
        forward_authorization: false,
        jwks,
    };
    let claims = serde_json::json!({
        "iss": "https://idp.test/", "aud": "web", "sub": "user-1",
        "exp": now + 3600, "iat": now, "scope": "orders:read orders:write",
    });
    let mut g = c.benchmark_group("jwt_verify");
    for (name, key, alg, kid) in [
        ("rs256", &rsa, Algorithm::RS256, "r1"),
        ("es256", &ec, Algorithm::ES256, "e1"),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        let token = encode(&header, &claims, key).unwrap();
        let token = token.as_bytes();
        auth.verify_uncached(token, now).expect("valid token");
        g.bench_function(format!("{name}_cold"), |b| {
            b.iter(|| auth.verify_uncached(black_box(token), now).is_ok())
        });
        let mut cache = TokenCache::default();
        g.bench_function(format!("{name}_cached"), |b| {
            b.iter(|| auth.verify(black_box(token), &mut cache, now).is_ok())
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
