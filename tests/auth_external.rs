//! External authorizers (`[auth.NAME]` with `type = "external"`, Lambda-authorizer
//! style): identity sources, the JSON question, allow / 401 / 403 answers and the
//! headers they forward, failures (timeout, 5xx, connection refused) with
//! `failure_mode` deny and allow, the per-core decision cache, keep-alive to the
//! authorizer, reload, and config errors.
//!
//! The authorizer is the test HTTP/1.1 server `common::AuthServer`, which records
//! every question and answers according to a swappable closure.

mod common;

use common::*;
use serde_json::{json, Value};
use std::thread;
use std::time::Duration;

/// The `header:authorization` identity value of a question (or "").
fn authorization_of(q: &Value) -> &str {
    q["identity"]["header:authorization"].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------

const IDENTITY_AUTHORIZATION: &str = "identity = [\"header:authorization\"]";

/// `[auth.partner]` (external, `url`) with extra lines.
fn partner(url: &str, extra: &str) -> String {
    format!(
        "[auth.partner]\ntype = \"external\"\nurl = \"{}\"\n{}\n\n",
        url, extra
    )
}

/// Upstream `u` on `up_port` and route `/p` to it behind `auth = "partner"`.
fn protected_route(up_port: u16) -> String {
    format!(
        "{}[[route]]\nname = \"p\"\npath = \"/p\"\nupstream = \"u\"\nauth = \"partner\"\n\n",
        upstream_block("u", &[up_port], "")
    )
}

/// A gateway with `[auth.partner]` (`url`, `auth_extra`) guarding `/p`, proxied
/// to `up`.
fn start_gateway(url: &str, auth_extra: &str, up: &Upstream) -> Gateway {
    let rest = format!("{}{}", partner(url, auth_extra), protected_route(up.port));
    Gateway::start("", &rest)
}

/// Authorizer, upstream and gateway (`identity` = the Authorization header, plus
/// `auth_extra`).
fn setup(answer: Answer, auth_extra: &str) -> (AuthServer, Upstream, Gateway) {
    let authz = AuthServer::constant(answer);
    let up = Upstream::start();
    let extra = format!("{}\n{}", IDENTITY_AUTHORIZATION, auth_extra);
    let gw = start_gateway(&authz.url(), &extra, &up);
    (authz, up, gw)
}

// ---------------------------------------------------------------------------
// requests and assertions
// ---------------------------------------------------------------------------

/// GET `path` on `c` with `Authorization: <auth>`.
fn get_auth(c: &mut Client, path: &str, auth: &str) -> Response {
    c.get_with("test.local", path, &[("Authorization", auth)])
}

/// A proxied 200 (the upstream's echo).
fn assert_passed(r: &Response) {
    assert_eq!(r.status, 200, "{:?}\nbody: {}", r, r.body_str());
    assert!(
        r.body_str().starts_with("method=GET\n"),
        "not the upstream's echo: {:?}",
        r.body_str()
    );
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
}

/// 401 with some (non-empty) challenge.
fn assert_401_any_challenge(r: &Response) {
    assert_gateway_error(r, 401, UNAUTHORIZED);
    let ch = r.header_all("www-authenticate");
    assert_eq!(ch.len(), 1, "{:?}", r.headers);
    assert!(!ch[0].is_empty(), "{:?}", r.headers);
}

/// Names of the headers the upstream saw under `prefix`.
fn prefixed(seen: &SeenRequest, prefix: &str) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// identity sources
// ---------------------------------------------------------------------------

#[test]
fn missing_or_empty_authorization_is_401_without_asking() {
    let (authz, up, gw) = setup(Answer::allow(&[]), "");
    let mut c = gw.connect();

    let r = c.get_with("test.local", "/p/x", &[]);
    assert_401_any_challenge(&r);
    let r = c.get_with("test.local", "/p/x", &[("Authorization", "")]);
    assert_401_any_challenge(&r);
    // another header is no identity
    let r = c.get_with("test.local", "/p/x", &[("X-Authorization", "tok")]);
    assert_401_any_challenge(&r);
    assert_eq!(authz.calls(), 0, "{:?}", authz.asked());
    assert_eq!(authz.connections(), 0);
    assert!(up.seen().is_empty(), "{:?}", up.seen());

    // with the identity the authorizer is asked and the request passes
    assert_passed(&get_auth(&mut c, "/p/x", "tok-1"));
    assert_eq!(authz.calls(), 1);
    assert_eq!(up.seen().len(), 1);
}

#[test]
fn all_identity_sources_must_be_present() {
    let authz = AuthServer::constant(Answer::allow(&[]));
    let up = Upstream::start();
    let gw = start_gateway(
        &authz.url(),
        "identity = [\"header:x-partner-key\", \"query:token\", \"cookie:session\"]",
        &up,
    );
    let mut c = gw.connect();
    let key = ("X-Partner-Key", "k1");
    let cookie = ("Cookie", "a=1; session=s1; b=2");

    let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/p/x?token=t1", vec![cookie]), // header missing
        ("/p/x?token=t1", vec![("X-Partner-Key", ""), cookie]), // header empty
        ("/p/x", vec![key, cookie]),     // query missing
        ("/p/x?token=&y=1", vec![key, cookie]), // query empty
        ("/p/x?other=t1", vec![key, cookie]), // another parameter
        ("/p/x?token=t1", vec![key]),    // cookie header missing
        ("/p/x?token=t1", vec![key, ("Cookie", "a=1; sess=s1")]), // cookie missing
        ("/p/x?token=t1", vec![key, ("Cookie", "a=1; session=")]), // cookie empty
    ];
    for (path, headers) in &refused {
        let r = c.get_with("test.local", path, headers);
        assert_401_any_challenge(&r);
    }
    assert_eq!(authz.calls(), 0, "{:?}", authz.asked());
    assert!(up.seen().is_empty(), "{:?}", up.seen());

    assert_passed(&c.get_with("test.local", "/p/x?y=2&token=t1", &[key, cookie]));
    assert_eq!(authz.calls(), 1);
    assert_eq!(
        authz.last().body["identity"],
        json!({"header:x-partner-key": "k1", "query:token": "t1", "cookie:session": "s1"}),
        "{:?}",
        authz.last()
    );
}

