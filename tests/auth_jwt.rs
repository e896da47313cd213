//! JWT authorizers (`[auth.NAME]` with `type = "jwt"`): token sources, signature,
//! algorithm and claim checks, forwarded identity headers, route scopes and
//! claims, the JWKS lifecycle (rotation, early refetch rate limit, IdP down at
//! start, `jwks_file`), config errors and reload.
//!
//! Tokens are minted with `jsonwebtoken` from the test keys in
//! `tests/fixtures/jwt`; the public keys are served as a JWKS by a small test
//! HTTP server (`common::JwksServer`) whose document can be swapped at runtime.

mod common;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use common::*;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm};
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis::limit::period::unix_now;
use serde_json::{json, Map, Value};
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;
const INVALID_REQUEST: &str = r#"Bearer error="invalid_request""#;
const ISSUER: &str = "https://idp.test/";
const HS_SECRET: &[u8] = b"portcullis-test-hmac-secret-0123456789abcdef";
const ALL_ALGS: &str = r#"algorithms = ["RS256", "PS256", "ES256", "EdDSA", "HS256"]"#;

// ---------------------------------------------------------------------------
// base64 and DER (only what the tests need)
// ---------------------------------------------------------------------------

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// base64url without padding (JWT segments, JWK members).
fn b64url(data: &[u8]) -> String {
    b64_encode(data, B64_URL, false)
}

fn b64url_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64_URL
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("bad base64url {:?}", s)) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend_from_slice(&[0x81, n as u8]);
    } else {
        v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = bytes.iter().copied().skip_while(|&x| x == 0).collect();
    if b.first().is_none_or(|&x| x & 0x80 != 0) {
        b.insert(0, 0);
    }
    der(0x02, &b)
}

/// The SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----") of an RSA key,
/// built from its modulus and exponent.
fn rsa_public_pem(n: &[u8], e: &[u8]) -> String {
    let rsa_oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let alg_id = der(0x30, &[&rsa_oid[..], &[0x05, 0x00]].concat());
    let pkcs1 = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let bits = der(0x03, &[&[0u8][..], &pkcs1].concat());
    let spki = der(0x30, &[alg_id, bits].concat());
    let b64 = b64_encode(&spki, B64_STD, true);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

// ---------------------------------------------------------------------------
// keys, JWKS documents, tokens
// ---------------------------------------------------------------------------

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("read {}: {}", p.display(), e))
}

fn rsa1() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("rsa1.pem")).expect("rsa1.pem")
}

fn rsa2() -> EncodingKey {
    EncodingKey::from_rsa_pem(&fixture("rsa2.pem")).expect("rsa2.pem")
}

fn ec() -> EncodingKey {
    EncodingKey::from_ec_pem(&fixture("ec.pem")).expect("ec.pem")
}

fn ed() -> EncodingKey {
    EncodingKey::from_ed_pem(&fixture("ed25519.pem")).expect("ed25519.pem")
}

fn hmac() -> EncodingKey {
    EncodingKey::from_secret(HS_SECRET)
}

fn key_algorithm(alg: Algorithm) -> KeyAlgorithm {
    match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::PS256 => KeyAlgorithm::PS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
        Algorithm::HS256 => KeyAlgorithm::HS256,
        other => panic!("no test key for {:?}", other),
    }
}

/// The public JWK of an asymmetric key, with `kid` and `alg`.
fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("jwk from key");
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.key_algorithm = Some(key_algorithm(alg));
    jwk
}

/// A JWKS entry as JSON: the public JWK (`OKP` for EdDSA), or for HS256 an
/// `oct` key.
fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    if alg == Algorithm::HS256 {
        json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": b64url(HS_SECRET)})
    } else if alg == Algorithm::EdDSA {
        // jsonwebtoken cannot derive an OKP JWK; aws-lc-rs gives the public key
        let pair = Ed25519KeyPair::from_pkcs8(key.inner()).expect("ed25519 pkcs8");
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": kid,
            "alg": "EdDSA",
            "x": b64url(pair.public_key().as_ref()),
        })
    } else {
        serde_json::to_value(public_jwk(key, alg, kid)).unwrap()
    }
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// rsa1 as `r1` (RS256).
fn jwk_r1() -> Value {
    jwk(&rsa1(), Algorithm::RS256, "r1")
}

/// Every test key: r1 (rsa1, RS256), p1 (rsa2, PS256), e1 (EC P-256, ES256),
/// d1 (Ed25519, EdDSA), h1 (oct, HS256).
fn jwks_all() -> String {
    jwks(&[
        jwk_r1(),
        jwk(&rsa2(), Algorithm::PS256, "p1"),
        jwk(&ec(), Algorithm::ES256, "e1"),
        jwk(&ed(), Algorithm::EdDSA, "d1"),
        jwk(&hmac(), Algorithm::HS256, "h1"),
    ])
}

