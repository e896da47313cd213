//! Throttling, usage plans, API keys and quotas: token buckets per level (API key
//! plan, route, account, client IP), RateLimit fields, 403 for bad keys, quotas
//! persisted in the store, `portcullis keys`, config errors, reload, and the
//! accuracy of a shared bucket across two workers.

mod common;

use common::*;
use portcullis::limit::period::{format_rfc3339, unix_now};
use portcullis::limit::Period;
use sha2::{Digest, Sha256};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const TOO_MANY: &str = r#"{"message":"Too Many Requests"}"#;
const LIMIT_EXCEEDED: &str = r#"{"message":"Limit Exceeded"}"#;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// Lowercase hex SHA-256 of a key's text.
fn sha_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{:02x}", b))
        .collect()
}

/// `[[api_key]]` declaring `text` (by hash) for `plan`, plus extra lines.
fn declared_key(name: &str, plan: &str, text: &str, extra: &str) -> String {
    format!(
        "[[api_key]]\nname = \"{}\"\nplan = \"{}\"\nhash = \"sha256:{}\"\n{}\n\n",
        name,
        plan,
        sha_hex(text),
        extra
    )
}

/// A mock route (`path` prefix) answering 200 `body`, with extra lines
/// (`api_key = true`, `throttle = {...}`).
fn route(name: &str, path: &str, body: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{}\"\npath = \"{}\"\nmock = {{ status = 200, body = \"{}\", content_type = \"text/plain\" }}\n{}\n\n",
        name, path, body, extra
    )
}

/// GET `path` on `c` with the given extra headers.
fn get_h(c: &mut Client, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut h: Vec<(&str, &str)> = vec![("Host", "test.local")];
    h.extend_from_slice(headers);
    c.request(&req_with_headers("GET", path, &h, b""))
}

/// GET `path` with `x-api-key: key` on `c`.
fn get_key(c: &mut Client, path: &str, key: &str) -> Response {
    get_h(c, path, &[("x-api-key", key)])
}

fn retry_after(r: &Response) -> u64 {
    let v = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no retry-after: {:?}", r.headers));
    v.parse()
        .unwrap_or_else(|_| panic!("retry-after {:?} is not an integer", v))
}

/// A 429 "Too Many Requests" with a sane `retry-after`.
fn assert_throttled(r: &Response) {
    assert_gateway_error(r, 429, TOO_MANY);
    assert!(retry_after(r) >= 1, "{:?}", r.headers);
}

/// A 429 "Limit Exceeded" with `retry-after`; returns its value.
fn assert_quota_exceeded(r: &Response) -> u64 {
    assert_gateway_error(r, 429, LIMIT_EXCEEDED);
    let ra = retry_after(r);
    assert!(ra >= 1, "{:?}", r.headers);
    ra
}

/// `ratelimit: "<name>";r=<remaining>;t=<secs>` → (name, remaining, secs).
fn ratelimit(r: &Response) -> (String, u64, u64) {
    let v = r
        .header("ratelimit")
        .unwrap_or_else(|| panic!("no ratelimit field: {:?}", r.headers));
    assert_eq!(r.header_all("ratelimit").len(), 1, "{:?}", r.headers);
    let parts: Vec<&str> = v.split(';').collect();
    assert_eq!(parts.len(), 3, "ratelimit {:?}", v);
    let name = parts[0]
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_else(|| panic!("ratelimit name not quoted: {:?}", v));
    let num = |p: &str, k: &str| -> u64 {
        p.strip_prefix(k)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("ratelimit {:?}: bad {:?}", v, k))
    };
    (name.to_string(), num(parts[1], "r="), num(parts[2], "t="))
}

/// Asserts the `ratelimit-policy` field exactly and the `ratelimit` field's
/// name and remaining; returns its `t`.
fn assert_rl(r: &Response, name: &str, q: u64, w: u64, remaining: u64) -> u64 {
    assert_eq!(
        r.header_all("ratelimit-policy"),
        vec![format!("\"{}\";q={};w={}", name, q, w).as_str()],
        "{:?}",
        r.headers
    );
    let (n, rem, t) = ratelimit(r);
    assert_eq!(
        (n.as_str(), rem),
        (name, remaining),
        "ratelimit {:?}",
        r.header("ratelimit")
    );
    t
}

fn assert_no_rl(r: &Response) {
    assert!(!r.has("ratelimit"), "{:?}", r.headers);
    assert!(!r.has("ratelimit-policy"), "{:?}", r.headers);
}

/// If a UTC day boundary is less than `margin` seconds away, wait until it has
/// passed, so a test's quota period does not change under it.
fn avoid_day_boundary(margin: u64) {
    let now = unix_now();
    let left = Period::Day.bounds(now).1 - now;
    if left < margin {
        thread::sleep(Duration::from_secs(left + 1));
    }
}

/// `portcullis <args>` with a timeout: (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let (st, out, err) = run_with_timeout(Command::new(BIN).args(args), Duration::from_secs(20));
    (st.code().unwrap_or(-1), out, err)
}

fn keys(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let cfg = gw.config_path.to_str().unwrap().to_string();
    let mut a = vec!["keys", args[0], "--config", cfg.as_str()];
    a.extend_from_slice(&args[1..]);
    cli(&a)
}

