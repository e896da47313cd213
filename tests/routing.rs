//! Routing: mocks, 404/405, precedence, IP policy.

mod common;

use common::*;

fn mock(name: &str, matcher: &str, body: &str) -> String {
    format!(
        "[[route]]\nname = \"{}\"\n{}\nmock = {{ status = 200, body = \"{}\", content_type = \"text/plain\" }}\n\n",
        name, matcher, body
    )
}

fn get_host(gw: &Gateway, host: &str, path: &str) -> Response {
    let mut c = gw.connect();
    c.request(&get_req(path, host))
}

fn body_of(gw: &Gateway, host: &str, path: &str) -> (u16, String) {
    let r = get_host(gw, host, path);
    (r.status, r.body_str())
}

#[test]
fn mock_route_status_body_content_type_headers() {
    let rest = r#"
[[route]]
name = "m"
path = "/m"
mock = { status = 201, body = '{"ok":true}', content_type = "application/json", headers = { "x-a" = "b", "cache-control" = "no-store" } }
"#;
    let gw = Gateway::start("", rest);
    let mut c = gw.connect();
    let r = c.get("/m");
    assert_eq!(r.status, 201, "{:?}", r);
    assert_eq!(r.body_str(), r#"{"ok":true}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.header("x-a"), Some("b"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        is_uuid_v4(r.header("x-request-id").unwrap_or("")),
        "{:?}",
        r.headers
    );
    // keep-alive
    let r2 = c.get("/m/sub");
    assert_eq!(r2.status, 201);
}

#[test]
fn mock_route_head_has_no_body() {
    let gw = Gateway::start("", &mock("m", "path = \"/m\"", "twelve bytes"));
    let mut c = gw.connect();
    c.send(b"HEAD /m HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_head_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("12"));
    let r2 = c.get("/m");
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body_str(), "twelve bytes");
}

#[test]
fn no_route_404_keeps_connection() {
    let gw = Gateway::start("", &mock("m", "path = \"/m\"", "m"));
    let mut c = gw.connect();
    let r = c.request(b"GET /nothing HTTP/1.1\r\nHost: a\r\nX-Request-Id: my-id-1\r\n\r\n");
    assert_eq!(r.status, 404, "{:?}", r);
    assert_eq!(r.body_str(), NOT_FOUND);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length"),
        Some(NOT_FOUND.len().to_string().as_str())
    );
    assert_eq!(r.header("x-request-id"), Some("my-id-1"));
    let r2 = c.get("/m");
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body_str(), "m");
}

