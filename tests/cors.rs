//! CORS (`[cors.NAME]`, route `cors`): preflights answered by the gateway before
//! authentication, CORS fields on actual responses — the upstream's and every
//! answer the gateway writes itself — upstream `Access-Control-*` fields
//! replaced, disallowed origins, wildcards, private network access, config
//! errors; and the same in a real browser (headless Chromium, `#[ignore]`d
//! without it; `.ci/run` installs it).

mod common;

use common::*;

const APP: &str = "https://app.example.com";
const TOO_MANY: &str = r#"{"message":"Too Many Requests"}"#;
const PREFLIGHT_VARY: &str =
    "origin, access-control-request-method, access-control-request-headers";

/// `[cors.web]`: credentials, two methods, two headers, one exposed, 10 minutes.
fn web_policy(extra: &str) -> String {
    format!(
        "[cors.web]\norigins = [\"{APP}\", \"https://*.example.org\"]\nmethods = [\"GET\", \"PUT\"]\nheaders = [\"Content-Type\", \"x-custom\"]\nexpose_headers = [\"x-request-id\", \"x-total\"]\ncredentials = true\nmax_age = \"10m\"\n{extra}\n\n"
    )
}

/// A JWT authorizer whose key set is a file (no token sent → 401 at once).
fn jwt_auth(dir: &TempDir) -> String {
    let jwks = dir.path.join("jwks.json");
    std::fs::write(
        &jwks,
        r#"{"keys":[{"kty":"oct","kid":"h1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ"}]}"#,
    )
    .unwrap();
    format!(
        "[auth.users]\ntype = \"jwt\"\nissuer = \"https://issuer.test\"\naudiences = [\"api\"]\njwks_file = \"{}\"\nalgorithms = [\"HS256\"]\n\n",
        jwks.display()
    )
}

/// The gateway with `[cors.web]` on: `/api` (proxy, GET and PUT only), `/mock`,
/// `/auth` (jwt), `/slow` (throttled to one request), `/down` (a dead
/// upstream), `/plain` (no cors).
fn start(up: &Upstream, dir: &TempDir) -> Gateway {
    let rest = format!(
        "{}{}{}{}{}\
         [[route]]\nname = \"api\"\npath = \"/api\"\nmethods = [\"GET\", \"PUT\"]\nupstream = \"u\"\ncors = \"web\"\n\n\
         [[route]]\nname = \"mock\"\npath = \"/mock\"\ncors = \"web\"\nmock = {{ status = 200, body = \"hi\", content_type = \"text/plain\" }}\n\n\
         [[route]]\nname = \"auth\"\npath = \"/auth\"\nauth = \"users\"\ncors = \"web\"\nupstream = \"u\"\n\n\
         [[route]]\nname = \"slow\"\npath = \"/slow\"\ncors = \"web\"\nthrottle = {{ rate = 1, burst = 1 }}\nmock = {{ status = 200, body = \"ok\" }}\n\n\
         [[route]]\nname = \"down\"\npath = \"/down\"\ncors = \"web\"\nupstream = \"dead\"\n\n\
         [[route]]\nname = \"small\"\npath = \"/small\"\ncors = \"web\"\nmax_body_bytes = 4\nupstream = \"u\"\n\n",
        web_policy(""),
        jwt_auth(dir),
        upstream_block("u", &[up.port], ""),
        upstream_block("dead", &[dead_port()], ""),
        proxy_route("plain", "/plain", "u"),
    );
    Gateway::start("", &rest)
}

fn send(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut h: Vec<(&str, &str)> = vec![("Host", "api.test")];
    h.extend_from_slice(headers);
    let mut c = gw.connect();
    let raw = req_with_headers(method, path, &h, body);
    c.request(&raw)
}

