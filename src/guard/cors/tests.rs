use super::*;

fn rule(v: &str) -> OriginRule {
    origin_rule(v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn policy(toml_text: &str) -> Result<Cors, String> {
    let source = Source::new("gw.toml", toml_text);
    let c: CorsConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
    compile("web", &c, &source).map_err(|e| e.to_string())
}

#[test]
fn exact_origins_match_whole_and_case_insensitively() {
    let r = rule("https://App.example.com");
    assert_eq!(r, OriginRule::Exact("https://app.example.com".into()));
    assert!(r.matches(b"https://app.example.com"));
    assert!(r.matches(b"HTTPS://APP.EXAMPLE.COM"));
    assert!(!r.matches(b"https://app.example.com:8443"));
    assert!(!r.matches(b"http://app.example.com"));
    assert!(!r.matches(b"https://app.example.com.evil.com"));
    assert!(rule("http://127.0.0.1:8080").matches(b"http://127.0.0.1:8080"));
    assert!(rule("http://[::1]:8080").matches(b"http://[::1]:8080"));
    assert!(rule("http://[::1]").matches(b"http://[::1]"));
    assert!(rule("null").matches(b"null"));
}

#[test]
fn wildcard_stands_for_one_or_more_labels() {
    let r = rule("https://*.example.com");
    assert!(r.matches(b"https://a.example.com"));
    assert!(r.matches(b"https://a.b-c.example.com"));
    assert!(!r.matches(b"https://example.com"));
    assert!(!r.matches(b"https://.example.com"));
    assert!(!r.matches(b"https://a..example.com"));
    assert!(!r.matches(b"http://a.example.com"));
    assert!(!r.matches(b"https://a.example.com:444"));
    assert!(!r.matches(b"https://evil.com/x.example.com"));
    assert!(!r.matches(b"https://a_b.example.com"));
    assert!(!r.matches(b"https://a.example.com.evil.com"));
    let p = rule("https://*.example.com:8443");
    assert!(p.matches(b"https://x.example.com:8443"));
    assert!(!p.matches(b"https://x.example.com"));
}

#[test]
fn malformed_origins_are_refused() {
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://a.*.example.com",
        "https://*example.com",
        "https://",
        "https://a.example.com:99999",
        "https://a.example.com:",
        "://a.example.com",
        "https://a b.com",
        "https://[::1",
    ] {
        assert!(origin_rule(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn lines_are_rendered_at_compile_time() {
    let c = policy(
        "origins = [\"https://app.example.com\"]\nmethods = [\"GET\", \"PUT\"]\nheaders = [\"X-Custom\", \"content-type\"]\nexpose_headers = [\"x-request-id\"]\ncredentials = true\nmax_age = \"10m\"\n",
    )
    .unwrap();
    assert_eq!(
        c.preflight_lines,
        "access-control-allow-methods: GET, PUT\r\naccess-control-allow-headers: x-custom, content-type\r\naccess-control-max-age: 600\r\naccess-control-allow-credentials: true\r\nvary: origin, access-control-request-method, access-control-request-headers\r\n"
    );
    assert_eq!(
        c.actual_lines,
        "access-control-expose-headers: x-request-id\r\naccess-control-allow-credentials: true\r\nvary: origin\r\n"
    );
    let d = policy("origins = [\"*\"]\n").unwrap();
    assert_eq!(
        d.preflight_lines,
        "access-control-allow-methods: GET, HEAD, POST\r\nvary: origin, access-control-request-method, access-control-request-headers\r\n"
    );
    assert_eq!(d.actual_lines, "vary: origin\r\n");
    assert_eq!(d.allowed_origin(b"https://any.where"), Some("*"));
}

#[test]
fn wildcards_with_credentials_name_line_and_field() {
    let e =
        policy("credentials = true\norigins = [\"https://a.example.com\", \"*\"]\n").unwrap_err();
    assert!(e.starts_with("gw.toml:2:"), "{e}");
    assert!(e.contains("cors.web.origins"), "{e}");
    let e =
        policy("credentials = true\norigins = [\"https://a.example.com\"]\nheaders = [\"*\"]\n")
            .unwrap_err();
    assert!(e.starts_with("gw.toml:3:"), "{e}");
    assert!(e.contains("cors.web.headers"), "{e}");
    let e = policy("origins = []\n").unwrap_err();
    assert!(
        e.contains("cors.web.origins") && e.contains("at least one"),
        "{e}"
    );
    let e = policy("origins = [\"*\"]\nmethods = [\"get\"]\n").unwrap_err();
    assert!(
        e.starts_with("gw.toml:2:") && e.contains("cors.web.methods"),
        "{e}"
    );
    let e = policy("origins = [\"*\"]\nexpose_headers = [\"a b\"]\n").unwrap_err();
    assert!(
        e.starts_with("gw.toml:2:") && e.contains("cors.web.expose_headers"),
        "{e}"
    );
}