#[test]
fn method_not_allowed_405_with_allow() {
    let gw = Gateway::start(
        "",
        &mock("o", "path = \"/o\"\nmethods = [\"GET\", \"POST\"]", "o"),
    );
    let mut c = gw.connect();
    let r = c.request(b"DELETE /o HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 405, "{:?}", r);
    assert_eq!(r.body_str(), METHOD_NOT_ALLOWED);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert!(r.has("x-request-id"));
    // kept
    let r2 = c.get("/o");
    assert_eq!(r2.status, 200);
    let r3 = c.request(b"POST /o HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r3.status, 200);
}

#[test]
fn route_with_other_method_is_skipped() {
    let rest = format!(
        "{}{}",
        mock("get", "path = \"/o\"\nmethods = [\"GET\"]", "get-route"),
        mock("post", "path = \"/o\"\nmethods = [\"POST\"]", "post-route")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    assert_eq!(c.get("/o").body_str(), "get-route");
    let r = c.request(b"POST /o HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body_str(), "post-route");
}

#[test]
fn method_mismatch_on_longer_prefix_falls_back_to_shorter() {
    let rest = format!(
        "{}{}",
        mock("long", "path = \"/api/v1\"\nmethods = [\"POST\"]", "long"),
        mock("short", "path = \"/api\"", "short")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(body_of(&gw, "a", "/api/v1/x"), (200, "short".to_string()));
}

#[test]
fn host_mismatch_gives_404_not_405() {
    let gw = Gateway::start(
        "",
        &mock(
            "h",
            "host = \"api.example.com\"\npath = \"/o\"\nmethods = [\"GET\"]",
            "h",
        ),
    );
    let mut c = gw.connect();
    let r = c.request(b"DELETE /o HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
    assert_eq!(r.status, 404, "{:?}", r);
    assert_eq!(r.body_str(), NOT_FOUND);
}

#[test]
fn host_route_beats_route_without_host() {
    let rest = format!(
        "{}{}",
        mock("nohost", "path = \"/api/v1\"", "nohost"),
        mock("host", "host = \"api.example.com\"\npath = \"/\"", "host")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(
        body_of(&gw, "api.example.com", "/api/v1/x"),
        (200, "host".to_string())
    );
    assert_eq!(
        body_of(&gw, "other.example.com", "/api/v1/x"),
        (200, "nohost".to_string())
    );
    assert_eq!(body_of(&gw, "other.example.com", "/elsewhere").0, 404);
}

#[test]
fn host_port_is_ignored() {
    let gw = Gateway::start(
        "",
        &mock("host", "host = \"api.example.com\"\npath = \"/\"", "host"),
    );
    assert_eq!(
        body_of(&gw, "api.example.com:8080", "/x"),
        (200, "host".to_string())
    );
    assert_eq!(
        body_of(&gw, "api.example.com", "/x"),
        (200, "host".to_string())
    );
}

#[test]
fn wildcard_host() {
    let rest = format!(
        "{}{}",
        mock("wild", "host = \"*.example.com\"\npath = \"/\"", "wild"),
        mock("fallback", "path = \"/\"", "fallback")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(
        body_of(&gw, "a.example.com", "/x"),
        (200, "wild".to_string())
    );
    assert_eq!(
        body_of(&gw, "b.example.com:81", "/x"),
        (200, "wild".to_string())
    );
    assert_eq!(
        body_of(&gw, "example.org", "/x"),
        (200, "fallback".to_string())
    );
    assert_eq!(
        body_of(&gw, "a.example.com.evil.test", "/x"),
        (200, "fallback".to_string())
    );
}

#[test]
fn exact_path_beats_prefix() {
    let rest = format!(
        "{}{}",
        mock("prefix", "path = \"/health\"", "prefix"),
        mock("exact", "path_exact = \"/health\"", "exact")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(body_of(&gw, "a", "/health"), (200, "exact".to_string()));
    assert_eq!(
        body_of(&gw, "a", "/health?verbose=1"),
        (200, "exact".to_string())
    );
    assert_eq!(
        body_of(&gw, "a", "/health/deep"),
        (200, "prefix".to_string())
    );
}

#[test]
fn exact_path_does_not_match_subpaths() {
    let gw = Gateway::start("", &mock("exact", "path_exact = \"/health\"", "exact"));
    assert_eq!(body_of(&gw, "a", "/health"), (200, "exact".to_string()));
    assert_eq!(body_of(&gw, "a", "/health/x").0, 404);
    assert_eq!(body_of(&gw, "a", "/healthz").0, 404);
}

#[test]
fn longer_prefix_beats_shorter() {
    let rest = format!(
        "{}{}{}",
        mock("short", "path = \"/v1\"", "short"),
        mock("long", "path = \"/v1/orders\"", "long"),
        mock("root", "path = \"/\"", "root")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(body_of(&gw, "a", "/v1/orders/1"), (200, "long".to_string()));
    assert_eq!(body_of(&gw, "a", "/v1/orders"), (200, "long".to_string()));
    assert_eq!(body_of(&gw, "a", "/v1/other"), (200, "short".to_string()));
    assert_eq!(body_of(&gw, "a", "/v1"), (200, "short".to_string()));
    assert_eq!(body_of(&gw, "a", "/v2"), (200, "root".to_string()));
}

#[test]
fn prefix_matches_on_segment_boundary() {
    let gw = Gateway::start("", &mock("orders", "path = \"/v1/orders\"", "orders"));
    assert_eq!(body_of(&gw, "a", "/v1/orders"), (200, "orders".to_string()));
    assert_eq!(
        body_of(&gw, "a", "/v1/orders/"),
        (200, "orders".to_string())
    );
    assert_eq!(
        body_of(&gw, "a", "/v1/orders/1"),
        (200, "orders".to_string())
    );
    assert_eq!(
        body_of(&gw, "a", "/v1/orders?id=1"),
        (200, "orders".to_string())
    );
    let r = get_host(&gw, "a", "/v1/ordersX");
    assert_eq!(r.status, 404);
    assert_eq!(r.body_str(), NOT_FOUND);
    assert_eq!(body_of(&gw, "a", "/v1/order").0, 404);
    assert_eq!(body_of(&gw, "a", "/v1").0, 404);
}

#[test]
fn config_order_breaks_ties() {
    let rest = format!(
        "{}{}",
        mock("first", "path = \"/same\"", "first"),
        mock("second", "path = \"/same\"", "second")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(body_of(&gw, "a", "/same"), (200, "first".to_string()));
    assert_eq!(body_of(&gw, "a", "/same/x"), (200, "first".to_string()));
}

#[test]
fn allow_ips_excluding_client_gives_403() {
    let gw = Gateway::start(
        "",
        &mock("m", "path = \"/m\"\nallow_ips = [\"10.0.0.0/8\"]", "m"),
    );
    let mut c = gw.connect();
    let r = c.request(b"GET /m HTTP/1.1\r\nHost: a\r\nX-Request-Id: ip-test\r\n\r\n");
    assert_eq!(r.status, 403, "{:?}", r);
    assert_eq!(r.body_str(), FORBIDDEN);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-request-id"), Some("ip-test"));
    // kept
    let r2 = c.get("/m");
    assert_eq!(r2.status, 403);
}

#[test]
fn allow_ips_including_client_serves() {
    let gw = Gateway::start(
        "",
        &mock(
            "m",
            "path = \"/m\"\nallow_ips = [\"10.0.0.0/8\", \"127.0.0.1/32\"]",
            "m",
        ),
    );
    assert_eq!(body_of(&gw, "a", "/m"), (200, "m".to_string()));
}

#[test]
fn deny_ips_including_client_gives_403() {
    let gw = Gateway::start(
        "",
        &mock("m", "path = \"/m\"\ndeny_ips = [\"127.0.0.0/8\"]", "m"),
    );
    let r = get_host(&gw, "a", "/m");
    assert_eq!(r.status, 403, "{:?}", r);
    assert_eq!(r.body_str(), FORBIDDEN);
}

#[test]
fn deny_ips_excluding_client_serves() {
    let gw = Gateway::start(
        "",
        &mock("m", "path = \"/m\"\ndeny_ips = [\"10.0.0.0/8\"]", "m"),
    );
    assert_eq!(body_of(&gw, "a", "/m"), (200, "m".to_string()));
}

#[test]
fn deny_beats_allow() {
    let gw = Gateway::start(
        "",
        &mock(
            "m",
            "path = \"/m\"\nallow_ips = [\"127.0.0.0/8\"]\ndeny_ips = [\"127.0.0.1/32\"]",
            "m",
        ),
    );
    let r = get_host(&gw, "a", "/m");
    assert_eq!(r.status, 403, "{:?}", r);
    assert_eq!(r.body_str(), FORBIDDEN);
}

#[test]
fn ip_policy_is_per_route() {
    let rest = format!(
        "{}{}",
        mock(
            "closed",
            "path = \"/closed\"\nallow_ips = [\"10.0.0.0/8\"]",
            "closed"
        ),
        mock("open", "path = \"/open\"", "open")
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(body_of(&gw, "a", "/closed").0, 403);
    assert_eq!(body_of(&gw, "a", "/open"), (200, "open".to_string()));
}

#[test]
fn proxied_route_with_prefix_keeps_full_path() {
    let up = Upstream::start();
    let rest = format!(
        "{}{}",
        upstream_block("u", &[up.port], ""),
        proxy_route("api", "/api", "u")
    );
    let gw = Gateway::start("", &rest);
    let r = get_host(&gw, "a", "/api/x/y?z=1");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(up.last().target, "/api/x/y?z=1");
    assert_eq!(get_host(&gw, "a", "/apix").status, 404);
    assert_eq!(up.seen().len(), 1);
}

// ---- found in review (formerly tests/regressions.rs) ------------------------

#[test]
fn path_normalization_for_routing() {
    let rest = r#"
[[route]]
name = "admin"
path = "/admin"
mock = { status = 200, body = "admin", content_type = "text/plain" }
deny_ips = ["127.0.0.0/8"]

[[route]]
name = "public"
path = "/"
mock = { status = 200, body = "public", content_type = "text/plain" }
"#;
    let gw = Gateway::start("", rest);
    let mut c = gw.connect();
    for path in [
        "/%61dmin",
        "//admin",
        "/admin",
        "/admin;jsessionid=1",
        "/admin;x/secret",
    ] {
        let r = c.request(&get_req(path, "a"));
        assert_eq!(r.status, 403, "{}: {:?} {}", path, r, r.body_str());
        assert_gateway_error(&r, 403, FORBIDDEN);
    }
    let r = c.request(&get_req("/public", "a"));
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "public");

    for path in ["/a/..;x/admin", "/a/%2fadmin", "/a\\admin", "/a/%zz"] {
        expect_400(&gw, &get_req(path, "a"));
    }
}

#[test]
fn mock_204_has_no_length_and_no_body() {
    let rest = format!(
        "{}{}",
        "[[route]]\nname = \"nc\"\npath = \"/nc\"\nmock = { status = 204 }\n\n",
        mock_route("m", "/m", 200, "after")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = c.request(&get_req("/nc", "a"));
    assert_eq!(r.status, 204, "{:?}", r);
    assert!(!r.has("content-length"), "{:?}", r.headers);
    assert!(!r.has("transfer-encoding"), "{:?}", r.headers);
    assert!(r.body.is_empty());
    // no body bytes follow the head
    assert!(
        c.reader.buffer().is_empty(),
        "stray bytes after 204: {:?}",
        String::from_utf8_lossy(c.reader.buffer())
    );
    let r2 = c.request(&get_req("/m", "a"));
    assert_eq!(r2.status, 200, "{:?}", r2);
    assert_eq!(r2.body_str(), "after");

    let text = "[server]\nworkers = 1\nlisten = [\"127.0.0.1:1\"]\n\n[log]\naccess = \"off\"\n\n[[route]]\nname = \"nc\"\npath = \"/nc\"\nmock = { status = 204, body = \"not empty\" }\n";
    let (code, out, err) = check_config(text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {}", err);
    assert!(err.contains("mock.status"), "stderr: {}", err);
    let line = line_of(text, "status = 204");
    assert!(
        err.contains(&format!(":{}:", line)),
        "line {} in stderr: {}",
        line,
        err
    );
}