// ---------------------------------------------------------------------------
// the question
// ---------------------------------------------------------------------------

#[test]
fn question_is_a_json_post_with_the_request_facts() {
    let (authz, up, gw) = setup(
        Answer::allow(&[]),
        "forward_headers = [\"X-Client\", \"x-absent\"]",
    );
    let mut c = gw.connect();
    let r = c.get_with(
        "test.local",
        "/p//items/%41b?q=1&z=2",
        &[
            ("Authorization", "Bearer abc.def"),
            ("X-CLIENT", "mobile 1.2"),
            ("X-Other", "not forwarded"),
        ],
    );
    assert_passed(&r);
    assert_eq!(authz.calls(), 1);
    let q = authz.last();
    assert_eq!(q.request_line, "POST /authorize HTTP/1.1", "{:?}", q);
    assert_eq!(
        q.header("content-type"),
        Some("application/json"),
        "{:?}",
        q
    );
    assert_eq!(
        q.header("content-length"),
        Some(q.raw_body.len().to_string().as_str()),
        "{:?}",
        q
    );
    let body = q.body.as_object().unwrap_or_else(|| {
        panic!(
            "question body is not a JSON object: {:?}",
            String::from_utf8_lossy(&q.raw_body)
        )
    });
    let mut keys: Vec<&str> = body.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "client_ip",
            "headers",
            "identity",
            "method",
            "path",
            "request_id",
            "type"
        ],
        "{:?}",
        q.body
    );
    assert_eq!(q.body["type"], json!("REQUEST"));
    assert_eq!(
        q.body["identity"],
        json!({"header:authorization": "Bearer abc.def"})
    );
    assert_eq!(q.body["method"], json!("GET"));
    assert_eq!(q.body["path"], json!("/p/items/Ab"), "{:?}", q.body);
    assert_eq!(q.body["client_ip"], json!("127.0.0.1"));
    assert_eq!(q.body["headers"], json!({"x-client": "mobile 1.2"}));
    let rid = q.body["request_id"].as_str().expect("request_id string");
    assert!(!rid.is_empty(), "{:?}", q.body);
    assert_eq!(
        up.last().header("x-request-id"),
        Some(rid),
        "the question's request_id is not the request's id: {:?}",
        up.last().headers
    );

    // without the forwarded header: an empty object
    assert_passed(&get_auth(&mut c, "/p", "Bearer other"));
    assert_eq!(authz.calls(), 2);
    let q = authz.last();
    assert_eq!(q.body["path"], json!("/p"));
    assert_eq!(q.body["headers"], json!({}), "{:?}", q.body);
}