/// Valid claims (iss, aud "web", sub "alice", iat now, exp in an hour) with
/// `over` applied: each member replaces the claim, `null` removes it.
fn claims(over: Value) -> Value {
    let now = unix_now() as i64;
    let mut m: Map<String, Value> = json!({
        "iss": ISSUER,
        "aud": "web",
        "sub": "alice",
        "iat": now,
        "exp": now + 3600,
    })
    .as_object()
    .unwrap()
    .clone();
    for (k, v) in over.as_object().expect("claims override is an object") {
        if v.is_null() {
            m.remove(k);
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

fn mint(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, claims, key).expect("encode token")
}

/// An RS256 token by rsa1 with kid `r1` and the claims `over` gives.
fn token(over: Value) -> String {
    mint(&rsa1(), Algorithm::RS256, Some("r1"), &claims(over))
}

fn valid_token() -> String {
    token(json!({}))
}

// ---------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------

fn jwks_url(port: u16) -> String {
    format!("jwks_url = \"http://127.0.0.1:{}/jwks.json\"", port)
}

/// `[auth.users]` (jwt, our issuer, `audiences`) with the JWKS line and extras.
fn auth_section_aud(audiences: &str, jwks_line: &str, extra: &str) -> String {
    format!(
        "[auth.users]\ntype = \"jwt\"\nissuer = \"{}\"\naudiences = {}\n{}\n{}\n\n",
        ISSUER, audiences, jwks_line, extra
    )
}

fn auth_section(jwks_line: &str, extra: &str) -> String {
    auth_section_aud("[\"web\"]", jwks_line, extra)
}

/// Route `/api` answering 200 "ok" behind `auth = "users"`, plus extra lines.
fn api_mock(extra: &str) -> String {
    format!(
        "[[route]]\nname = \"api\"\npath = \"/api\"\nmock = {{ status = 200, body = \"ok\", content_type = \"text/plain\" }}\nauth = \"users\"\n{}\n\n",
        extra
    )
}

/// Route `/api` proxied to upstream `u` (on `port`) behind `auth = "users"`.
fn api_proxy(port: u16, extra: &str) -> String {
    format!(
        "{}[[route]]\nname = \"api\"\npath = \"/api\"\nupstream = \"u\"\nauth = \"users\"\n{}\n\n",
        upstream_block("u", &[port], ""),
        extra
    )
}

// ---------------------------------------------------------------------------
// requests and assertions
// ---------------------------------------------------------------------------

/// GET `path` with `Authorization: Bearer <token>`.
fn get_bearer(gw: &Gateway, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {}", token);
    gw.get_with("test.local", path, &[("Authorization", &auth)])
}

fn bearer_on(c: &mut Client, path: &str, token: &str) -> Response {
    let auth = format!("Bearer {}", token);
    c.get_with("test.local", path, &[("Authorization", &auth)])
}

fn assert_ok(r: &Response) {
    assert_eq!(r.status, 200, "{:?}\nbody: {}", r, r.body_str());
    assert_eq!(r.body_str(), "ok");
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
}

/// Sends `send` (fresh connection each time) until it answers 200, for at most
/// `within`; meanwhile only 401 invalid_token (no keys yet) is acceptable.
fn poll_until_ok(
    gw: &Gateway,
    within: Duration,
    what: &str,
    send: impl Fn() -> Response,
) -> Response {
    let deadline = Instant::now() + within;
    loop {
        let r = send();
        if r.status == 200 {
            return r;
        }
        assert_401(&r, INVALID_TOKEN);
        assert!(
            Instant::now() < deadline,
            "{}: still refused after {:?}\n{}",
            what,
            within,
            gw.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (≤ 10 s) until the gateway has the keys: `token` on `path` answers 200.
fn wait_keys(gw: &Gateway, path: &str, token: &str) -> Response {
    poll_until_ok(gw, Duration::from_secs(10), "jwks not loaded", || {
        get_bearer(gw, path, token)
    })
}

/// A JWKS server with `doc`, a gateway with `[auth.users]` (`auth_extra`) and the
/// mock route `/api` (`route_extra`), keys loaded (checked with `ready`).
fn start_mock(
    doc: &str,
    auth_extra: &str,
    route_extra: &str,
    ready: &str,
) -> (JwksServer, Gateway) {
    let idp = JwksServer::start(doc);
    let rest = format!(
        "{}{}",
        auth_section(&jwks_url(idp.port), auth_extra),
        api_mock(route_extra)
    );
    let gw = Gateway::start("", &rest);
    wait_keys(&gw, "/api", ready);
    (idp, gw)
}

/// The usual setup: JWKS {r1}, default algorithms (RS256), `/api` mock.
fn standard() -> (JwksServer, Gateway) {
    start_mock(&jwks(&[jwk_r1()]), "", "", &valid_token())
}

/// With the standard setup, a token with the claims `over` is refused as invalid.
fn assert_claims_refused(over: Value) {
    let (_idp, gw) = standard();
    let r = get_bearer(&gw, "/api", &token(over.clone()));
    assert_401(&r, INVALID_TOKEN);
    // the refusal is about those claims: the valid token still passes
    assert_ok(&get_bearer(&gw, "/api", &valid_token()));
}

// ---------------------------------------------------------------------------
// missing and invalid tokens
// ---------------------------------------------------------------------------

#[test]
fn missing_token_is_401_invalid_request() {
    let (_idp, gw) = standard();
    let r = gw.get_with("test.local", "/api", &[]);
    assert_401(&r, INVALID_REQUEST);
    let r = gw.get_with("test.local", "/api/orders", &[]);
    assert_401(&r, INVALID_REQUEST);
}

#[test]
fn basic_scheme_is_401_invalid_request() {
    let (_idp, gw) = standard();
    let r = gw.get_with(
        "test.local",
        "/api",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
    );
    assert_401(&r, INVALID_REQUEST);
    // even with a valid token in the Basic credentials' place
    let basic = format!("Basic {}", valid_token());
    let r = gw.get_with("test.local", "/api", &[("Authorization", &basic)]);
    assert_401(&r, INVALID_REQUEST);
}

#[test]
fn malformed_tokens_are_401_invalid_token() {
    let (_idp, gw) = standard();
    for t in ["garbage", "abc.def", "eyJhbGciOiJSUzI1NiJ9.e30", "a.b.c"] {
        let r = get_bearer(&gw, "/api", t);
        assert_401(&r, INVALID_TOKEN);
    }
}

#[test]
fn expired_token_is_refused() {
    let now = unix_now() as i64;
    assert_claims_refused(json!({"exp": now - 300, "iat": now - 3900}));
}

#[test]
fn token_without_exp_is_refused() {
    assert_claims_refused(json!({"exp": null}));
}

#[test]
fn nbf_in_the_future_beyond_leeway_is_refused() {
    assert_claims_refused(json!({"nbf": unix_now() as i64 + 300}));
}

#[test]
fn iat_in_the_future_beyond_leeway_is_refused() {
    let now = unix_now() as i64;
    assert_claims_refused(json!({"iat": now + 300, "exp": now + 7200}));
}

#[test]
fn wrong_issuer_is_refused() {
    assert_claims_refused(json!({"iss": "https://evil.test/"}));
}

#[test]
fn token_without_iss_is_refused() {
    assert_claims_refused(json!({"iss": null}));
}

#[test]
fn wrong_audience_is_refused_string_and_array() {
    let (_idp, gw) = standard();
    for aud in [json!("mobile"), json!(["mobile", "other"]), json!([])] {
        let r = get_bearer(&gw, "/api", &token(json!({ "aud": aud })));
        assert_401(&r, INVALID_TOKEN);
    }
    // neither aud nor client_id
    let r = get_bearer(&gw, "/api", &token(json!({"aud": null})));
    assert_401(&r, INVALID_TOKEN);
    // an array holding the audience is fine
    let r = get_bearer(&gw, "/api", &token(json!({"aud": ["other", "web"]})));
    assert_ok(&r);
}

#[test]
fn cognito_access_token_with_client_id_is_accepted() {
    let (_idp, gw) = standard();
    let t = token(json!({
        "aud": null,
        "client_id": "web",
        "token_use": "access",
        "scope": "orders:read",
    }));
    assert_ok(&get_bearer(&gw, "/api", &t));
    // a client_id that is not an audience is not
    let t = token(json!({"aud": null, "client_id": "mobile", "token_use": "access"}));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
}

#[test]
fn tampered_payload_is_refused() {
    let (_idp, gw) = standard();
    let good = valid_token();
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3);
    let forged = claims(json!({"sub": "admin"})).to_string();
    let tampered = format!("{}.{}.{}", parts[0], b64url(forged.as_bytes()), parts[2]);
    assert_401(&get_bearer(&gw, "/api", &tampered), INVALID_TOKEN);
    // a flipped signature byte
    let mut sig = b64url_decode(parts[2]);
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64url(&sig));
    assert_401(&get_bearer(&gw, "/api", &flipped), INVALID_TOKEN);
    assert_ok(&get_bearer(&gw, "/api", &good));
}

#[test]
fn token_signed_by_a_foreign_key_with_a_known_kid_is_refused() {
    let (_idp, gw) = standard();
    // rsa2 is not in the JWKS; the kid names rsa1's key
    let t = mint(&rsa2(), Algorithm::RS256, Some("r1"), &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
}

#[test]
fn alg_none_is_refused() {
    let (_idp, gw) = standard();
    let payload = b64url(claims(json!({})).to_string().as_bytes());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"none","typ":"JWT","kid":"r1"}"#,
        r#"{"alg":"None","typ":"JWT","kid":"r1"}"#,
    ] {
        let t = format!("{}.{}.", b64url(header.as_bytes()), payload);
        assert!(t.starts_with("eyJ"), "{}", t);
        assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
    }
}

#[test]
fn algorithm_outside_the_allowlist_is_refused() {
    // algorithms defaults to ["RS256"]; the JWKS has an ES256 key too
    let (_idp, gw) = start_mock(&jwks_all(), "", "", &valid_token());
    let t = mint(&ec(), Algorithm::ES256, Some("e1"), &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
    let t = mint(&hmac(), Algorithm::HS256, Some("h1"), &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let (_idp, gw) = start_mock(&jwks_all(), ALL_ALGS, "", &valid_token());
    // the RSA public key as the IdP publishes it, as a PEM
    let public = public_jwk(&rsa1(), Algorithm::RS256, "r1");
    let (n, e) = match &public.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => {
            (b64url_decode(&p.n), b64url_decode(&p.e))
        }
        other => panic!("not an RSA jwk: {:?}", other),
    };
    let pem = rsa_public_pem(&n, &e);
    // sanity: that PEM really is rsa1's public key
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["web"]);
    jsonwebtoken::decode::<Value>(
        &valid_token(),
        &DecodingKey::from_rsa_pem(pem.as_bytes()).expect("public pem"),
        &v,
    )
    .expect("the built PEM verifies rsa1's tokens");

    let t = mint(
        &EncodingKey::from_secret(pem.as_bytes()),
        Algorithm::HS256,
        Some("r1"),
        &claims(json!({})),
    );
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
    // HS256 itself is allowed: with the oct key it passes
    let t = mint(&hmac(), Algorithm::HS256, Some("h1"), &claims(json!({})));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

#[test]
fn token_without_kid_is_refused_when_the_jwks_has_several_keys() {
    let doc = jwks(&[jwk_r1(), jwk(&rsa2(), Algorithm::RS256, "r2")]);
    let (_idp, gw) = start_mock(&doc, "", "", &valid_token());
    let t = mint(&rsa1(), Algorithm::RS256, None, &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
    let t = mint(&rsa2(), Algorithm::RS256, None, &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
    // with its kid the same key is fine
    let t = mint(&rsa2(), Algorithm::RS256, Some("r2"), &claims(json!({})));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

#[test]
fn token_without_kid_is_accepted_when_the_jwks_has_one_key() {
    let (_idp, gw) = standard();
    let t = mint(&rsa1(), Algorithm::RS256, None, &claims(json!({})));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

#[test]
fn unknown_kid_is_refused() {
    let (_idp, gw) = standard();
    let t = mint(&rsa1(), Algorithm::RS256, Some("zz"), &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
    let t = mint(&rsa1(), Algorithm::RS256, Some(""), &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
}

// ---------------------------------------------------------------------------
// algorithms and leeway
// ---------------------------------------------------------------------------

/// With every algorithm allowed and every test key published, a token signed
/// by `key` (`alg`, `kid`) is accepted.
fn assert_algorithm_accepted(key: EncodingKey, alg: Algorithm, kid: &str) {
    let t = mint(&key, alg, Some(kid), &claims(json!({})));
    let (_idp, gw) = start_mock(&jwks_all(), ALL_ALGS, "", &t);
    assert_ok(&get_bearer(&gw, "/api", &t));
    // a fresh token of the same kind too (not only the cached one)
    let t2 = mint(&key, alg, Some(kid), &claims(json!({"sub": "bob"})));
    assert_ok(&get_bearer(&gw, "/api", &t2));
}

#[test]
fn rs256_token_is_accepted() {
    assert_algorithm_accepted(rsa1(), Algorithm::RS256, "r1");
}

#[test]
fn ps256_token_is_accepted() {
    assert_algorithm_accepted(rsa2(), Algorithm::PS256, "p1");
}

#[test]
fn es256_token_is_accepted() {
    assert_algorithm_accepted(ec(), Algorithm::ES256, "e1");
}

#[test]
fn eddsa_token_is_accepted() {
    assert_algorithm_accepted(ed(), Algorithm::EdDSA, "d1");
}

#[test]
fn hs256_token_is_accepted() {
    assert_algorithm_accepted(hmac(), Algorithm::HS256, "h1");
}

#[test]
fn expiry_within_leeway_is_accepted() {
    let (_idp, gw) = start_mock(&jwks(&[jwk_r1()]), "leeway = \"60s\"", "", &valid_token());
    let now = unix_now() as i64;
    let t = token(json!({"exp": now - 30, "iat": now - 600}));
    assert_ok(&get_bearer(&gw, "/api", &t));
    // and nbf 30 s ahead
    let t = token(json!({"nbf": now + 30}));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

// ---------------------------------------------------------------------------
// token sources
// ---------------------------------------------------------------------------

#[test]
fn token_from_custom_header() {
    let t = valid_token();
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    let rest = format!(
        "{}{}",
        auth_section(&jwks_url(idp.port), "token = \"header:x-token\""),
        api_mock("")
    );
    let gw = Gateway::start("", &rest);
    let r = poll_until_ok(&gw, Duration::from_secs(10), "x-token", || {
        gw.get_with("test.local", "/api", &[("x-token", &t)])
    });
    assert_ok(&r);
    assert_401(&gw.get_with("test.local", "/api", &[]), INVALID_REQUEST);
    // the Authorization header is not where this authorizer looks
    assert_401(&get_bearer(&gw, "/api", &t), INVALID_REQUEST);
}

#[test]
fn token_from_query_parameter() {
    let t = valid_token();
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    let rest = format!(
        "{}{}",
        auth_section(&jwks_url(idp.port), "token = \"query:access_token\""),
        api_mock("")
    );
    let gw = Gateway::start("", &rest);
    let path = format!("/api?a=1&access_token={}&b=2", t);
    let r = poll_until_ok(&gw, Duration::from_secs(10), "query", || {
        gw.get_with("test.local", &path, &[])
    });
    assert_ok(&r);
    assert_ok(&gw.get_with("test.local", &format!("/api?access_token={}", t), &[]));
    assert_401(&gw.get_with("test.local", "/api?a=1", &[]), INVALID_REQUEST);
    assert_401(
        &gw.get_with("test.local", "/api?access_token=garbage", &[]),
        INVALID_TOKEN,
    );
}

#[test]
fn token_from_cookie() {
    let t = valid_token();
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    let rest = format!(
        "{}{}",
        auth_section(&jwks_url(idp.port), "token = \"cookie:id\""),
        api_mock("")
    );
    let gw = Gateway::start("", &rest);
    let cookie = format!("a=1; id={}; b=2", t);
    let r = poll_until_ok(&gw, Duration::from_secs(10), "cookie", || {
        gw.get_with("test.local", "/api", &[("Cookie", &cookie)])
    });
    assert_ok(&r);
    assert_401(
        &gw.get_with("test.local", "/api", &[("Cookie", "a=1; idx=2")]),
        INVALID_REQUEST,
    );
}

// ---------------------------------------------------------------------------
// identity headers for the upstream
// ---------------------------------------------------------------------------

const FORWARD: &str = r#"forward_claims = { sub = "x-user-id", "cognito:groups" = "x-groups" }"#;

fn start_proxy(auth_extra: &str) -> (JwksServer, Upstream, Gateway) {
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    let up = Upstream::start();
    let rest = format!(
        "{}{}",
        auth_section(&jwks_url(idp.port), auth_extra),
        api_proxy(up.port, "")
    );
    let gw = Gateway::start("", &rest);
    wait_keys(&gw, "/api/ready", &valid_token());
    (idp, up, gw)
}

fn assert_proxied(r: &Response) {
    assert_eq!(r.status, 200, "{:?}\nbody: {}", r, r.body_str());
    assert!(r.body_str().starts_with("method=GET\n"), "{}", r.body_str());
}

#[test]
fn claims_are_forwarded_and_authorization_is_not() {
    let (_idp, up, gw) = start_proxy(FORWARD);
    let t = token(json!({"cognito:groups": ["a", "b"]}));
    let r = get_bearer(&gw, "/api/orders", &t);
    assert_proxied(&r);
    let seen = up.last();
    assert_eq!(seen.target, "/api/orders");
    assert_eq!(
        seen.header_all("x-user-id"),
        vec!["alice"],
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.header_all("x-groups"),
        vec!["a,b"],
        "{:?}",
        seen.headers
    );
    assert!(!seen.has("authorization"), "{:?}", seen.headers);
}

#[test]
fn client_sent_identity_headers_are_dropped() {
    let (_idp, up, gw) = start_proxy(FORWARD);
    let t = token(json!({"cognito:groups": ["a", "b"]}));
    let auth = format!("Bearer {}", t);
    let r = gw.get_with(
        "test.local",
        "/api/x",
        &[
            ("X-User-Id", "mallory"),
            ("Authorization", &auth),
            ("x-groups", "admin"),
            ("x-user-id", "eve"),
        ],
    );
    assert_proxied(&r);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-user-id"),
        vec!["alice"],
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.header_all("x-groups"),
        vec!["a,b"],
        "{:?}",
        seen.headers
    );

    // a token without those claims: the client's headers still do not pass
    let t = token(json!({"sub": null}));
    let auth = format!("Bearer {}", t);
    let r = gw.get_with(
        "test.local",
        "/api/y",
        &[
            ("x-user-id", "mallory"),
            ("x-groups", "admin"),
            ("Authorization", &auth),
        ],
    );
    assert_proxied(&r);
    let seen = up.last();
    assert_eq!(seen.target, "/api/y");
    assert!(!seen.has("x-user-id"), "{:?}", seen.headers);
    assert!(!seen.has("x-groups"), "{:?}", seen.headers);
    assert!(!seen.has("authorization"), "{:?}", seen.headers);
}

#[test]
fn forward_authorization_passes_the_header_on() {
    let (_idp, up, gw) = start_proxy(&format!("{}\nforward_authorization = true", FORWARD));
    let t = valid_token();
    let r = get_bearer(&gw, "/api/z", &t);
    assert_proxied(&r);
    let seen = up.last();
    assert_eq!(seen.target, "/api/z");
    let expected = format!("Bearer {}", t);
    assert_eq!(
        seen.header_all("authorization"),
        vec![expected.as_str()],
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.header_all("x-user-id"),
        vec!["alice"],
        "{:?}",
        seen.headers
    );
}

// ---------------------------------------------------------------------------
// scopes and claims
// ---------------------------------------------------------------------------

fn start_scoped(route_extra: &str) -> (JwksServer, Gateway) {
    let ready = token(json!({"scope": "orders:read", "cognito:groups": ["admin"]}));
    start_mock(&jwks(&[jwk_r1()]), "", route_extra, &ready)
}

const SCOPES: &str = r#"scopes = ["orders:read"]"#;
const CLAIMS: &str = r#"claims = { "cognito:groups" = ["admin"] }"#;

#[test]
fn scope_string_with_the_required_scope_passes() {
    let (_idp, gw) = start_scoped(SCOPES);
    let t = token(json!({"scope": "orders:read orders:write"}));
    assert_ok(&get_bearer(&gw, "/api", &t));
    let t = token(json!({"scope": "orders:write orders:read"}));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

#[test]
fn scp_array_with_the_required_scope_passes() {
    let (_idp, gw) = start_scoped(SCOPES);
    let t = token(json!({"scp": ["orders:read"]}));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

#[test]
fn missing_scope_is_403() {
    let (_idp, gw) = start_scoped(SCOPES);
    for over in [
        json!({}),
        json!({"scope": "orders:write"}),
        json!({"scope": "orders:readx orders"}),
        json!({"scp": ["orders:write"]}),
    ] {
        let r = get_bearer(&gw, "/api", &token(over.clone()));
        assert_403(&r);
    }
    // authentication still comes first
    assert_401(&gw.get_with("test.local", "/api", &[]), INVALID_REQUEST);
}

#[test]
fn required_claim_value_passes() {
    let (_idp, gw) = start_scoped(CLAIMS);
    let t = token(json!({"cognito:groups": ["user", "admin"]}));
    assert_ok(&get_bearer(&gw, "/api", &t));
    let t = token(json!({"cognito:groups": ["admin"]}));
    assert_ok(&get_bearer(&gw, "/api", &t));
}

#[test]
fn mismatched_or_missing_claim_is_403() {
    let (_idp, gw) = start_scoped(CLAIMS);
    for over in [
        json!({"cognito:groups": ["user"]}),
        json!({"cognito:groups": []}),
        json!({}),
    ] {
        let r = get_bearer(&gw, "/api", &token(over.clone()));
        assert_403(&r);
    }
}

// ---------------------------------------------------------------------------
// JWKS lifecycle
// ---------------------------------------------------------------------------

/// The IdP adds a key `r2`: a token with that kid is refused (401 unknown kid)
/// at first, makes the gateway fetch the JWKS early, and is accepted once it
/// has; asserts exactly one extra fetch.
fn assert_rotation_picked_up_early(idp: &JwksServer, gw: &Gateway) {
    let before = idp.fetches();
    assert!(before >= 1);
    idp.set(&jwks(&[jwk_r1(), jwk(&rsa2(), Algorithm::RS256, "r2")]));
    let t2 = mint(&rsa2(), Algorithm::RS256, Some("r2"), &claims(json!({})));
    let first = get_bearer(gw, "/api", &t2);
    assert_401(&first, INVALID_TOKEN);
    poll_until_ok(gw, Duration::from_secs(10), "rotated key", || {
        get_bearer(gw, "/api", &t2)
    });
    assert_eq!(
        idp.fetches(),
        before + 1,
        "expected exactly one early fetch\n{}",
        gw.logs()
    );
    // the old key still works
    assert_ok(&get_bearer(gw, "/api", &valid_token()));
}

/// Waits (≤ 10 s) until the IdP has seen a fetch, then gives the gateway 1 s to
/// install the keys, without sending it any token meanwhile.
fn settle_first_fetch(idp: &JwksServer, gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.fetches() == 0 {
        assert!(Instant::now() < deadline, "no jwks fetch\n{}", gw.logs());
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_secs(1));
}

#[test]
fn key_rotation_new_kid_triggers_one_early_refetch() {
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    idp.set_max_age(Some(300));
    let rest = format!("{}{}", auth_section(&jwks_url(idp.port), ""), api_mock(""));
    let gw = Gateway::start("", &rest);
    // no token before the keys are in: this test is about the rotation alone
    settle_first_fetch(&idp, &gw);
    assert_ok(&get_bearer(&gw, "/api", &valid_token()));
    assert_rotation_picked_up_early(&idp, &gw);
}

#[test]
fn key_rotation_after_requests_during_startup() {
    // A slow IdP: requests arrive before the first key set is in (and are
    // refused). That must not use up the early refetch a later rotation needs.
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    idp.set_max_age(Some(300));
    idp.set_delay_ms(1500);
    let rest = format!("{}{}", auth_section(&jwks_url(idp.port), ""), api_mock(""));
    let gw = Gateway::start("", &rest);
    assert_401(&get_bearer(&gw, "/api", &valid_token()), INVALID_TOKEN);
    idp.set_delay_ms(0);
    wait_keys(&gw, "/api", &valid_token());
    // let whatever fetch the startup requests asked for happen
    thread::sleep(Duration::from_secs(1));
    assert_rotation_picked_up_early(&idp, &gw);
}

#[test]
fn flood_of_unknown_kids_fetches_at_most_once() {
    let (idp, gw) = standard();
    let before = idp.fetches();
    let mut c = gw.connect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let key = rsa1();
    // 200 made-up kids over about 2 s
    for i in 0..200 {
        let kid = format!("made-up-{}-{}", nanos, i);
        let t = mint(&key, Algorithm::RS256, Some(&kid), &claims(json!({})));
        let r = bearer_on(&mut c, "/api", &t);
        assert_401(&r, INVALID_TOKEN);
        thread::sleep(Duration::from_millis(10));
    }
    // let any fetch the flood caused happen
    let deadline = Instant::now() + Duration::from_secs(3);
    while idp.fetches() == before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_secs(2));
    let extra = idp.fetches() - before;
    assert!(
        extra <= 1,
        "{} fetches for a flood of unknown kids (at most 1 expected)\n{}",
        extra,
        gw.logs()
    );
    assert_ok(&bearer_on(&mut c, "/api", &valid_token()));
}

#[test]
fn idp_down_at_start_then_up() {
    // a port where nothing listens yet
    let port = free_port();
    let rest = format!("{}{}", auth_section(&jwks_url(port), ""), api_mock(""));
    let mut gw = Gateway::start("", &rest);
    let t = valid_token();
    for _ in 0..4 {
        assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
        thread::sleep(Duration::from_millis(500));
    }
    assert!(gw.is_running(), "gateway exited\n{}", gw.logs());

    let idp = JwksServer::start_on(port, &jwks(&[jwk_r1()]));
    poll_until_ok(
        &gw,
        Duration::from_secs(15),
        "after the IdP came up",
        || get_bearer(&gw, "/api", &t),
    );
    assert!(idp.fetches() >= 1);
    assert!(gw.is_running());
}

#[test]
fn idp_answering_503_then_recovering() {
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    idp.set_down(true);
    let rest = format!("{}{}", auth_section(&jwks_url(idp.port), ""), api_mock(""));
    let mut gw = Gateway::start("", &rest);
    let t = valid_token();
    let deadline = Instant::now() + Duration::from_secs(10);
    while idp.fetches() < 2 {
        assert!(
            Instant::now() < deadline,
            "gateway did not retry the jwks fetch\n{}",
            gw.logs()
        );
        assert_401(&get_bearer(&gw, "/api", &t), INVALID_TOKEN);
        thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.is_running(), "gateway exited\n{}", gw.logs());
    idp.set_down(false);
    poll_until_ok(
        &gw,
        Duration::from_secs(15),
        "after the IdP recovered",
        || get_bearer(&gw, "/api", &t),
    );
}

#[test]
fn jwks_file_relative_to_the_config() {
    let gw = Gateway::start("", &mock_route("ready", "/ready", 200, "ready"));
    fs::write(gw.dir.path.join("jwks.json"), jwks(&[jwk_r1()])).unwrap();
    let rest = format!(
        "{}{}{}",
        auth_section("jwks_file = \"jwks.json\"", ""),
        api_mock(""),
        mock_route("ready", "/ready", 200, "ready")
    );
    gw.write_config(&gw.render("", "", &rest));
    gw.signal("HUP");
    let t = valid_token();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_bearer(&gw, "/api", &t);
        if r.status == 200 {
            assert_ok(&r);
            break;
        }
        assert_eq!(r.status, 404, "{:?}\n{}", r, gw.logs());
        assert!(
            Instant::now() < deadline,
            "reload not applied\n{}",
            gw.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let foreign = mint(&rsa2(), Algorithm::RS256, Some("r1"), &claims(json!({})));
    assert_401(&get_bearer(&gw, "/api", &foreign), INVALID_TOKEN);
    assert_401(&gw.get_with("test.local", "/api", &[]), INVALID_REQUEST);
}

#[test]
fn same_token_fifty_times() {
    let (_idp, gw) = standard();
    let t = valid_token();
    let mut c = gw.connect();
    for i in 0..50 {
        let r = bearer_on(&mut c, &format!("/api/{}", i), &t);
        assert_ok(&r);
    }
    // a tampered copy is not mistaken for the cached one
    let mut bad = t.clone();
    bad.pop();
    assert_401(&bearer_on(&mut c, "/api", &bad), INVALID_TOKEN);
    assert_ok(&bearer_on(&mut c, "/api", &t));
}

// ---------------------------------------------------------------------------
// reload
// ---------------------------------------------------------------------------

#[test]
fn sighup_new_audience_refuses_cached_token() {
    let idp = JwksServer::start(&jwks(&[jwk_r1()]));
    let rest = format!("{}{}", auth_section(&jwks_url(idp.port), ""), api_mock(""));
    let gw = Gateway::start("", &rest);
    let web = valid_token();
    let mobile = token(json!({"aud": "mobile"}));
    wait_keys(&gw, "/api", &web);
    let mut c = gw.connect();
    for _ in 0..3 {
        assert_ok(&bearer_on(&mut c, "/api", &web));
    }
    assert_401(&bearer_on(&mut c, "/api", &mobile), INVALID_TOKEN);

    let rest = format!(
        "{}{}{}",
        auth_section_aud("[\"mobile\"]", &jwks_url(idp.port), ""),
        api_mock(""),
        mock_route("m1", "/m1", 200, "m1")
    );
    gw.write_config(&gw.render("", "", &rest));
    gw.signal("HUP");
    wait_route(&gw, "/m1");
    assert_401(&bearer_on(&mut c, "/api", &web), INVALID_TOKEN);
    assert_401(&get_bearer(&gw, "/api", &web), INVALID_TOKEN);
    assert_ok(&bearer_on(&mut c, "/api", &mobile));
}

// ---------------------------------------------------------------------------
// config errors (`portcullis check`)
// ---------------------------------------------------------------------------

const CHECK_BASE: &str = "[server]
workers = 1
listen = [\"127.0.0.1:1\"]

[log]
access = \"off\"

[auth.users]
type = \"jwt\"
issuer = \"https://idp.test/\"
audiences = [\"web\"]
jwks_url = \"http://127.0.0.1:9/jwks.json\"
algorithms = [\"RS256\", \"ES256\"]
forward_claims = { sub = \"x-user-id\" }

[[route]]
name = \"api\"
path = \"/api\"
mock = { status = 200, body = \"ok\" }
auth = \"users\"
scopes = [\"orders:read\"]
";

#[test]
fn check_rejects_algorithm_none() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace(
        "algorithms = [\"RS256\", \"ES256\"]",
        "algorithms = [\"RS256\", \"none\"]",
    );
    let line = line_of(&text, "algorithms =");
    assert_check_error(&text, line..=line, "auth.users.algorithms", "none");
}

#[test]
fn check_rejects_unknown_authorizer_on_route() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace("auth = \"users\"", "auth = \"nope\"");
    let line = line_of(&text, "auth = \"nope\"");
    assert_check_error(&text, line..=line, "route[0].auth", "unknown authorizer");
}

#[test]
fn check_rejects_scopes_without_auth() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace("auth = \"users\"\n", "");
    let lines = table_lines(&text, "[[route]]");
    assert_check_error(
        &text,
        lines,
        "route[0].scopes",
        "scopes and claims need a jwt authorizer",
    );
}

#[test]
fn check_rejects_jwt_without_jwks_source() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace("jwks_url = \"http://127.0.0.1:9/jwks.json\"\n", "");
    let lines = table_lines(&text, "[auth.users]");
    assert_check_error(
        &text,
        lines,
        "auth.users.jwks_url",
        "needs jwks_url or jwks_file",
    );
}

#[test]
fn check_rejects_field_of_another_type() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace(
        "audiences = [\"web\"]\n",
        "audiences = [\"web\"]\nregion = \"x\"\n",
    );
    let lines = table_lines(&text, "[auth.users]");
    assert_check_error(
        &text,
        lines,
        "auth.users.region",
        "region does not apply to type \"jwt\"",
    );
}
