//! SigV4 authorizers (`[auth.NAME]` with `type = "sigv4"`) against a real signer:
//! every signed request here is signed by botocore (AWS's Python SDK core, from
//! PyPI) through tests/support/sigv4_sign.py, then sent over a raw socket. Header
//! and presigned-query forms, signed bodies (buffered and hashed by the gateway),
//! dates out of range, wrong scope, unknown keys, tampering, unsigned payloads,
//! `100-continue`, the principal header, and config errors.
//!
//! Needs python3 with botocore: `.ci/run` installs it and runs these with
//! `cargo test --tests -- --ignored`.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

const KEY_ID: &str = "AKIDPORTCULLIS01";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A signed request: the URL's path and query, and the headers to send.
struct Signed {
    target: String,
    headers: Vec<(String, String)>,
}

/// Signs with botocore. `opts`: extra sigv4_sign.py flags.
fn sign(
    method: &str,
    port: u16,
    target: &str,
    region: &str,
    service: &str,
    key: (&str, &str),
    opts: &[&str],
) -> Signed {
    let url = format!("http://127.0.0.1:{port}{target}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/sigv4_sign.py");
    let out = Command::new("python3")
        .arg(script)
        .args([method, &url, region, service, key.0, key.1])
        .args(opts)
        .output()
        .expect("run python3 (botocore is needed: pip install botocore)");
    assert!(
        out.status.success(),
        "signer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("signer output");
    let url = v["url"].as_str().unwrap();
    let prefix = format!("http://127.0.0.1:{port}");
    Signed {
        target: url.strip_prefix(&prefix).unwrap().to_string(),
        headers: v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    }
}

fn sign_ok(method: &str, port: u16, target: &str, opts: &[&str]) -> Signed {
    sign(
        method,
        port,
        target,
        "us-east-1",
        "execute-api",
        (KEY_ID, SECRET),
        opts,
    )
}

/// The raw request for `s`, with `body` (and a Content-Length when there is one).
fn raw(method: &str, port: u16, s: &Signed, body: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n",
        s.target
    );
    for (k, v) in &s.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut v = head.into_bytes();
    v.extend_from_slice(body);
    v
}

struct Setup {
    gw: Gateway,
    up: Upstream,
    /// Holds the credentials file the config names.
    _creds: TempDir,
}

fn credentials_file() -> String {
    format!(
        "[[key]]\nid = \"{KEY_ID}\"\nsecret = \"{SECRET}\"\nprincipal = \"billing-service\"\n\n[[key]]\nid = \"AKIDOTHER\"\nsecret = \"other-secret\"\nprincipal = \"other\"\n"
    )
}

fn start(auth_extra: &str) -> Setup {
    let up = Upstream::start();
    let rest = format!(
        "[auth.services]\ntype = \"sigv4\"\nregion = \"us-east-1\"\nservice = \"execute-api\"\ncredentials = \"file:access-keys.toml\"\n{auth_extra}\n\n{}[[route]]\nname = \"signed\"\npath = \"/v1\"\nupstream = \"u\"\nauth = \"services\"\n",
        upstream_block("u", &[up.port], "")
    );
    // The credentials file sits beside the config; write it before the start.
    let dir = TempDir::new("sigv4-creds");
    let creds = dir.path.join("access-keys.toml");
    std::fs::write(&creds, credentials_file()).unwrap();
    let rest = rest.replace(
        "file:access-keys.toml",
        &format!("file:{}", creds.display()),
    );
    let gw = Gateway::start("", &rest);
    Setup {
        gw,
        up,
        _creds: dir,
    }
}