// ---------------------------------------------------------------------------
// allow
// ---------------------------------------------------------------------------

#[test]
fn allow_forwards_prefixed_answer_headers_and_the_authorization() {
    let (authz, up, gw) = setup(
        Answer::allow(&[
            ("X-Auth-User", "alice"),
            ("x-auth-tenant", "t-42"),
            ("X-AUTH-Roles", "read, write"),
            ("X-Other", "not forwarded"),
            ("Cache-Control", "no-store"),
        ]),
        "",
    );
    let mut c = gw.connect();
    let r = c.get_with(
        "test.local",
        "/p/orders",
        &[
            ("Authorization", "Bearer partner-token"),
            ("X-Auth-User", "mallory"),
            ("x-auth-admin", "true"),
        ],
    );
    assert_passed(&r);
    assert_eq!(authz.calls(), 1);
    let seen = up.last();
    assert_eq!(seen.target, "/p/orders");
    let mut got = prefixed(&seen, "x-auth-");
    got.sort();
    assert_eq!(
        got,
        vec![
            ("x-auth-roles".to_string(), "read, write".to_string()),
            ("x-auth-tenant".to_string(), "t-42".to_string()),
            ("x-auth-user".to_string(), "alice".to_string()),
        ],
        "{:?}",
        seen.headers
    );
    assert!(!seen.has("x-other"), "{:?}", seen.headers);
    assert_eq!(
        seen.header_all("authorization"),
        vec!["Bearer partner-token"],
        "{:?}",
        seen.headers
    );
    // the authorizer's headers do not go to the client
    assert!(!r.has("x-auth-user"), "{:?}", r.headers);

    // a cached decision forwards the same headers, and still drops the client's
    let r = c.get_with(
        "test.local",
        "/p/orders",
        &[
            ("Authorization", "Bearer partner-token"),
            ("X-Auth-User", "mallory"),
        ],
    );
    assert_passed(&r);
    assert_eq!(authz.calls(), 1);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-auth-user"),
        vec!["alice"],
        "{:?}",
        seen.headers
    );
    assert_eq!(prefixed(&seen, "x-auth-").len(), 3, "{:?}", seen.headers);
}

#[test]
fn custom_response_headers_prefix() {
    let (authz, up, gw) = setup(
        Answer::allow(&[
            ("X-Partner-Id", "p-7"),
            ("X-Auth-User", "alice"),
            ("X-Partnerless", "no"),
        ]),
        "response_headers_prefix = \"x-partner-\"",
    );
    let mut c = gw.connect();
    let r = c.get_with(
        "test.local",
        "/p",
        &[
            ("Authorization", "tok"),
            ("X-Partner-Id", "forged"),
            ("X-Partner-Extra", "forged"),
        ],
    );
    assert_passed(&r);
    assert_eq!(authz.calls(), 1);
    let seen = up.last();
    assert_eq!(
        prefixed(&seen, "x-partner-"),
        vec![("x-partner-id".to_string(), "p-7".to_string())],
        "{:?}",
        seen.headers
    );
    assert!(!seen.has("x-auth-user"), "{:?}", seen.headers);
    assert!(!seen.has("x-partnerless"), "{:?}", seen.headers);
}