fn preflight(
    gw: &Gateway,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> Response {
    let mut h = vec![
        ("Origin", origin),
        ("Access-Control-Request-Method", method),
    ];
    if let Some(v) = headers {
        h.push(("Access-Control-Request-Headers", v));
    }
    send(gw, "OPTIONS", path, &h, b"")
}

/// The names of the response's `access-control-*` fields.
fn cors_fields(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-"))
        .map(|(k, _)| k.as_str())
        .collect()
}

/// The actual-response CORS fields of `[cors.web]` for `origin`, exactly once each.
fn assert_actual_cors(r: &Response, origin: &str) {
    assert_eq!(
        r.header_all("access-control-allow-origin"),
        vec![origin],
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header_all("access-control-allow-credentials"),
        vec!["true"],
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header_all("access-control-expose-headers"),
        vec!["x-request-id, x-total"],
        "{:?}",
        r.headers
    );
    assert!(r.header_all("vary").contains(&"origin"), "{:?}", r.headers);
    assert_eq!(cors_fields(r).len(), 3, "{:?}", r.headers);
}

#[test]
fn preflight_is_answered_with_the_policy() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    let r = preflight(
        &gw,
        "/api/items",
        APP,
        "PUT",
        Some("content-type, X-Custom"),
    );
    assert_eq!(r.status, 204, "{:?}", r);
    assert_eq!(r.body, b"");
    assert!(
        !r.has("content-type") && !r.has("content-length"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type, x-custom")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header_all("vary"), vec![PREFLIGHT_VARY]);
    assert!(
        !r.has("access-control-allow-private-network"),
        "{:?}",
        r.headers
    );
    assert!(r.has("x-request-id"));
    // The route does not list OPTIONS, and the upstream never saw the preflight.
    assert_eq!(up.accepted(), 0);
    // A wildcard origin is echoed too, never `*` with credentials.
    let r = preflight(&gw, "/api", "https://a.b.example.org", "GET", None);
    assert_eq!(r.status, 204, "{:?}", r);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.b.example.org")
    );
}

#[test]
fn preflight_is_answered_before_authentication() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    let r = preflight(&gw, "/auth", APP, "GET", Some("authorization"));
    // `authorization` is not in the policy's headers: refused, not challenged.
    assert_403(&r);
    assert!(cors_fields(&r).is_empty(), "{:?}", r.headers);
    let r = preflight(&gw, "/auth", APP, "GET", Some("x-custom"));
    assert_eq!(r.status, 204, "{:?}", r);
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
    assert_eq!(up.accepted(), 0);
}

#[test]
fn disallowed_preflights_get_403_without_cors_fields() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    for (origin, method, headers) in [
        ("https://evil.example.com", "GET", None),
        ("https://app.example.com:444", "GET", None),
        ("http://app.example.com", "GET", None),
        ("https://example.org", "GET", None),
        (APP, "POST", None),
        (APP, "get", None),
        (APP, "PUT", Some("x-custom, x-other")),
    ] {
        let r = preflight(&gw, "/mock", origin, method, headers);
        assert_403(&r);
        assert!(
            cors_fields(&r).is_empty(),
            "{origin} {method}: {:?}",
            r.headers
        );
        assert!(!r.has("vary"), "{:?}", r.headers);
    }
    // DELETE: no route at /api serves it, and /api has a policy → 403, not 405.
    let r = preflight(&gw, "/api", APP, "DELETE", None);
    assert_403(&r);
    assert!(cors_fields(&r).is_empty(), "{:?}", r.headers);
    assert_eq!(up.accepted(), 0);
}

#[test]
fn plain_options_goes_to_the_route() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    // /api does not allow OPTIONS: without preflight fields it is 405 as ever.
    let r = send(&gw, "OPTIONS", "/api", &[("Origin", APP)], b"");
    assert_gateway_error(&r, 405, METHOD_NOT_ALLOWED);
    let r = send(
        &gw,
        "OPTIONS",
        "/mock",
        &[("Access-Control-Request-Method", "PUT")],
        b"",
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "hi");
    assert!(cors_fields(&r).is_empty(), "{:?}", r.headers);
    // A route without a policy forwards preflights as any request.
    let r = preflight(&gw, "/plain", APP, "PUT", None);
    assert_eq!(r.status, 200, "{:?}", r);
    assert!(r.body_str().contains("method=OPTIONS"), "{}", r.body_str());
    assert_eq!(up.accepted(), 1);
}

#[test]
fn actual_requests_get_cors_fields_and_upstream_ones_are_replaced() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    let r = send(&gw, "GET", "/api/x", &[("Origin", APP)], b"");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_actual_cors(&r, APP);
    // The upstream's own Access-Control-* fields are dropped on a cors route …
    let echo = TestServer::answering("cors upstream", |_| {
        Reply::new(200, "OK", "up")
            .header("Access-Control-Allow-Origin", "*")
            .header("access-control-allow-methods", "DELETE")
            .header("Access-Control-Expose-Headers", "x-secret")
            .header("X-Total", "3")
    });
    let rest = format!(
        "{}{}[[route]]\nname = \"api\"\npath = \"/\"\nupstream = \"u\"\ncors = \"web\"\n\n[[route]]\nname = \"plain\"\npath = \"/plain\"\nupstream = \"u\"\n\n",
        web_policy(""),
        upstream_block("u", &[echo.port], "")
    );
    let gw2 = Gateway::start("", &rest);
    let r = send(&gw2, "GET", "/x", &[("Origin", APP)], b"");
    assert_eq!(r.body_str(), "up");
    assert_actual_cors(&r, APP);
    assert_eq!(r.header("x-total"), Some("3"));
    let r = send(&gw2, "GET", "/x", &[], b"");
    assert!(cors_fields(&r).is_empty(), "{:?}", r.headers);
    // … and kept on a route without one.
    let r = send(&gw2, "GET", "/plain", &[("Origin", APP)], b"");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(cors_fields(&r).len(), 3, "{:?}", r.headers);
}