/// Polls GET `path` with key `key` (fresh connection each time) for up to 3 s
/// until it answers `status`; returns the last response.
fn poll_key_status(gw: &Gateway, path: &str, key: &str, status: u16) -> Response {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut c = gw.connect();
        let r = get_key(&mut c, path, key);
        if r.status == status || Instant::now() > deadline {
            return r;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `n` requests with key `key` on one connection; returns the statuses.
fn statuses(c: &mut Client, path: &str, key: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| get_key(c, path, key).status).collect()
}

fn count(st: &[u16], status: u16) -> usize {
    st.iter().filter(|&&s| s == status).count()
}

// ---------------------------------------------------------------------------
// token buckets and RateLimit fields
// ---------------------------------------------------------------------------

#[test]
fn route_bucket_counts_down_in_ratelimit_then_429() {
    let rest = format!(
        "[throttle]\nheaders = true\n\n{}{}",
        route(
            "t",
            "/t",
            "limited",
            "throttle = { rate = 0.001, burst = 3 }"
        ),
        route("free", "/free", "free", "")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    for remaining in [2u64, 1, 0] {
        let r = c.get("/t");
        assert_eq!(r.status, 200, "{:?}", r);
        assert_eq!(r.body_str(), "limited");
        assert_rl(&r, "route", 3, 3000, remaining);
    }
    let r = c.get("/t");
    assert_throttled(&r);
    let t = assert_rl(&r, "route", 3, 3000, 0);
    assert!(t >= 1, "{:?}", r.headers);
    // the connection is kept and stays throttled, also on a new connection
    let r = c.get("/t/sub");
    assert_throttled(&r);
    let r = gw.get("/t");
    assert_throttled(&r);
    // a route without a throttle is not limited and has no policy to report
    for _ in 0..5 {
        let r = c.get("/free");
        assert_eq!(r.status, 200, "{:?}", r);
        assert_eq!(r.body_str(), "free");
        assert_no_rl(&r);
    }
}

#[test]
fn throttle_without_headers_sends_no_ratelimit_fields() {
    let rest = route("t", "/t", "limited", "throttle = { rate = 1, burst = 1 }");
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = c.get("/t");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "limited");
    assert_no_rl(&r);
    let r = c.get("/t");
    assert_throttled(&r);
    // one token a second: the next one is at most a second away
    assert_eq!(r.header("retry-after"), Some("1"), "{:?}", r.headers);
    assert_no_rl(&r);
}

#[test]
fn account_bucket_spans_routes() {
    let rest = format!(
        "[throttle]\nrate = 0.001\nburst = 3\nheaders = true\n\n{}{}",
        route("a", "/a", "a", ""),
        route("b", "/b", "b", "")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = c.get("/a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "account", 3, 3000, 2);
    let r = c.get("/b");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "b");
    assert_rl(&r, "account", 3, 3000, 1);
    let r = gw.get("/a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "account", 3, 3000, 0);
    for path in ["/a", "/b"] {
        let r = c.get(path);
        assert_throttled(&r);
        assert_rl(&r, "account", 3, 3000, 0);
    }
}

#[test]
fn per_ip_ignores_x_forwarded_for_from_untrusted_peer() {
    let rest = format!(
        "[throttle]\nper_ip = {{ rate = 0.001, burst = 2 }}\nheaders = true\n\n{}",
        route("a", "/a", "a", "")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = get_h(&mut c, "/a", &[("X-Forwarded-For", "203.0.113.1")]);
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "ip", 2, 2000, 1);
    let r = c.get("/a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "ip", 2, 2000, 0);
    // 127.0.0.1 is not a trusted proxy: a spoofed X-Forwarded-For is the same client
    for xff in ["203.0.113.2", "198.51.100.7", "203.0.113.3, 10.0.0.1"] {
        let r = get_h(&mut c, "/a", &[("X-Forwarded-For", xff)]);
        assert_throttled(&r);
        assert_rl(&r, "ip", 2, 2000, 0);
        let mut fresh = gw.connect();
        let r = get_h(&mut fresh, "/a", &[("X-Forwarded-For", xff)]);
        assert_throttled(&r);
    }
    let r = c.get("/a");
    assert_throttled(&r);
}

#[test]
fn per_ip_honours_x_forwarded_for_from_trusted_proxy() {
    let rest = format!(
        "[throttle]\nper_ip = {{ rate = 0.001, burst = 2 }}\nheaders = true\n\n{}",
        route("a", "/a", "a", "")
    );
    let gw = Gateway::start("trusted_proxies = [\"127.0.0.1/32\"]\n", &rest);
    let mut c = gw.connect();
    let one = [("X-Forwarded-For", "203.0.113.1")];
    for remaining in [1u64, 0] {
        let r = get_h(&mut c, "/a", &one);
        assert_eq!(r.status, 200, "{:?}", r);
        assert_rl(&r, "ip", 2, 2000, remaining);
    }
    let r = get_h(&mut c, "/a", &one);
    assert_throttled(&r);
    assert_rl(&r, "ip", 2, 2000, 0);
    // another client behind the same proxy has its own bucket
    let r = get_h(&mut c, "/a", &[("X-Forwarded-For", "203.0.113.2")]);
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "ip", 2, 2000, 1);
    // and so has the proxy itself
    let r = c.get("/a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "ip", 2, 2000, 1);
}

// ---------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------

#[test]
fn api_key_route_refuses_missing_unknown_expired_revoked() {
    let rest = format!(
        "[[plan]]\nname = \"basic\"\n\n{}{}{}{}{}",
        declared_key("good", "basic", "good-key-text", ""),
        declared_key(
            "old",
            "basic",
            "expired-key-text",
            "expires = \"2020-01-01T00:00:00Z\""
        ),
        declared_key("gone", "basic", "revoked-key-text", "revoked = true"),
        declared_key(
            "later",
            "basic",
            "future-key-text",
            "expires = \"2099-01-01T00:00:00Z\""
        ),
        route("k", "/k", "keyed", "api_key = true")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = c.get("/k");
    assert_gateway_error(&r, 403, FORBIDDEN);
    for bad in [
        "unknown-key-text",
        "expired-key-text",
        "revoked-key-text",
        "",
        "GOOD-KEY-TEXT",
    ] {
        let r = get_key(&mut c, "/k", bad);
        assert_gateway_error(&r, 403, FORBIDDEN);
    }
    // the key in another header is no key
    let r = get_h(&mut c, "/k", &[("x-api-token", "good-key-text")]);
    assert_gateway_error(&r, 403, FORBIDDEN);
    for good in ["good-key-text", "future-key-text"] {
        let r = get_key(&mut c, "/k", good);
        assert_eq!(r.status, 200, "{} {:?}", good, r);
        assert_eq!(r.body_str(), "keyed");
    }
}

#[test]
fn api_key_is_stripped_and_identity_forwarded() {
    let up = Upstream::start();
    let rest = format!(
        "[throttle]\nheaders = true\n\n[[plan]]\nname = \"gold\"\nthrottle = {{ rate = 5, burst = 10 }}\n\n{}{}[[route]]\nname = \"p\"\npath = \"/\"\nupstream = \"u\"\napi_key = true\n\n",
        declared_key("acme", "gold", "acme-secret", ""),
        upstream_block("u", &[up.port], "")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = get_h(
        &mut c,
        "/orders",
        &[
            ("x-api-key", "acme-secret"),
            ("x-api-key-name", "someone-else"),
            ("X-Usage-Plan", "platinum"),
        ],
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert!(r.body_str().starts_with("method=GET\n"), "{}", r.body_str());
    assert_rl(&r, "api_key", 10, 2, 9);
    let seen = up.last();
    assert_eq!(seen.target, "/orders");
    assert!(
        seen.header_all("x-api-key").is_empty(),
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.header_all("x-api-key-name"),
        vec!["acme"],
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.header_all("x-usage-plan"),
        vec!["gold"],
        "{:?}",
        seen.headers
    );
    assert!(
        !seen.headers.iter().any(|(_, v)| v.contains("acme-secret")),
        "{:?}",
        seen.headers
    );
    // a refused key never reaches the upstream
    let before = up.seen().len();
    let r = get_h(
        &mut c,
        "/orders",
        &[("x-api-key", "wrong"), ("x-api-key-name", "acme")],
    );
    assert_gateway_error(&r, 403, FORBIDDEN);
    assert_eq!(up.seen().len(), before);
}

#[test]
fn api_key_header_name_is_configurable() {
    let up = Upstream::start();
    let rest = format!(
        "[api_keys]\nheader = \"x-token\"\n\n[[plan]]\nname = \"basic\"\n\n{}{}[[route]]\nname = \"p\"\npath = \"/\"\nupstream = \"u\"\napi_key = true\n\n",
        declared_key("acme", "basic", "tok-123", ""),
        upstream_block("u", &[up.port], "")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = get_key(&mut c, "/x", "tok-123");
    assert_gateway_error(&r, 403, FORBIDDEN);
    let r = get_h(&mut c, "/x", &[("X-Token", "tok-123")]);
    assert_eq!(r.status, 200, "{:?}", r);
    let seen = up.last();
    assert!(seen.header_all("x-token").is_empty(), "{:?}", seen.headers);
    assert_eq!(seen.header_all("x-api-key-name"), vec!["acme"]);
    assert_eq!(seen.header_all("x-usage-plan"), vec!["basic"]);
}

// ---------------------------------------------------------------------------
// levels: order, precedence, refusals take nothing
// ---------------------------------------------------------------------------

#[test]
fn refused_requests_take_no_tokens_from_other_levels() {
    let rest = format!(
        "[throttle]\nheaders = true\n\n[[plan]]\nname = \"basic\"\nthrottle = {{ rate = 0.001, burst = 3 }}\n\n{}{}{}",
        declared_key("a", "basic", "key-a", ""),
        declared_key("b", "basic", "key-b", ""),
        route(
            "k",
            "/k",
            "keyed",
            "api_key = true\nthrottle = { rate = 0.001, burst = 5 }"
        )
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let st = statuses(&mut c, "/k", "key-a", 10);
    assert_eq!(
        st,
        vec![200, 200, 200, 429, 429, 429, 429, 429, 429, 429],
        "key a"
    );
    let r = get_key(&mut c, "/k", "key-a");
    assert_throttled(&r);
    assert_rl(&r, "api_key", 3, 3000, 0);
    // key b has its own plan bucket; the route has 5 - 3 = 2 tokens left
    let mut admitted = Vec::new();
    for _ in 0..10 {
        let r = get_key(&mut c, "/k", "key-b");
        match r.status {
            200 => admitted.push(r),
            429 => {
                assert_throttled(&r);
                assert_rl(&r, "route", 5, 5000, 0);
            }
            s => panic!("unexpected status {}: {:?}", s, r),
        }
    }
    assert_eq!(
        admitted.len(),
        2,
        "key b: 7 refusals must not drain the route"
    );
    // key b's first: api_key r=2, route r=1 → route is the most restrictive
    assert_rl(&admitted[0], "route", 5, 5000, 1);
    assert_rl(&admitted[1], "route", 5, 5000, 0);
}

#[test]
fn first_refusing_level_is_reported() {
    // account 6, plan 2 per key, route /r 1; no ties between remaining counts
    let rest = format!(
        "[throttle]\nrate = 0.001\nburst = 6\nheaders = true\n\n[[plan]]\nname = \"basic\"\nthrottle = {{ rate = 0.001, burst = 2 }}\n\n{}{}{}{}{}",
        declared_key("a", "basic", "key-a", ""),
        declared_key("b", "basic", "key-b", ""),
        declared_key("c", "basic", "key-c", ""),
        route("k", "/k", "keyed", "api_key = true"),
        route("r", "/r", "r", "throttle = { rate = 0.001, burst = 1 }")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    // route level before account
    let r = c.get("/r");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "route", 1, 1000, 0);
    let r = c.get("/r");
    assert_throttled(&r);
    assert_rl(&r, "route", 1, 1000, 0);
    // account now 5. key a: plan bucket first
    let r = get_key(&mut c, "/k", "key-a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "api_key", 2, 2000, 1);
    let r = get_key(&mut c, "/k", "key-a");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "api_key", 2, 2000, 0);
    let r = get_key(&mut c, "/k", "key-a");
    assert_throttled(&r);
    assert_rl(&r, "api_key", 2, 2000, 0);
    // account 3. key b: api_key 1 vs account 2, then 0 vs 1
    let r = get_key(&mut c, "/k", "key-b");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "api_key", 2, 2000, 1);
    let r = get_key(&mut c, "/k", "key-b");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "api_key", 2, 2000, 0);
    // account 1. key c: api_key 1 vs account 0 → account is the most restrictive
    let r = get_key(&mut c, "/k", "key-c");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "account", 6, 6000, 0);
    let r = get_key(&mut c, "/k", "key-c");
    assert_throttled(&r);
    assert_rl(&r, "account", 6, 6000, 0);
}

// ---------------------------------------------------------------------------
// quotas
// ---------------------------------------------------------------------------

#[test]
fn daily_quota_limit_exceeded_until_utc_midnight() {
    avoid_day_boundary(10);
    let rest = format!(
        "[throttle]\nheaders = true\n\n[[plan]]\nname = \"q\"\nquota = {{ limit = 3, period = \"day\" }}\n\n{}{}{}",
        declared_key("a", "q", "key-a", ""),
        declared_key("b", "q", "key-b", ""),
        route("k", "/k", "keyed", "api_key = true")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    for remaining in [2u64, 1, 0] {
        let r = get_key(&mut c, "/k", "key-a");
        assert_eq!(r.status, 200, "{:?}", r);
        assert_rl(&r, "plan", 3, 86_400, remaining);
    }
    for _ in 0..3 {
        let r = get_key(&mut c, "/k", "key-a");
        let ra = assert_quota_exceeded(&r);
        let expect = Period::Day.bounds(unix_now()).1 - unix_now();
        assert!(ra <= 86_400, "retry-after {}", ra);
        assert!(
            ra.abs_diff(expect) <= 2,
            "retry-after {} but next UTC midnight is in {} s",
            ra,
            expect
        );
        let t = assert_rl(&r, "plan", 3, 86_400, 0);
        assert!(t.abs_diff(expect) <= 2, "t={} expected ~{}", t, expect);
    }
    // the quota is per key
    let r = get_key(&mut c, "/k", "key-b");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "plan", 3, 86_400, 2);
}

#[test]
fn weekly_and_monthly_quota_retry_after_next_period() {
    // keep clear of any day boundary (week and month periods start at one)
    avoid_day_boundary(10);
    let rest = format!(
        "[throttle]\nheaders = true\n\n[[plan]]\nname = \"w\"\nquota = {{ limit = 1, period = \"week\" }}\n\n[[plan]]\nname = \"m\"\nquota = {{ limit = 1, period = \"month\" }}\n\n{}{}{}",
        declared_key("wk", "w", "key-week", ""),
        declared_key("mo", "m", "key-month", ""),
        route("k", "/k", "keyed", "api_key = true")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();

    let r = get_key(&mut c, "/k", "key-week");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_rl(&r, "plan", 1, 604_800, 0);
    let r = get_key(&mut c, "/k", "key-week");
    let ra = assert_quota_exceeded(&r);
    let expect = Period::Week.bounds(unix_now()).1 - unix_now();
    assert!(
        ra.abs_diff(expect) <= 2,
        "week: retry-after {} but next Monday 00:00 UTC is in {} s",
        ra,
        expect
    );
    assert_rl(&r, "plan", 1, 604_800, 0);

    let r = get_key(&mut c, "/k", "key-month");
    assert_eq!(r.status, 200, "{:?}", r);
    let (name, rem, _) = ratelimit(&r);
    assert_eq!((name.as_str(), rem), ("plan", 0));
    let r = get_key(&mut c, "/k", "key-month");
    let ra = assert_quota_exceeded(&r);
    let expect = Period::Month.bounds(unix_now()).1 - unix_now();
    assert!(
        ra.abs_diff(expect) <= 2,
        "month: retry-after {} but the next month starts in {} s",
        ra,
        expect
    );
}

fn quota_config(flush: &str) -> String {
    format!(
        "[store]\nflush_interval = \"{}\"\n\n[[plan]]\nname = \"q\"\nquota = {{ limit = 5, period = \"day\" }}\n\n{}{}",
        flush,
        declared_key("a", "q", "key-a", ""),
        route("k", "/k", "keyed", "api_key = true")
    )
}

#[test]
fn quota_usage_survives_graceful_restart() {
    avoid_day_boundary(30);
    let mut gw = Gateway::start("", &quota_config("1s"));
    let mut c = gw.connect();
    assert_eq!(statuses(&mut c, "/k", "key-a", 3), vec![200, 200, 200]);
    drop(c);
    gw.signal("TERM");
    let st = gw.wait_exit(Duration::from_secs(15));
    assert!(
        st.is_some_and(|s| s.success()),
        "exit {:?}\n{}",
        st,
        gw.logs()
    );
    assert!(
        gw.dir.path.join("data/portcullis.redb").exists(),
        "store file not at data/portcullis.redb next to the config"
    );
    gw.restart();
    let mut c = gw.connect();
    let st = statuses(&mut c, "/k", "key-a", 2);
    assert_eq!(st, vec![200, 200], "{}", gw.logs());
    for _ in 0..3 {
        let r = get_key(&mut c, "/k", "key-a");
        assert_quota_exceeded(&r);
    }
}

#[test]
fn quota_usage_survives_kill_after_flush_interval() {
    avoid_day_boundary(30);
    let mut gw = Gateway::start("", &quota_config("200ms"));
    let mut c = gw.connect();
    assert_eq!(statuses(&mut c, "/k", "key-a", 3), vec![200, 200, 200]);
    drop(c);
    thread::sleep(Duration::from_secs(1));
    gw.signal("KILL");
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
    gw.restart();
    let mut c = gw.connect();
    let st = statuses(&mut c, "/k", "key-a", 5);
    assert_eq!(
        count(&st, 200),
        2,
        "after kill -9 with 3 used and flushed: {:?}\n{}",
        st,
        gw.logs()
    );
    assert_eq!(st, vec![200, 200, 429, 429, 429]);
    let r = get_key(&mut c, "/k", "key-a");
    assert_quota_exceeded(&r);
}

// ---------------------------------------------------------------------------
// portcullis keys
// ---------------------------------------------------------------------------

fn keys_config() -> String {
    format!(
        "[[plan]]\nname = \"basic\"\n\n[[plan]]\nname = \"pro\"\n\n{}",
        route("k", "/k", "keyed", "api_key = true")
    )
}

fn list_line(list: &str, name: &str) -> String {
    list.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no line for {:?} in keys list:\n{}", name, list))
        .to_string()
}

fn assert_key_text(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {:?}", out);
    let key = lines[0].trim();
    assert_eq!(key.len(), 67, "key {:?}", key);
    assert!(key.starts_with("pk_"), "key {:?}", key);
    assert!(
        key[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "key {:?}",
        key
    );
    key.to_string()
}

#[test]
fn keys_create_list_revoke_while_running() {
    let gw = Gateway::start("", &keys_config());
    let r = gw.get("/k");
    assert_gateway_error(&r, 403, FORBIDDEN);

    let (code, out, err) = keys(&gw, &["create", "--plan", "basic", "--name", "cli-one"]);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
    let one = assert_key_text(&out);
    let r = poll_key_status(&gw, "/k", &one, 200);
    assert_eq!(
        r.status, 200,
        "created key not accepted within 3 s: {:?}",
        r
    );
    assert_eq!(r.body_str(), "keyed");

    let (code, out, err) = keys(
        &gw,
        &[
            "create",
            "--plan",
            "pro",
            "--name",
            "cli-two",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
    let two = assert_key_text(&out);
    assert_ne!(one, two);
    let r = poll_key_status(&gw, "/k", &two, 200);
    assert_eq!(r.status, 200, "{:?}", r);

    let (code, list, err) = keys(&gw, &["list"]);
    assert_eq!(code, 0, "stderr: {}", err);
    assert!(!list.contains(&one) && !list.contains(&two), "{}", list);
    let l1 = list_line(&list, "cli-one");
    for want in ["basic", "active", &format!("sha256:{}", sha_hex(&one))] {
        assert!(
            l1.split_whitespace().any(|w| w == want),
            "{:?}: {}",
            want,
            l1
        );
    }
    let l2 = list_line(&list, "cli-two");
    for want in [
        "pro",
        "active",
        "2099-01-01T00:00:00Z",
        &format!("sha256:{}", sha_hex(&two)),
    ] {
        assert!(
            l2.split_whitespace().any(|w| w == want),
            "{:?}: {}",
            want,
            l2
        );
    }

    // revoke by name
    let (code, out, err) = keys(&gw, &["revoke", "cli-one"]);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
    let r = poll_key_status(&gw, "/k", &one, 403);
    assert_gateway_error(&r, 403, FORBIDDEN);
    let mut c = gw.connect();
    assert_eq!(get_key(&mut c, "/k", &two).status, 200);
    let (_, list, _) = keys(&gw, &["list"]);
    assert!(
        list_line(&list, "cli-one")
            .split_whitespace()
            .any(|w| w == "revoked"),
        "{}",
        list
    );

    // revoke by hash prefix
    let prefix = format!("sha256:{}", &sha_hex(&two)[..12]);
    let (code, out, err) = keys(&gw, &["revoke", &prefix]);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
    let r = poll_key_status(&gw, "/k", &two, 403);
    assert_gateway_error(&r, 403, FORBIDDEN);

    // nothing matches
    let (code, out, err) = keys(&gw, &["revoke", "no-such-key"]);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(!err.trim().is_empty());
}

#[test]
fn keys_create_unknown_plan_fails() {
    let gw = Gateway::start("", &keys_config());
    let (code, out, err) = keys(&gw, &["create", "--plan", "nope", "--name", "x"]);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(out.trim().is_empty(), "no key may be printed: {:?}", out);
    assert!(err.contains("nope"), "stderr: {:?}", err);
    assert!(err.contains("plan"), "stderr: {:?}", err);
    let (code, list, _) = keys(&gw, &["list"]);
    assert_eq!(code, 0);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some("x")),
        "{}",
        list
    );
}

#[test]
fn keys_expiry_applies_while_running() {
    let gw = Gateway::start("", &keys_config());
    let expires = unix_now() + 4;
    let (code, out, err) = keys(
        &gw,
        &[
            "create",
            "--plan",
            "basic",
            "--name",
            "brief",
            "--expires",
            &format_rfc3339(expires),
        ],
    );
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
    let key = assert_key_text(&out);
    let r = poll_key_status(&gw, "/k", &key, 200);
    assert_eq!(r.status, 200, "{:?}", r);
    // once it has expired, the key is refused within ~1 s
    while unix_now() < expires {
        thread::sleep(Duration::from_millis(100));
    }
    let r = poll_key_status(&gw, "/k", &key, 403);
    assert_gateway_error(&r, 403, FORBIDDEN);
    let (code, list, _) = keys(&gw, &["list"]);
    assert_eq!(code, 0);
    let l = list_line(&list, "brief");
    assert!(l.split_whitespace().any(|w| w == "expired"), "{}", l);
    assert!(
        l.split_whitespace().any(|w| w == format_rfc3339(expires)),
        "{}",
        l
    );
}

// ---------------------------------------------------------------------------
// config errors
// ---------------------------------------------------------------------------

const BASE: &str = "[server]\nworkers = 1\nlisten = [\"127.0.0.1:1\"]\n\n[log]\naccess = \"off\"\n\n[[route]]\nname = \"m\"\npath = \"/\"\nmock = { status = 200, body = \"ok\" }\napi_key = true\n\n[[plan]]\nname = \"basic\"\n\n";

/// `check` fails naming the line of `needle`, `field` and `also`.
fn assert_config_error(text: &str, needle: &str, field: &str, also: &str) {
    let line = line_of(text, needle);
    assert_check_error(text, line..=line, field, also);
}

#[test]
fn check_reports_throttle_config_errors_with_file_line_field() {
    let good = format!(
        "{}[throttle]\nrate = 10\n\n[store]\nflush_interval = \"1s\"\n\n{}",
        BASE,
        declared_key("acme", "basic", "k", "")
    );
    let (code, out, err) = check_config(&good);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);

    let unknown_plan = good.replace("plan = \"basic\"", "plan = \"nope\"");
    assert_config_error(
        &unknown_plan,
        "plan = \"nope\"",
        "api_key[0].plan",
        "unknown plan",
    );

    let zero_rate = good.replace("rate = 10", "rate = 0");
    assert_config_error(
        &zero_rate,
        "rate = 0",
        "throttle.rate",
        "must be a positive number",
    );

    let redis = good.replace(
        "flush_interval = \"1s\"",
        "flush_interval = \"1s\"\nredis = \"redis://127.0.0.1:6379\"",
    );
    assert_config_error(&redis, "redis =", "store.redis", "not supported yet");
}

// ---------------------------------------------------------------------------
// reload
// ---------------------------------------------------------------------------

#[test]
fn sighup_keeps_bucket_levels_and_applies_new_rate() {
    let t_slow = route(
        "t",
        "/t",
        "limited",
        "throttle = { rate = 0.001, burst = 5 }",
    );
    let gw = Gateway::start("", &t_slow);
    let mut c = gw.connect();
    assert_eq!(
        (0..3).map(|_| c.get("/t").status).collect::<Vec<_>>(),
        vec![200, 200, 200]
    );

    // same throttle, an unrelated new route
    let rest = format!("{}{}", t_slow, route("m1", "/m1", "m1", ""));
    gw.write_config(&gw.render("", "", &rest));
    gw.signal("HUP");
    wait_route(&gw, "/m1");
    let st: Vec<u16> = (0..5).map(|_| c.get("/t").status).collect();
    assert_eq!(st, vec![200, 200, 429, 429, 429], "bucket level not kept");

    // a faster rate and a bigger burst take effect at once
    let t_fast = route(
        "t",
        "/t",
        "limited",
        "throttle = { rate = 1000, burst = 100 }",
    );
    let rest = format!(
        "{}{}{}",
        t_fast,
        route("m1", "/m1", "m1", ""),
        route("m2", "/m2", "m2", "")
    );
    gw.write_config(&gw.render("", "", &rest));
    gw.signal("HUP");
    wait_route(&gw, "/m2");
    // 200 ms at the new rate fill the new bucket (100) many times over: a burst
    // of 20 back to back must all be admitted, the first one included
    thread::sleep(Duration::from_millis(200));
    let st: Vec<u16> = (0..20).map(|_| c.get("/t").status).collect();
    assert_eq!(
        st,
        vec![200; 20],
        "new rate 1000/s burst 100 not in effect 200 ms after the reload"
    );
    let r = c.get("/t");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "limited");
}

// ---------------------------------------------------------------------------
// accuracy across workers
// ---------------------------------------------------------------------------

const RATE: f64 = 200.0;
const BURST: f64 = 200.0;
const RUN: Duration = Duration::from_secs(5);
const CAP: u64 = 2_000_000;

fn accuracy_gateway() -> Gateway {
    Gateway::start(
        "workers = 2\n",
        &route("t", "/t", "ok", "throttle = { rate = 200, burst = 200 }"),
    )
}

/// Sends requests back to back on one connection until `until` or `stop`;
/// adds to `ok` / `refused`, records anything else in `bad`.
fn hammer(
    port: u16,
    until: Instant,
    ok: &AtomicU64,
    refused: &AtomicU64,
    bad: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let mut c = Client::connect(port);
    let req = get_req("/t", "test.local");
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        if ok.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) >= CAP {
            break;
        }
        c.send(&req);
        let r = match c.try_read_response(false) {
            Ok(r) => r,
            Err(e) => {
                bad.lock().unwrap().push(format!("read: {}", e));
                stop.store(true, Ordering::Relaxed);
                return;
            }
        };
        match r.status {
            200 => {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            429 => {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            s => {
                bad.lock()
                    .unwrap()
                    .push(format!("status {} {}", s, r.body_str()));
                stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    }
}

fn run_accuracy(connections: usize) {
    let gw = accuracy_gateway();
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let until = start + RUN;
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let (ok, refused, bad, stop) = (ok.clone(), refused.clone(), bad.clone(), stop.clone());
            let port = gw.port;
            thread::spawn(move || hammer(port, until, &ok, &refused, &bad, &stop))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let bad = bad.lock().unwrap().clone();
    assert!(
        bad.is_empty(),
        "unexpected answers: {:?}\n{}",
        bad,
        gw.logs()
    );
    let ok = ok.load(Ordering::SeqCst) as f64;
    let refused = refused.load(Ordering::SeqCst);
    let upper = (RATE * elapsed + BURST) * 1.01;
    let lower = 0.98 * RATE * elapsed;
    eprintln!(
        "{} connections: admitted {} refused {} in {:.3} s (bounds {:.1}..={:.1})",
        connections, ok, refused, elapsed, lower, upper
    );
    assert!(
        refused > 0,
        "the client did not outrun the limit ({} admitted in {:.2} s)",
        ok,
        elapsed
    );
    assert!(
        ok <= upper,
        "{} connections: admitted {} in {:.3} s > {:.1} (rate {} burst {})",
        connections,
        ok,
        elapsed,
        upper,
        RATE,
        BURST
    );
    assert!(
        ok >= lower,
        "{} connections: admitted {} in {:.3} s < {:.1} (refused {})",
        connections,
        ok,
        elapsed,
        lower,
        refused
    );
}

#[test]
fn accuracy_two_workers_one_connection() {
    run_accuracy(1);
}

#[test]
fn accuracy_two_workers_32_connections() {
    run_accuracy(32);
}

/// One request to the admin API on `port` with the admin token: (status, JSON body).
fn admin_json(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    use std::io::{BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let r = read_response(&mut BufReader::new(s), method == "HEAD").expect("admin response");
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

const ADMIN_TOKEN: &str = "keys-admin-token-000000001";

fn start_with_admin() -> (Gateway, u16, TempDir) {
    let secrets = TempDir::new("keys-admin");
    let token = secrets.path.join("token");
    std::fs::write(&token, ADMIN_TOKEN).unwrap();
    let port = free_port();
    let rest = format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"file:{}\"\n\n{}",
        token.display(),
        keys_config()
    );
    (Gateway::start("", &rest), port, secrets)
}

#[test]
fn keys_over_the_admin_api_create_list_rotate_with_grace_and_revoke() {
    let (gw, port, _s) = start_with_admin();
    // Created: the key's text once, then accepted on the route.
    let (status, created) = admin_json(
        port,
        "POST",
        "/keys",
        Some(r#"{"plan":"basic","name":"acme"}"#),
    );
    assert_eq!(status, 201, "{created}");
    let old = created["key"].as_str().unwrap().to_string();
    assert!(old.starts_with("pk_") && old.len() == 67, "{created}");
    assert_eq!(
        (
            created["name"].as_str(),
            created["plan"].as_str(),
            created["state"].as_str()
        ),
        (Some("acme"), Some("basic"), Some("active"))
    );
    assert_eq!(created["hash"], format!("sha256:{}", sha_hex(&old)));
    assert_eq!(poll_key_status(&gw, "/k", &old, 200).status, 200);

    // Listed without the text.
    let (status, list) = admin_json(port, "GET", "/keys", None);
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], "acme");
    assert!(!list.to_string().contains(&old));

    // Rotated with a grace period: both keys work until it ends, then only the new one.
    let (status, rotated) =
        admin_json(port, "POST", "/keys/acme/rotate", Some(r#"{"grace":"3s"}"#));
    assert_eq!(status, 201, "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        (rotated["name"].as_str(), rotated["plan"].as_str()),
        (Some("acme"), Some("basic"))
    );
    assert!(rotated["old_expires"].is_string(), "{rotated}");
    assert_eq!(poll_key_status(&gw, "/k", &new, 200).status, 200);
    assert_eq!(
        get_key(&mut gw.connect(), "/k", &old).status,
        200,
        "the old key works during the grace"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_key(&mut gw.connect(), "/k", &old).status == 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    assert_gateway_error(&get_key(&mut gw.connect(), "/k", &old), 403, FORBIDDEN);
    assert_eq!(get_key(&mut gw.connect(), "/k", &new).status, 200);
    let (_, list) = admin_json(port, "GET", "/keys", None);
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "expired").count(),
        1,
        "{list}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "active").count(),
        1,
        "{list}"
    );

    // Revoked by name: both keys called acme (the expired one too).
    let (status, v) = admin_json(port, "DELETE", "/keys/acme", None);
    assert_eq!((status, v["revoked"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(poll_key_status(&gw, "/k", &new, 403).status, 403);
    let (status, v) = admin_json(port, "DELETE", "/keys/acme", None);
    assert_eq!(status, 404, "{v}");

    // What is refused, and why.
    let (status, v) = admin_json(port, "POST", "/keys", Some(r#"{"plan":"nope"}"#));
    assert_eq!(status, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("unknown plan \"nope\""),
        "{v}"
    );
    let (status, v) = admin_json(port, "POST", "/keys", Some("not json"));
    assert_eq!(status, 400, "{v}");
    let (status, _) = admin_json(port, "GET", "/keys/acme", None);
    assert_eq!(status, 405);
    let (status, v) = admin_json(
        port,
        "POST",
        "/keys/ghost/rotate",
        Some(r#"{"grace":"1h"}"#),
    );
    assert_eq!(status, 404, "{v}");
    let (status, v) = admin_json(
        port,
        "POST",
        "/keys/acme/rotate",
        Some(r#"{"grace":"soon"}"#),
    );
    assert!(status == 400 || status == 404, "{status} {v}");

    // A name with a space, percent-encoded in the path.
    let body = r#"{"plan":"basic","name":"acme corp"}"#;
    assert_eq!(admin_json(port, "POST", "/keys", Some(body)).0, 201);
    let (status, v) = admin_json(
        port,
        "POST",
        "/keys/acme%20corp/rotate",
        Some(r#"{"grace":"1h"}"#),
    );
    assert_eq!(
        (status, v["name"].as_str()),
        (201, Some("acme corp")),
        "{v}"
    );
    let (status, v) = admin_json(port, "DELETE", "/keys/acme%20corp", None);
    assert_eq!((status, v["revoked"].as_u64()), (200, Some(2)), "{v}");
}

#[test]
fn keys_rotate_on_the_command_line() {
    let gw = Gateway::start("", &keys_config());
    let (code, out, err) = keys(&gw, &["create", "--plan", "basic", "--name", "cli-rot"]);
    assert_eq!(code, 0, "{out}{err}");
    let old = assert_key_text(&out);
    let (code, out, err) = keys(&gw, &["rotate", "cli-rot", "--grace", "1h"]);
    assert_eq!(code, 0, "{out}{err}");
    let new = assert_key_text(&out);
    assert!(err.contains("the old key works until"), "{err}");
    assert_eq!(poll_key_status(&gw, "/k", &new, 200).status, 200);
    assert_eq!(
        get_key(&mut gw.connect(), "/k", &old).status,
        200,
        "within the grace"
    );
    let (code, _, err) = keys(&gw, &["rotate", "nobody", "--grace", "1h"]);
    assert_eq!(code, 1);
    assert!(err.contains("no active key named \"nobody\""), "{err}");
}
