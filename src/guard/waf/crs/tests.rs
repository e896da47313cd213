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