// ---------------------------------------------------------------------------
// deny
// ---------------------------------------------------------------------------

#[test]
fn authorizer_401_passes_its_challenge_on() {
    let (authz, up, gw) = setup(Answer::unauthorized(Some("Basic realm=\"partner\"")), "");
    let mut c = gw.connect();
    let r = get_auth(&mut c, "/p/x", "Basic dXNlcjpwdw==");
    assert_401(&r, "Basic realm=\"partner\"");
    assert_eq!(authz.calls(), 1);
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn authorizer_401_without_challenge_is_bearer() {
    let (authz, up, gw) = setup(Answer::unauthorized(None), "");
    let mut c = gw.connect();
    let r = get_auth(&mut c, "/p/x", "tok");
    assert_401(&r, "Bearer");
    assert_eq!(authz.calls(), 1);
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn authorizer_403_is_forbidden() {
    let (authz, up, gw) = setup(Answer::status(403), "");
    let mut c = gw.connect();
    let r = get_auth(&mut c, "/p/x", "tok");
    assert_403(&r);
    assert_eq!(authz.calls(), 1);
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

// ---------------------------------------------------------------------------
// failures
// ---------------------------------------------------------------------------

#[test]
fn timeout_denies_with_403_and_is_not_cached() {
    let (authz, up, gw) = setup(
        Answer::allow(&[("X-Auth-User", "late")]).after(2000),
        "timeout = \"200ms\"",
    );
    let mut c = gw.connect();
    assert_403(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 1);
    assert_403(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 2, "a timeout was cached");
    assert!(up.seen().is_empty(), "{:?}", up.seen());

    // the authorizer is fast again: the same identity is asked and passes
    authz.set_constant(Answer::allow(&[("X-Auth-User", "alice")]));
    assert_passed(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 3);
    assert_eq!(up.last().header_all("x-auth-user"), vec!["alice"]);
}

#[test]
fn server_error_denies_with_403_and_is_not_cached() {
    let (authz, up, gw) = setup(Answer::status(500), "");
    let mut c = gw.connect();
    assert_403(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 1);
    authz.set_constant(Answer::status(503));
    assert_403(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 2, "a 5xx was cached");
    assert!(up.seen().is_empty(), "{:?}", up.seen());

    authz.set_constant(Answer::allow(&[]));
    assert_passed(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 3);
}

#[test]
fn connection_refused_denies_with_403() {
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/authorize", dead_port());
    let gw = start_gateway(&url, IDENTITY_AUTHORIZATION, &up);
    let mut c = gw.connect();
    for _ in 0..3 {
        assert_403(&get_auth(&mut c, "/p/x", "tok"));
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
}

#[test]
fn failure_mode_allow_passes_on_timeout_and_5xx() {
    let (authz, up, gw) = setup(
        Answer::allow(&[("X-Auth-User", "late")]).after(2000),
        "timeout = \"200ms\"\nfailure_mode = \"allow\"",
    );
    let mut c = gw.connect();

    let r = c.get_with(
        "test.local",
        "/p/x",
        &[("Authorization", "tok"), ("X-Auth-User", "mallory")],
    );
    assert_passed(&r);
    assert_eq!(authz.calls(), 1);
    let seen = up.last();
    assert!(prefixed(&seen, "x-auth-").is_empty(), "{:?}", seen.headers);

    authz.set_constant(Answer::status(500));
    let r = c.get_with(
        "test.local",
        "/p/x",
        &[("Authorization", "tok"), ("X-Auth-User", "mallory")],
    );
    assert_passed(&r);
    assert_eq!(authz.calls(), 2, "a failure was cached");
    let seen = up.last();
    assert!(prefixed(&seen, "x-auth-").is_empty(), "{:?}", seen.headers);

    // a real decision still counts: 403 denies
    authz.set_constant(Answer::status(403));
    assert_403(&get_auth(&mut c, "/p/x", "tok"));
    assert_eq!(authz.calls(), 3);
    assert_eq!(up.seen().len(), 2);
}

#[test]
fn failure_mode_allow_passes_on_connection_refused() {
    let up = Upstream::start();
    let url = format!("http://127.0.0.1:{}/authorize", dead_port());
    let extra = format!("{}\nfailure_mode = \"allow\"", IDENTITY_AUTHORIZATION);
    let gw = start_gateway(&url, &extra, &up);
    let mut c = gw.connect();
    for i in 0..3 {
        let r = get_auth(&mut c, "/p/x", "tok");
        assert_passed(&r);
        assert_eq!(up.seen().len(), i + 1);
        let seen = up.last();
        assert!(prefixed(&seen, "x-auth-").is_empty(), "{:?}", seen.headers);
        assert_eq!(seen.header("authorization"), Some("tok"));
    }
    // the identity is still required
    assert_401_any_challenge(&c.get_with("test.local", "/p/x", &[]));
    assert_eq!(up.seen().len(), 3);
}

// ---------------------------------------------------------------------------
// the decision cache
// ---------------------------------------------------------------------------

#[test]
fn allow_decisions_are_cached_per_identity() {
    let authz = AuthServer::start(|q| {
        let user = match authorization_of(q) {
            "tok-a" => "alice",
            "tok-b" => "bob",
            _ => "someone",
        };
        Answer::allow(&[("X-Auth-User", user)])
    });
    let up = Upstream::start();
    let gw = start_gateway(&authz.url(), IDENTITY_AUTHORIZATION, &up);
    let mut c = gw.connect();
    for i in 0..20 {
        let r = get_auth(&mut c, &format!("/p/{}", i), "tok-a");
        assert_passed(&r);
        assert_eq!(up.last().header_all("x-auth-user"), vec!["alice"]);
    }
    assert_eq!(authz.calls(), 1, "{:?}", authz.asked());

    // another connection, same core: still cached
    assert_passed(&gw.get_with("test.local", "/p/y", &[("Authorization", "tok-a")]));
    assert_eq!(authz.calls(), 1);

    // a different identity is one more question, then cached too
    for _ in 0..5 {
        assert_passed(&get_auth(&mut c, "/p/z", "tok-b"));
        assert_eq!(up.last().header_all("x-auth-user"), vec!["bob"]);
    }
    assert_eq!(authz.calls(), 2);
    assert_eq!(authorization_of(&authz.last().body), "tok-b");

    // the first identity is still cached
    assert_passed(&get_auth(&mut c, "/p/w", "tok-a"));
    assert_eq!(up.last().header_all("x-auth-user"), vec!["alice"]);
    assert_eq!(authz.calls(), 2);
    assert_eq!(up.seen().len(), 27);
}

#[test]
fn deny_decisions_are_cached() {
    let authz = AuthServer::start(|q| match authorization_of(q) {
        "tok-forbidden" => Answer::status(403),
        "tok-unknown" => Answer::unauthorized(Some("Basic realm=\"p\"")),
        _ => Answer::allow(&[]),
    });
    let up = Upstream::start();
    let gw = start_gateway(&authz.url(), IDENTITY_AUTHORIZATION, &up);
    let mut c = gw.connect();

    assert_403(&get_auth(&mut c, "/p", "tok-forbidden"));
    assert_eq!(authz.calls(), 1);
    // the authorizer would allow now, but the deny is remembered
    authz.set_constant(Answer::allow(&[]));
    for _ in 0..5 {
        assert_403(&get_auth(&mut c, "/p", "tok-forbidden"));
    }
    assert_eq!(authz.calls(), 1, "a 403 decision was not cached");

    authz.set(|q| match authorization_of(q) {
        "tok-unknown" => Answer::unauthorized(Some("Basic realm=\"p\"")),
        _ => Answer::allow(&[]),
    });
    assert_401(&get_auth(&mut c, "/p", "tok-unknown"), "Basic realm=\"p\"");
    assert_eq!(authz.calls(), 2);
    authz.set_constant(Answer::allow(&[]));
    for _ in 0..5 {
        assert_401(&get_auth(&mut c, "/p", "tok-unknown"), "Basic realm=\"p\"");
    }
    assert_eq!(authz.calls(), 2, "a 401 decision was not cached");
    assert!(up.seen().is_empty(), "{:?}", up.seen());

    // a new identity is asked (and allowed)
    assert_passed(&get_auth(&mut c, "/p", "tok-new"));
    assert_eq!(authz.calls(), 3);
}

#[test]
fn zero_cache_ttl_asks_every_time() {
    let (authz, up, gw) = setup(
        Answer::allow(&[("X-Auth-User", "alice")]),
        "cache_ttl = \"0s\"",
    );
    let mut c = gw.connect();
    for i in 1..=10 {
        assert_passed(&get_auth(&mut c, "/p", "tok"));
        assert_eq!(authz.calls(), i);
    }
    // and a changed decision applies at once
    authz.set_constant(Answer::status(403));
    assert_403(&get_auth(&mut c, "/p", "tok"));
    assert_eq!(authz.calls(), 11);
    assert_eq!(up.seen().len(), 10);
}

#[test]
fn cached_decisions_expire_after_cache_ttl() {
    let (authz, _up, gw) = setup(Answer::allow(&[]), "cache_ttl = \"2s\"");
    let mut c = gw.connect();
    assert_passed(&get_auth(&mut c, "/p", "tok"));
    assert_passed(&get_auth(&mut c, "/p", "tok"));
    assert_eq!(authz.calls(), 1);
    authz.set_constant(Answer::status(403));
    thread::sleep(Duration::from_millis(2500));
    assert_403(&get_auth(&mut c, "/p", "tok"));
    assert_eq!(authz.calls(), 2, "the decision outlived cache_ttl");
}

// ---------------------------------------------------------------------------
// connections to the authorizer
// ---------------------------------------------------------------------------

#[test]
fn authorizer_connections_are_kept_alive() {
    let (authz, up, gw) = setup(Answer::allow(&[("X-Auth-User", "alice")]), "");
    let mut c = gw.connect();
    for i in 0..10 {
        let tok = format!("tok-{}", i);
        assert_passed(&get_auth(&mut c, "/p", &tok));
        assert_eq!(authz.calls(), i + 1);
    }
    assert_eq!(up.seen().len(), 10);
    assert_eq!(
        authz.connections(),
        1,
        "10 questions on {} connections",
        authz.connections()
    );
    // and over several client connections too
    for i in 10..15 {
        let tok = format!("tok-{}", i);
        assert_passed(&gw.get_with("test.local", "/p", &[("Authorization", &tok)]));
    }
    assert_eq!(authz.calls(), 15);
    assert_eq!(authz.connections(), 1);
}

// ---------------------------------------------------------------------------
// reload
// ---------------------------------------------------------------------------

#[test]
fn sighup_with_a_new_authorizer_drops_cached_decisions() {
    let old = AuthServer::constant(Answer::allow(&[("X-Auth-User", "alice")]));
    let new = AuthServer::constant(Answer::status(403));
    let up = Upstream::start();
    let gw = start_gateway(&old.url(), IDENTITY_AUTHORIZATION, &up);
    let mut c = gw.connect();
    for _ in 0..3 {
        assert_passed(&get_auth(&mut c, "/p", "tok"));
    }
    assert_eq!(old.calls(), 1);

    let rest = format!(
        "{}{}{}",
        partner(&new.url(), IDENTITY_AUTHORIZATION),
        protected_route(up.port),
        mock_route("m1", "/m1", 200, "m1")
    );
    gw.write_config(&gw.render("", "", &rest));
    gw.signal("HUP");
    wait_route(&gw, "/m1");

    assert_403(&get_auth(&mut c, "/p", "tok"));
    assert_403(&gw.get_with("test.local", "/p", &[("Authorization", "tok")]));
    assert_eq!(new.calls(), 1, "the new authorizer was not asked");
    assert_eq!(old.calls(), 1);
    assert_eq!(up.seen().len(), 3);
}

// ---------------------------------------------------------------------------
// config errors (`portcullis check`)
// ---------------------------------------------------------------------------

const CHECK_BASE: &str = "[server]
workers = 1
listen = [\"127.0.0.1:1\"]

[log]
access = \"off\"

[auth.partner]
type = \"external\"
url = \"http://127.0.0.1:9/authorize\"
identity = [\"header:authorization\"]
cache_ttl = \"300s\"
timeout = \"200ms\"
failure_mode = \"deny\"
forward_headers = [\"x-client\"]
response_headers_prefix = \"x-auth-\"

[[route]]
name = \"p\"
path = \"/p\"
mock = { status = 200, body = \"ok\" }
auth = \"partner\"
";

#[test]
fn check_rejects_https_url() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace(
        "url = \"http://127.0.0.1:9/authorize\"",
        "url = \"https://127.0.0.1:9/authorize\"",
    );
    let line = line_of(&text, "url = ");
    assert_check_error(
        &text,
        line..=line,
        "auth.partner.url",
        "https to authorizers is not supported",
    );
}

#[test]
fn check_rejects_missing_identity() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace("identity = [\"header:authorization\"]\n", "");
    let lines = table_lines(&text, "[auth.partner]");
    assert_check_error(
        &text,
        lines,
        "auth.partner.identity",
        "required for this type",
    );
}

#[test]
fn check_rejects_body_identity_source() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace(
        "identity = [\"header:authorization\"]",
        "identity = [\"body:x\"]",
    );
    let line = line_of(&text, "identity = ");
    assert_check_error(
        &text,
        line..=line,
        "auth.partner.identity",
        "invalid identity source \"body:x\"",
    );
}

#[test]
fn check_rejects_unknown_failure_mode() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace("failure_mode = \"deny\"", "failure_mode = \"maybe\"");
    let line = line_of(&text, "failure_mode = ");
    assert_check_error(
        &text,
        line..=line,
        "auth.partner.failure_mode",
        "expected \"deny\" or \"allow\", not \"maybe\"",
    );
}

#[test]
fn check_rejects_jwt_field_in_external_authorizer() {
    assert_check_ok(CHECK_BASE);
    let text = CHECK_BASE.replace(
        "cache_ttl = \"300s\"\n",
        "cache_ttl = \"300s\"\nissuer = \"https://idp.test/\"\n",
    );
    let lines = table_lines(&text, "[auth.partner]");
    assert_check_error(
        &text,
        lines,
        "auth.partner.issuer",
        "issuer does not apply to type \"external\"",
    );
}

#[test]
fn cache_hits_and_misses_are_counted_per_authorizer() {
    let authz = AuthServer::constant(Answer::allow(&[]));
    let up = Upstream::start();
    let admin = free_port();
    let rest = format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{}{}",
        partner(&authz.url(), IDENTITY_AUTHORIZATION),
        protected_route(up.port)
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    for i in 0..5 {
        assert_passed(&get_auth(&mut c, &format!("/p/{i}"), "tok-a"));
    }
    assert_eq!(authz.calls(), 1);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    use std::io::{Read as _, Write as _};
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: a\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    for line in [
        "portcullis_authorizer_cache_misses_total{authorizer=\"partner\"} 1",
        "portcullis_authorizer_cache_hits_total{authorizer=\"partner\"} 4",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}
