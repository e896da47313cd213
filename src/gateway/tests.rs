//! Unit tests of `gateway`.

use super::*;

fn compile(text: &str) -> Result<Gateway, String> {
    let source = Source::new("gw.toml", text);
    let config = crate::config::parse(&source).map_err(|e| e.to_string())?;
    Gateway::compile(&config, &source).map_err(|e| e.to_string())
}

#[test]
fn unknown_upstream_names_line_and_field() {
    let e = compile("[[upstream]]\nname = \"a\"\ntargets = [\"127.0.0.1:1\"]\n\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"b\"\n").unwrap_err();
    assert!(e.starts_with("gw.toml:8:"), "{e}");
    assert!(
        e.contains("route[0].upstream: unknown upstream \"b\""),
        "{e}"
    );
}

#[test]
fn route_needs_an_action() {
    let e = compile("[[route]]\nname = \"r\"\npath = \"/\"\n").unwrap_err();
    assert!(
        e.contains("gw.toml:2:") && e.contains("route[0].upstream"),
        "{e}"
    );
}

#[test]
fn bad_path() {
    let e = compile("[[route]]\nname = \"r\"\npath = \"v1\"\nmock = {}\n").unwrap_err();
    assert!(
        e.contains("gw.toml:3:") && e.contains("route[0].path"),
        "{e}"
    );
}

#[test]
fn overlapping_listeners_are_refused_naming_line_and_field() {
    let route = "[[route]]\nname = \"r\"\npath = \"/\"\nmock = {}\n";
    let e = compile(&format!(
        "[server]\nlisten = [\"0.0.0.0:8080\",\n  \"127.0.0.1:8080\"]\n{route}"
    ))
    .unwrap_err();
    assert!(e.starts_with("gw.toml:3:"), "{e}");
    assert!(
        e.contains("server.listen[1]: 127.0.0.1:8080 overlaps server.listen[0] (0.0.0.0:8080)"),
        "{e}"
    );
    let e = compile(&format!(
        "[server]\nlisten = [\"127.0.0.1:8443\"]\n\n[[server.tls]]\nlisten = \"[::]:8443\"\ncerts = [{{ cert = \"c.pem\", key = \"k.pem\" }}]\n\n{route}"
    ))
    .unwrap_err();
    assert!(e.starts_with("gw.toml:5:"), "{e}");
    assert!(
        e.contains("server.tls[0].listen: [::]:8443 overlaps server.listen[0] (127.0.0.1:8443)"),
        "{e}"
    );
    // Other ports, or other addresses of one family, are apart.
    compile(&format!(
        "[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.2:8080\", \"0.0.0.0:8081\"]\n{route}"
    ))
    .unwrap();
}

#[test]
fn listener_overlap() {
    let o = |a: &str, b: &str| overlap(a.parse().unwrap(), b.parse().unwrap());
    assert!(o("127.0.0.1:80", "127.0.0.1:80"));
    assert!(o("0.0.0.0:80", "10.0.0.1:80"));
    assert!(o("[::]:80", "10.0.0.1:80"));
    assert!(o("10.0.0.1:80", "[::]:80"));
    assert!(o("[::1]:80", "[::]:80"));
    assert!(!o("127.0.0.1:80", "127.0.0.1:81"));
    assert!(!o("127.0.0.1:80", "127.0.0.2:80"));
    assert!(!o("0.0.0.0:80", "[::1]:80"));
    assert!(!o("[::1]:80", "[::2]:80"));
    assert!(!o("127.0.0.1:0", "127.0.0.1:0"));
}

#[test]
fn compiles() {
    let g = compile("[[upstream]]\nname = \"a\"\ntargets = [\"localhost:9\"]\n[[route]]\nname = \"r\"\npath = \"/\"\nupstream = \"a\"\nallow_ips = [\"10.0.0.0/8\"]\n").unwrap();
    assert_eq!(g.routes.len(), 1);
    assert_eq!(g.upstreams[0].targets[0].port(), 9);
}