#[test]
fn disallowed_origin_is_forwarded_without_cors_fields() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    let r = send(
        &gw,
        "GET",
        "/api",
        &[("Origin", "https://evil.example.com")],
        b"",
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert!(cors_fields(&r).is_empty(), "{:?}", r.headers);
    assert_eq!(r.header_all("vary"), vec!["origin"]);
    assert_eq!(up.last().header("origin"), Some("https://evil.example.com"));
    // No Origin at all: nothing added.
    let r = send(&gw, "GET", "/api", &[], b"");
    assert!(
        cors_fields(&r).is_empty() && !r.has("vary"),
        "{:?}",
        r.headers
    );
}

#[test]
fn gateway_answers_carry_cors_fields() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    let o = [("Origin", APP)];
    let r = send(&gw, "GET", "/mock", &o, b"");
    assert_eq!(r.body_str(), "hi");
    assert_actual_cors(&r, APP);
    let r = send(&gw, "GET", "/auth", &o, b"");
    assert_401(&r, r#"Bearer error="invalid_request""#);
    assert_actual_cors(&r, APP);
    let first = send(&gw, "GET", "/slow", &o, b"");
    assert_eq!(first.status, 200, "{:?}", first);
    let r = send(&gw, "GET", "/slow", &o, b"");
    assert_gateway_error(&r, 429, TOO_MANY);
    assert_actual_cors(&r, APP);
    let r = send(&gw, "GET", "/down", &o, b"");
    assert_gateway_error(&r, 502, BAD_GATEWAY);
    assert_actual_cors(&r, APP);
    let r = send(
        &gw,
        "POST",
        "/small",
        &[("Origin", APP), ("Content-Length", "10")],
        b"0123456789",
    );
    assert_gateway_error(&r, 413, TOO_LARGE);
    assert_actual_cors(&r, APP);
    let r = send(
        &gw,
        "POST",
        "/small",
        &[("Origin", APP), ("Transfer-Encoding", "chunked")],
        b"zz\r\n",
    );
    assert_gateway_error(&r, 400, BAD_REQUEST);
    assert_actual_cors(&r, APP);
}