fn last_seen(up: &Upstream) -> SeenRequest {
    up.seen
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("the upstream saw a request")
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn header_form_get_is_accepted_and_the_principal_goes_upstream() {
    let s = start("");
    let port = s.gw.port;
    let signed = sign_ok("GET", port, "/v1/orders?b=2&a=1", &[]);
    let r =
        s.gw.connect()
            .request(&raw("GET", port, &signed, b"", &[("x-principal", "admin")]));
    assert_eq!(r.status, 200, "{:?}\n{}", r, s.gw.logs());
    let seen = last_seen(&s.up);
    assert_eq!(seen.target, "/v1/orders?b=2&a=1");
    assert_eq!(
        header_all(&seen.headers, "x-principal"),
        vec!["billing-service"]
    );
    assert!(
        header_all(&seen.headers, "authorization").is_empty(),
        "{:?}",
        seen.headers
    );
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn signed_body_is_hashed_and_forwarded_intact() {
    let s = start("");
    let port = s.gw.port;
    let body = br#"{"order":42,"items":["a","b"]}"#;
    let signed = sign_ok(
        "POST",
        port,
        "/v1/orders",
        &["--body", std::str::from_utf8(body).unwrap()],
    );
    let r =
        s.gw.connect()
            .request(&raw("POST", port, &signed, body, &[]));
    assert_eq!(r.status, 200, "{:?}\n{}", r, s.gw.logs());
    let seen = last_seen(&s.up);
    assert_eq!(seen.body, body.to_vec());
    assert_eq!(
        header_all(&seen.headers, "x-principal"),
        vec!["billing-service"]
    );
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn tampered_body_is_refused() {
    let s = start("");
    let port = s.gw.port;
    let signed = sign_ok("POST", port, "/v1/orders", &["--body", r#"{"amount":10}"#]);
    let r =
        s.gw.connect()
            .request(&raw("POST", port, &signed, br#"{"amount":99}"#, &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("AWS4-HMAC-SHA256"));
    assert!(
        s.up.seen.lock().unwrap().is_empty(),
        "the upstream must not see it"
    );
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn expect_continue_with_a_signed_body() {
    let s = start("");
    let port = s.gw.port;
    let body = b"{\"x\":1}";
    let signed = sign_ok("PUT", port, "/v1/things/1", &["--body", "{\"x\":1}"]);
    let mut req = raw(
        "PUT",
        port,
        &signed,
        b"",
        &[("Expect", "100-continue"), ("Content-Length", "7")],
    );
    let mut c = s.gw.connect();
    c.send(&req);
    let interim = c.read_response();
    assert_eq!(interim.status, 100, "{:?}", interim);
    req.clear();
    c.send(body);
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}\n{}", r, s.gw.logs());
    assert_eq!(last_seen(&s.up).body, body.to_vec());
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn presigned_url_is_accepted() {
    let s = start("");
    let port = s.gw.port;
    let signed = sign_ok(
        "GET",
        port,
        "/v1/reports/7?format=csv",
        &["--presign", "300"],
    );
    assert!(
        signed.target.contains("X-Amz-Signature="),
        "{}",
        signed.target
    );
    let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
    assert_eq!(r.status, 200, "{:?}\n{}", r, s.gw.logs());
    assert_eq!(
        header_all(&last_seen(&s.up).headers, "x-principal"),
        vec!["billing-service"]
    );
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn expired_presigned_url_is_refused() {
    let s = start("");
    let port = s.gw.port;
    // Signed 10 minutes ago, valid for 60 s.
    let signed = sign_ok(
        "GET",
        port,
        "/v1/reports/7",
        &["--presign", "60", "--skew", "-600"],
    );
    let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn dates_beyond_the_skew_are_refused_both_ways() {
    let s = start("");
    let port = s.gw.port;
    for skew in ["-600", "600"] {
        let signed = sign_ok("GET", port, "/v1/orders", &["--skew", skew]);
        let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
        assert_gateway_error(&r, 401, UNAUTHORIZED);
    }
    // Within the default 5 minutes: accepted.
    let signed = sign_ok("GET", port, "/v1/orders", &["--skew", "-120"]);
    let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn configured_skew_applies() {
    let s = start("max_skew = \"30s\"");
    let port = s.gw.port;
    let signed = sign_ok("GET", port, "/v1/orders", &["--skew", "-120"]);
    let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn wrong_region_or_service_is_refused() {
    let s = start("");
    let port = s.gw.port;
    for (region, service) in [("us-west-2", "execute-api"), ("us-east-1", "s3")] {
        let signed = sign(
            "GET",
            port,
            "/v1/orders",
            region,
            service,
            (KEY_ID, SECRET),
            &[],
        );
        let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
        assert_gateway_error(&r, 401, UNAUTHORIZED);
    }
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn unknown_key_and_wrong_secret_are_refused() {
    let s = start("");
    let port = s.gw.port;
    for key in [("AKIDNOBODY", SECRET), (KEY_ID, "not-the-secret")] {
        let signed = sign(
            "GET",
            port,
            "/v1/orders",
            "us-east-1",
            "execute-api",
            key,
            &[],
        );
        let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
        assert_gateway_error(&r, 401, UNAUTHORIZED);
    }
    // The second key of the file works, with its own principal.
    let signed = sign(
        "GET",
        port,
        "/v1/orders",
        "us-east-1",
        "execute-api",
        ("AKIDOTHER", "other-secret"),
        &[],
    );
    let r = s.gw.connect().request(&raw("GET", port, &signed, b"", &[]));
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(
        header_all(&last_seen(&s.up).headers, "x-principal"),
        vec!["other"]
    );
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn tampered_target_or_signed_header_is_refused() {
    let s = start("");
    let port = s.gw.port;
    let signed = sign_ok(
        "GET",
        port,
        "/v1/orders?limit=10",
        &["--header", "x-client:app-1"],
    );
    let mut moved = Signed {
        target: "/v1/orders?limit=1000".into(),
        headers: signed.headers.clone(),
    };
    let r = s.gw.connect().request(&raw("GET", port, &moved, b"", &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
    moved.target = signed.target.clone();
    for h in moved.headers.iter_mut() {
        if h.0.eq_ignore_ascii_case("x-client") {
            h.1 = "app-2".into();
        }
    }
    let r = s.gw.connect().request(&raw("GET", port, &moved, b"", &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
    // An unsigned header added on the way does not matter.
    let r =
        s.gw.connect()
            .request(&raw("GET", port, &signed, b"", &[("x-trace", "1")]));
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn missing_signature_is_401_with_a_challenge() {
    let s = start("");
    let r = s.gw.get("/v1/orders");
    assert_gateway_error(&r, 401, UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), Some("AWS4-HMAC-SHA256"));
    let mut c = s.gw.connect();
    let r = c.request(&req_with_headers(
        "GET",
        "/v1/orders",
        &[
            ("Host", "x"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=garbage"),
        ],
        b"",
    ));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn unsigned_payload_is_refused_unless_allowed() {
    let s = start("");
    let port = s.gw.port;
    let signed = sign_ok(
        "POST",
        port,
        "/v1/uploads",
        &["--unsigned", "--body", "abc"],
    );
    let r =
        s.gw.connect()
            .request(&raw("POST", port, &signed, b"abc", &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);

    let s = start("allow_unsigned_payload = true");
    let port = s.gw.port;
    let signed = sign_ok(
        "POST",
        port,
        "/v1/uploads",
        &["--unsigned", "--body", "abc"],
    );
    let r =
        s.gw.connect()
            .request(&raw("POST", port, &signed, b"abc", &[]));
    assert_eq!(r.status, 200, "{:?}\n{}", r, s.gw.logs());
    assert_eq!(last_seen(&s.up).body, b"abc".to_vec());
}

#[test]
#[ignore = "needs python3 with botocore (.ci/run installs it)"]
fn signed_body_larger_than_max_signed_body_is_refused() {
    let s = start("max_signed_body = 16");
    let port = s.gw.port;
    let body = "x".repeat(64);
    let signed = sign_ok("POST", port, "/v1/orders", &["--body", &body]);
    let r =
        s.gw.connect()
            .request(&raw("POST", port, &signed, body.as_bytes(), &[]));
    assert_gateway_error(&r, 401, UNAUTHORIZED);
}

// ---------------------------------------------------------------------------
// config errors (no signer needed)
// ---------------------------------------------------------------------------

/// `portcullis check` on `text` with `files` beside it: (exit code, stderr).
fn check(text: &str, files: &[(&str, &str)]) -> (i32, String) {
    let (code, _, err) = check_config_with(text, files);
    (code, err)
}

fn sigv4_config(credentials: &str) -> String {
    format!(
        "[auth.svc]\ntype = \"sigv4\"\nregion = \"us-east-1\"\nservice = \"execute-api\"\ncredentials = \"{credentials}\"\n\n[[route]]\nname = \"r\"\npath = \"/\"\nauth = \"svc\"\nmock = {{}}\n"
    )
}

#[test]
fn credentials_must_be_a_secret_reference() {
    let (code, err) = check(&sigv4_config("AKID:secret"), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("gw.toml:5:") && err.contains("auth.svc.credentials"),
        "{err}"
    );
    assert!(err.contains("file:PATH"), "{err}");
}

#[test]
fn unreadable_or_broken_credentials_are_config_errors() {
    let (code, err) = check(&sigv4_config("file:missing.toml"), &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("auth.svc.credentials") && err.contains("cannot read"),
        "{err}"
    );

    let broken = "[[key]]\nid = \"AKID\"\nprincipal = \"p\"\n";
    let (code, err) = check(&sigv4_config("file:keys.toml"), &[("keys.toml", broken)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("auth.svc.credentials") && err.contains("secret"),
        "{err}"
    );

    let (code, err) = check(
        &sigv4_config("file:keys.toml"),
        &[("keys.toml", &credentials_file())],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn credentials_from_the_environment() {
    let dir = TempDir::new("sigv4-env");
    let path = dir.path.join("gw.toml");
    std::fs::write(&path, sigv4_config("env:PORTCULLIS_TEST_SIGV4_KEYS")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env("PORTCULLIS_TEST_SIGV4_KEYS", credentials_file())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("PORTCULLIS_TEST_SIGV4_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORTCULLIS_TEST_SIGV4_KEYS is not set"));
}
