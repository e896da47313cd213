//! The Debian CRS 3.3.4 loaded whole and run over requests built by hand.

use super::*;
use std::path::Path;

const RULES: &str = "/usr/share/modsecurity-crs/rules";
const SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

fn crs() -> Option<Crs> {
    if !Path::new(RULES).exists() {
        eprintln!("{RULES} missing: install modsecurity-crs");
        return None;
    }
    Some(load(Path::new(RULES), Some(Path::new(SETUP)), None).unwrap())
}

fn get(crs: &Crs, target: &str, headers: &[(&str, &str)]) -> Outcome {
    let head = format!("GET {target} HTTP/1.1\r\n");
    let h: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    let req = Request::new(head.as_bytes(), h, None, "192.0.2.1".into(), b"test-id");
    crs.evaluate(&req, &|_| false)
}

const BROWSER: &[(&str, &str)] = &[
    ("Host", "example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
    ),
    ("Accept", "text/html,application/xhtml+xml"),
];

#[test]
fn loads_debian_crs() {
    let Some(crs) = crs() else { return };
    let s = crs.summary();
    eprintln!("{s}");
    assert!(crs.counts[0] + crs.counts[1] > 300, "{s}");
}

#[test]
fn benign_get_passes() {
    let Some(crs) = crs() else { return };
    let o = get(&crs, "/search?q=hello+world&page=2", BROWSER);
    assert!(o.denied.is_none(), "{o:?}");
    assert_eq!(o.score, 0, "{o:?}");
}

#[test]
fn sqli_in_query_is_denied() {
    let Some(crs) = crs() else { return };
    let o = get(&crs, "/search?q=1%27%20OR%20%271%27%3D%271", BROWSER);
    assert!(o.denied.is_some(), "{o:?}");
    assert!(o.matches.iter().any(|m| m.id / 1000 == 942), "{o:?}");
}

/// The literal gate and the per-pattern prefilters only skip work: over
/// both corpora (attacks and benign traffic, every delivery), the CRS with
/// them reports exactly what it reports with the gate taken away.
#[test]
fn the_literal_gate_changes_no_outcome() {
    let Some(gated) = crs() else { return };
    let Some(mut ungated) = crs() else { return };
    for rule in &mut ungated.program.rules {
        for link in &mut rule.links {
            link.gate = None;
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/waf_corpus");
    let mut seen = 0;
    for file in ["attacks.toml", "benign.toml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        for case in doc["case"].as_array().unwrap() {
            let s = |k: &str| case.get(k).and_then(|v| v.as_str()).unwrap_or("");
            let head = format!("{} {} HTTP/1.1\r\n", s("method"), s("path"));
            let mut headers = vec![("host".to_string(), "example.com".to_string())];
            if let Some(t) = case.get("headers").and_then(|h| h.as_table()) {
                for (n, v) in t {
                    headers.push((n.clone(), v.as_str().unwrap_or("").to_string()));
                }
            }
            if !s("content_type").is_empty() {
                headers.push(("content-type".into(), s("content_type").into()));
            }
            let body = s("body");
            let h: Vec<(&[u8], &[u8])> = headers
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect();
            let body = (!body.is_empty()).then_some(body.as_bytes());
            let req = Request::new(head.as_bytes(), h, body, "192.0.2.1".into(), b"id");
            let a = gated.evaluate(&req, &|_| false);
            let b = ungated.evaluate(&req, &|_| false);
            let ids = |o: &Outcome| o.matches.iter().map(|m| m.id).collect::<Vec<_>>();
            assert_eq!(
                (ids(&a), a.score, a.denied),
                (ids(&b), b.score, b.denied),
                "{file}: {}",
                s("name")
            );
            seen += 1;
        }
    }
    assert!(seen > 500, "{seen} cases");
}