#[test]
fn any_origin_without_credentials_answers_star() {
    let rest = "[cors.open]\norigins = [\"*\"]\nheaders = [\"*\"]\nprivate_network = true\n\n\
                [[route]]\nname = \"m\"\npath = \"/\"\ncors = \"open\"\nmock = { status = 200, body = \"x\" }\n";
    let gw = Gateway::start("", rest);
    let r = send(
        &gw,
        "GET",
        "/",
        &[("Origin", "http://anything.test:9")],
        b"",
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        !r.has("access-control-allow-credentials"),
        "{:?}",
        r.headers
    );
    let r = send(
        &gw,
        "OPTIONS",
        "/",
        &[
            ("Origin", "http://anything.test:9"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-whatever"),
            ("Access-Control-Request-Private-Network", "true"),
        ],
        b"",
    );
    assert_eq!(r.status, 204, "{:?}", r);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, POST")
    );
    assert_eq!(r.header("access-control-allow-headers"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-private-network"),
        Some("true")
    );
    assert!(!r.has("access-control-max-age"), "{:?}", r.headers);
}

#[test]
fn private_network_is_off_by_default() {
    let (up, dir) = (Upstream::start(), TempDir::new("cors"));
    let gw = start(&up, &dir);
    let r = send(
        &gw,
        "OPTIONS",
        "/mock",
        &[
            ("Origin", APP),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Private-Network", "true"),
        ],
        b"",
    );
    assert_eq!(r.status, 204, "{:?}", r);
    assert!(
        !r.has("access-control-allow-private-network"),
        "{:?}",
        r.headers
    );
}

#[test]
fn star_with_credentials_is_a_config_error() {
    let text = render_config(
        1,
        "",
        "",
        "[cors.web]\ncredentials = true\norigins = [\"https://a.example.com\",\n  \"*\"]\n\n[[route]]\nname = \"r\"\npath = \"/\"\nmock = {}\n",
    );
    let line = line_of(&text, "\"*\"]");
    assert_check_error(&text, line..=line, "cors.web.origins", "credentials");
}

#[test]
fn unknown_cors_name_is_a_config_error() {
    let text = render_config(
        1,
        "",
        "",
        "[cors.web]\norigins = [\"https://a.example.com\"]\n\n[[route]]\nname = \"r\"\npath = \"/\"\ncors = \"webb\"\nmock = {}\n",
    );
    let line = line_of(&text, "cors = \"webb\"");
    assert_check_error(
        &text,
        line..=line,
        "route[0].cors",
        "unknown cors policy \"webb\"",
    );
}

#[test]
fn invalid_policy_fields_are_config_errors() {
    for (field_line, field, also) in [
        (
            "origins = [\"https://a.example.com/\"]",
            "cors.web.origins",
            "no trailing slash",
        ),
        (
            "origins = [\"https://a.*.example.com\"]",
            "cors.web.origins",
            "wildcard",
        ),
        ("origins = []", "cors.web.origins", "at least one origin"),
        (
            "origins = [\"*\"]\nmethods = [\"put\"]",
            "cors.web.methods",
            "invalid method",
        ),
        (
            "origins = [\"*\"]\nheaders = [\"x y\"]",
            "cors.web.headers",
            "invalid header name",
        ),
        (
            "origins = [\"*\"]\nmax_age = \"10\"",
            "cors.web.max_age",
            "invalid duration",
        ),
        (
            "origins = [\"*\"]\nbogus = 1",
            "cors.web.bogus",
            "unknown field",
        ),
    ] {
        let text = render_config(
            1,
            "",
            "",
            &format!("[cors.web]\n{field_line}\n\n[[route]]\nname = \"r\"\npath = \"/\"\ncors = \"web\"\nmock = {{}}\n"),
        );
        let last = field_line.lines().last().unwrap();
        let line = line_of(&text, last);
        assert_check_error(&text, line..=line, field, also);
    }
}

// ---------------------------------------------------------------------------
// in a real browser
// ---------------------------------------------------------------------------

/// The page: calls the gateway at `gw` with fetch (credentials included), then
/// POSTs what it could read — or how the browser refused — to `/report`.
fn browser_page(gw: &str) -> String {
    format!(
        r#"<!doctype html><html><body><script>
const gw = "{gw}";
async function attempt(url, init) {{
  try {{
    const r = await fetch(gw + url, Object.assign({{ credentials: "include" }}, init || {{}}));
    const body = await r.text();
    return {{ status: r.status, body: body, exposed: r.headers.get("x-request-id") !== null }};
  }} catch (e) {{
    return {{ blocked: e.name }};
  }}
}}
(async () => {{
  document.cookie = "sid=abc; path=/";
  const results = {{}};
  results.get_with_cookie = await attempt("/api/get");
  results.put_preflighted = await attempt("/api/put", {{ method: "PUT", headers: {{ "X-Custom": "1" }}, body: "x" }});
  results.put_unlisted_header = await attempt("/api/put", {{ method: "PUT", headers: {{ "X-Unlisted": "1" }} }});
  results.delete_unlisted_method = await attempt("/api/del", {{ method: "DELETE" }});
  results.auth_401 = await attempt("/auth");
  results.first = await attempt("/slow");
  results.throttled_429 = await attempt("/slow");
  results.other_origin = await attempt("/other");
  results.no_cors = await attempt("/plain");
  await fetch("/report", {{ method: "POST", body: JSON.stringify(results) }});
}})();
</script></body></html>"#
    )
}

#[test]
#[ignore = "needs chromium"]
fn browser_sees_what_the_policy_allows() {
    use serde_json::{json, Value};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "needs chromium at {chromium} (apt-get install chromium, or set CHROMIUM)"
    );
    let up = Upstream::start();
    let dir = TempDir::new("cors-browser");
    let report: Arc<Mutex<Option<String>>> = Arc::default();
    let html: Arc<Mutex<String>> = Arc::default();
    let page = {
        let (report, html) = (report.clone(), html.clone());
        TestServer::answering("page server", move |req| {
            if req.method == "POST" && req.target == "/report" {
                *report.lock().unwrap() = Some(String::from_utf8_lossy(&req.body).into_owned());
                return Reply::new(204, "No Content", "");
            }
            let page = html.lock().unwrap().clone();
            Reply::new(200, "OK", page).header("Content-Type", "text/html")
        })
    };
    let page_origin = format!("http://127.0.0.1:{}", page.port);
    let rest = format!(
        "[cors.web]\norigins = [\"{page_origin}\"]\nmethods = [\"GET\", \"PUT\"]\nheaders = [\"x-custom\"]\nexpose_headers = [\"x-request-id\"]\ncredentials = true\nmax_age = \"1m\"\n\n\
         [cors.elsewhere]\norigins = [\"https://elsewhere.example.com\"]\n\n{}{}\
         [[route]]\nname = \"api\"\npath = \"/api\"\nmethods = [\"GET\", \"PUT\", \"DELETE\"]\nupstream = \"u\"\ncors = \"web\"\n\n\
         [[route]]\nname = \"auth\"\npath = \"/auth\"\nauth = \"users\"\ncors = \"web\"\nupstream = \"u\"\n\n\
         [[route]]\nname = \"slow\"\npath = \"/slow\"\ncors = \"web\"\nthrottle = {{ rate = 1, burst = 1 }}\nmock = {{ status = 200, body = \"ok\" }}\n\n\
         [[route]]\nname = \"other\"\npath = \"/other\"\ncors = \"elsewhere\"\nupstream = \"u\"\n\n{}",
        jwt_auth(&dir),
        upstream_block("u", &[up.port], ""),
        proxy_route("plain", "/plain", "u"),
    );
    let gw = Gateway::start("", &rest);
    *html.lock().unwrap() = browser_page(&format!("http://127.0.0.1:{}", gw.addr().port()));

    let profile = TempDir::new("chromium-profile");
    let mut browser = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.path.display()))
        .arg(format!("{page_origin}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
        if let Some(r) = report.lock().unwrap().take() {
            break Some(r);
        }
        if Instant::now() > deadline || browser.try_wait().ok().flatten().is_some() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = browser.kill();
    let _ = browser.wait();
    let got = got.expect("the page reported nothing within 60 s");
    let results: Value = serde_json::from_str(&got).unwrap();
    let ok = |name: &str, status: u64| {
        let r = &results[name];
        assert_eq!(r["status"], json!(status), "{name}: {r}\nall: {results}");
        assert_eq!(
            r["exposed"],
            json!(true),
            "{name}: x-request-id exposed: {r}"
        );
        r["body"].as_str().unwrap().to_string()
    };
    let blocked = |name: &str| {
        assert_eq!(
            results[name],
            json!({ "blocked": "TypeError" }),
            "{name}\nall: {results}"
        );
    };
    // Credentials went along (the page's cookie reached the upstream) and the
    // answer was readable.
    let body = ok("get_with_cookie", 200);
    assert!(
        body.contains("method=GET") && body.contains("h:cookie=sid=abc"),
        "{body}"
    );
    // A PUT with a custom header needed a preflight, which the gateway answered.
    let body = ok("put_preflighted", 200);
    assert!(
        body.contains("method=PUT") && body.contains("h:x-custom=1"),
        "{body}"
    );
    blocked("put_unlisted_header");
    blocked("delete_unlisted_method");
    // The gateway's own refusals are readable by the page.
    assert_eq!(ok("auth_401", 401), UNAUTHORIZED);
    assert_eq!(ok("first", 200), "ok");
    assert_eq!(ok("throttled_429", 429), TOO_MANY);
    // Not this page's policy, or none: the response reached the browser, which
    // withheld it.
    blocked("other_origin");
    blocked("no_cors");
    let seen: Vec<String> = up
        .seen()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert!(!seen.iter().any(|s| s.starts_with("OPTIONS")), "{seen:?}");
    assert!(!seen.iter().any(|s| s.starts_with("DELETE")), "{seen:?}");
    assert!(seen.contains(&"GET /other".to_string()), "{seen:?}");
    assert!(seen.contains(&"GET /plain".to_string()), "{seen:?}");
}

#[test]
fn reload_applies_a_changed_policy() {
    let config = |origin: &str| {
        format!(
            "[cors.web]\norigins = [\"{origin}\"]\n\n[[route]]\nname = \"m\"\npath = \"/\"\ncors = \"web\"\nmock = {{ status = 200, body = \"x\" }}\n"
        )
    };
    let mut gw = Gateway::start("", &config(APP));
    assert_eq!(preflight(&gw, "/", APP, "GET", None).status, 204);
    let other = "https://other.example.com";
    assert_403(&preflight(&gw, "/", other, "GET", None));
    gw.write_config(&gw.render("", "", &config(other)));
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while preflight(&gw, "/", other, "GET", None).status != 204 {
        assert!(
            std::time::Instant::now() < deadline,
            "reload not applied\n{}",
            gw.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_403(&preflight(&gw, "/", APP, "GET", None));
    let r = send(&gw, "GET", "/", &[("Origin", other)], b"");
    assert_eq!(r.header("access-control-allow-origin"), Some(other));
    assert!(gw.is_running());
}
