//! `portcullis audit`: a deliberately weak config gets one line per finding
//! (file:line, severity, the fix) and exit 1; a hardened one exits 0 with no
//! finding; `--strict` fails on a medium finding; a config that does not load
//! fails as `check` does.

mod common;

use common::*;
use std::fs;
use std::process::Command;
use std::time::Duration;

/// `portcullis audit --config gw.toml [args]` on `text`: (exit code, stdout, stderr, config path).
fn audit(text: &str, files: &[(&str, &str)], args: &[&str]) -> (i32, String, String, String) {
    let dir = TempDir::new("audit");
    for (name, content) in files {
        fs::write(dir.path.join(name), content).unwrap();
    }
    let path = dir.path.join("gw.toml");
    fs::write(&path, text).unwrap();
    let (st, out, err) = run_with_timeout(
        Command::new(BIN)
            .arg("audit")
            .arg("--config")
            .arg(&path)
            .args(args),
        Duration::from_secs(20),
    );
    (
        st.code().unwrap_or(-1),
        out,
        err,
        path.display().to_string(),
    )
}

const WEAK: &str = r#"[server]
listen = ["0.0.0.0:18080"]

[admin]
listen = "0.0.0.0:19901"
token = "env:PORTCULLIS_AUDIT_TEST_TOKEN"

[log]
access = "off"

[waf.default]
rules = "RULES"
mode = "count"

[[upstream]]
name = "app"
targets = ["127.0.0.1:9"]
tls = { verify = false }

[[route]]
name = "open"
path = "/"
upstream = "app"
waf = "default"

[[route]]
name = "keyed"
path = "/keyed"
api_key = true
mock = {}
"#;

fn rules() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/rules").to_string()
}

#[test]
fn a_weak_config_gets_every_finding_and_exit_1() {
    std::env::set_var(
        "PORTCULLIS_AUDIT_TEST_TOKEN",
        "a-long-enough-admin-token-0001",
    );
    let (code, out, err, path) = audit(&WEAK.replace("RULES", &rules()), &[], &[]);
    assert_eq!(code, 1, "{out}{err}");
    let expect = [
        (
            2,
            "high: plain HTTP listener 0.0.0.0:18080 off loopback, without https_only",
        ),
        (
            5,
            "medium: the admin API listens off loopback (0.0.0.0:19901)",
        ),
        (9, "medium: the access log is off"),
        (13, "medium: waf \"default\" is in count mode"),
        (
            16,
            "high: upstream \"app\" (upstream[0]): TLS without certificate verification",
        ),
        (
            21,
            "high: route \"open\" has no authentication and is not marked public",
        ),
        (
            27,
            "medium: route \"keyed\": an API key is its only credential",
        ),
        (27, "medium: route \"keyed\" has no WAF"),
        (1, "medium: no throttle at any level"),
    ];
    for (line, what) in expect {
        let prefix = format!("{path}:{line}: {what}");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(" — fix: ")),
            "missing {prefix:?} in:\n{out}"
        );
    }
    assert!(
        out.ends_with("audit: 9 finding(s): 3 high, 6 medium, 0 low\n"),
        "{out}"
    );
}

#[test]
fn a_hardened_config_has_no_finding() {
    let cfg = format!(
        r#"[server]
listen = ["127.0.0.1:18080"]

[throttle]
rate = 1000
burst = 2000

[auth.jwt]
type = "jwt"
issuer = "https://issuer.example"
audiences = ["api"]
jwks_file = "jwks.json"

[waf.default]
rules = "{}"

[[route]]
name = "health"
path_exact = "/health"
public = true
waf = "default"
mock = {{}}

[[route]]
name = "api"
path = "/api"
auth = "jwt"
waf = "default"
mock = {{}}
"#,
        rules()
    );
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
    let (code, out, err, _) = audit(&cfg, &[("jwks.json", jwks)], &["--strict"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out, "audit: 0 finding(s): 0 high, 0 medium, 0 low\n",
        "{err}"
    );
}

#[test]
fn strict_fails_on_a_medium_finding() {
    let cfg = "[server]\nlisten = [\"127.0.0.1:18080\"]\n\n[[route]]\nname = \"health\"\npath = \"/\"\npublic = true\nmock = {}\n";
    let (code, out, _, _) = audit(cfg, &[], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("medium: route \"health\" has no WAF"), "{out}");
    let (code, out, _, _) = audit(cfg, &[], &["--strict"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_config_that_does_not_load_fails_as_check_does() {
    let (code, out, err, path) = audit(
        "[[route]]\nname = \"r\"\npath = \"/\"\nbogus = 1\nmock = {}\n",
        &[],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!("{path}:4:")) && err.contains("bogus"),
        "{err}"
    );
}
