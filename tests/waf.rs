//! The WAF over real sockets: the shipped rule set (rules/) against the attack and
//! benign corpus (tests/waf_corpus/), per category, with detection and
//! false-positive rates printed (`cargo test --test waf -- --nocapture`) and
//! asserted; encoding evasions; count mode; IP sets; the rate-based rule;
//! exclusions; body inspection; the audit log; reload and rule-file errors.

mod common;

use common::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Case {
    category: String,
    name: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    evasion: String,
    #[serde(default)]
    known_fp: bool,
}

fn get() -> String {
    "GET".into()
}

fn corpus(file: &str) -> Vec<Case> {
    let path = format!("{}/tests/waf_corpus/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str::<Corpus>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .case
}

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
}

/// A gateway with `[waf.default]` (plus `waf_extra`) on a mock route `/`.
fn start_waf(waf_extra: &str, server_extra: &str, log_extra: &str) -> Gateway {
    let rest = format!(
        "[waf.default]\nrules = \"{}\"\n{waf_extra}\n\n[[route]]\nname = \"app\"\npath = \"/\"\nwaf = \"default\"\nmock = {{ status = 200, body = \"ok\", content_type = \"text/plain\" }}\n",
        rules_dir().display()
    );
    Gateway::start_with_log(server_extra, log_extra, &rest)
}

fn raw_case(c: &Case) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: api.example.com\r\n",
        c.method, c.path
    );
    if !c
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("user-agent"))
    {
        head.push_str("User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n");
    }
    for (k, v) in &c.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !c.content_type.is_empty() {
        head.push_str(&format!("Content-Type: {}\r\n", c.content_type));
    }
    if !c.body.is_empty() || c.method == "POST" || c.method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", c.body.len()));
    }
    head.push_str("\r\n");
    let mut v = head.into_bytes();
    v.extend_from_slice(c.body.as_bytes());
    v
}

/// Sends a case on a fresh connection; true when the gateway refused it (403 by
/// the WAF, or 400 by the protocol checks before it).
fn refused(gw: &Gateway, c: &Case) -> bool {
    refusal(gw, c) != 200
}

/// The status a case gets: 200, 403 (the WAF) or 400 (the protocol checks).
fn refusal(gw: &Gateway, c: &Case) -> u16 {
    let mut client = gw.connect();
    let r = client.request(&raw_case(c));
    match r.status {
        200 | 400 => r.status,
        403 => {
            assert_eq!(r.body_str(), FORBIDDEN, "{}: {:?}", c.name, r);
            403
        }
        other => panic!("{}: unexpected status {other}: {:?}", c.name, r),
    }
}

#[derive(Default)]
struct Tally {
    total: usize,
    refused: usize,
    /// Refused by the protocol checks (400) before the WAF saw them.
    by_protocol: usize,
    misses: Vec<String>,
}

fn run_corpus(gw: &Gateway, cases: &[Case]) -> BTreeMap<String, Tally> {
    let mut by: BTreeMap<String, Tally> = BTreeMap::new();
    for c in cases {
        let t = by.entry(c.category.clone()).or_default();
        t.total += 1;
        match refusal(gw, c) {
            200 => t.misses.push(c.name.clone()),
            400 => {
                t.refused += 1;
                t.by_protocol += 1;
            }
            _ => t.refused += 1,
        }
    }
    by
}

#[test]
fn attack_corpus_is_detected_per_category() {
    let gw = start_waf("", "", "");
    let attacks = corpus("attacks.toml");
    assert!(attacks.len() >= 200, "{} attack cases", attacks.len());
    let by = run_corpus(&gw, &attacks);
    println!("| category | attacks | blocked | of which 400 (protocol checks) | detection |");
    println!("|---|---:|---:|---:|---:|");
    let mut failing = Vec::new();
    for (cat, t) in &by {
        let rate = t.refused as f64 / t.total as f64;
        println!(
            "| {cat} | {} | {} | {} | {:.1}% |",
            t.total,
            t.refused,
            t.by_protocol,
            100.0 * rate
        );
        if rate < 0.95 {
            failing.push(format!(
                "{cat}: {:.1}% (missed: {:?})",
                100.0 * rate,
                t.misses
            ));
        }
    }
    assert!(
        failing.is_empty(),
        "detection below 95%:\n{}",
        failing.join("\n")
    );
}

#[test]
fn benign_corpus_passes() {
    let gw = start_waf("", "", "");
    let benign = corpus("benign.toml");
    assert!(benign.len() >= 200, "{} benign cases", benign.len());
    let by = run_corpus(&gw, &benign);
    let total: usize = by.values().map(|t| t.total).sum();
    let fps: usize = by.values().map(|t| t.refused).sum();
    println!("| category | benign | blocked (false positives) |");
    println!("|---|---:|---:|");
    let mut unexpected = Vec::new();
    for (cat, t) in &by {
        println!("| {cat} | {} | {} |", t.total, t.refused);
    }
    for c in &benign {
        if !c.known_fp && refused(&gw, c) {
            unexpected.push(c.name.clone());
        }
    }
    println!(
        "false positives: {fps} of {total} ({:.2}%)",
        100.0 * fps as f64 / total as f64
    );
    assert!(
        (fps as f64) <= 0.01 * total as f64,
        "false positives {fps} of {total}: {unexpected:?}"
    );
    assert!(
        unexpected.is_empty(),
        "benign requests blocked: {unexpected:?}"
    );
}

#[test]
fn encoding_evasions_are_caught_in_every_class() {
    let gw = start_waf("", "", "");
    let attacks = corpus("attacks.toml");
    let evasions: Vec<&Case> = attacks.iter().filter(|c| !c.evasion.is_empty()).collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut missed = Vec::new();
    for c in &evasions {
        *kinds.entry(c.evasion.as_str()).or_default() += 1;
        if !refused(&gw, c) {
            missed.push(format!("{} [{}] {}", c.category, c.evasion, c.name));
        }
    }
    println!("evasion cases by kind: {kinds:?}");
    for k in [
        "double_url",
        "mixed_case",
        "sql_comment",
        "fullwidth",
        "html_entity",
    ] {
        assert!(kinds.contains_key(k), "no {k} evasion in the corpus");
    }
    assert!(
        missed.is_empty(),
        "evasions that got through:\n{}",
        missed.join("\n")
    );
}

#[test]
fn count_mode_passes_every_attack_and_logs_it() {
    let gw = start_waf("mode = \"count\"", "", "access = \"access.log\"");
    let attacks = corpus("attacks.toml");
    let mut blocked_by_waf = Vec::new();
    for c in &attacks {
        let mut client = gw.connect();
        let r = client.request(&raw_case(c));
        // 400s come from the protocol checks, not the WAF.
        if r.status == 403 {
            blocked_by_waf.push(c.name.clone());
        }
    }
    assert!(
        blocked_by_waf.is_empty(),
        "count mode blocked: {blocked_by_waf:?}"
    );
    let log_path = gw.dir.path.join("access.log");
    let mut audits = 0;
    for _ in 0..50 {
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        audits = log
            .lines()
            .filter(|l| l.contains("\"type\":\"waf\""))
            .count();
        if audits >= attacks.len() * 9 / 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    let line = log
        .lines()
        .find(|l| l.contains("\"type\":\"waf\""))
        .expect("an audit line");
    let v: serde_json::Value = serde_json::from_str(line).expect("audit line is JSON");
    assert_eq!(v["action"], "count", "{line}");
    assert!(v["matches"][0]["rule"].as_u64().is_some(), "{line}");
    assert!(
        v["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{line}"
    );
    assert!(
        audits >= attacks.len() * 9 / 10,
        "{audits} audit lines for {} attacks",
        attacks.len()
    );
}

#[test]
fn ip_deny_and_allow() {
    let gw = start_waf("ip_deny = [\"127.0.0.0/8\"]", "", "");
    assert_gateway_error(
        &gw.get_with("api.example.com", "/hello", &[]),
        403,
        FORBIDDEN,
    );
    let gw = start_waf("ip_allow = [\"127.0.0.1/32\"]", "", "");
    // Allow-listed clients pass unexamined.
    let r = gw.get_with(
        "api.example.com",
        "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        &[],
    );
    assert_eq!(r.status, 200, "{:?}", r);
    let gw = start_waf("", "", "");
    let r = gw.get_with(
        "api.example.com",
        "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        &[],
    );
    assert_gateway_error(&r, 403, FORBIDDEN);
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn rate_based_rule_blocks_for_the_window() {
    let gw = start_waf("rate_based = { limit = 5, window = \"3s\" }", "", "");
    let statuses: Vec<u16> = (0..8)
        .map(|_| gw.get_with("api.example.com", "/hello", &[]).status)
        .collect();
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|&s| s == 403), "{statuses:?}");
    // Blocked for the rest of the window even though tokens trickle back.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(gw.get_with("api.example.com", "/hello", &[]).status, 403);
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(gw.get_with("api.example.com", "/hello", &[]).status, 200);
}

#[test]
fn exclusion_turns_a_rule_off_for_a_path() {
    let attack = "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let gw = start_waf("", "", "access = \"access.log\"");
    assert_eq!(gw.get_with("api.example.com", attack, &[]).status, 403);
    // Which rules fired: from the audit line.
    let mut ids: Vec<u64> = Vec::new();
    for _ in 0..50 {
        let log = fs::read_to_string(gw.dir.path.join("access.log")).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("\"type\":\"waf\"")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            ids = v["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["rule"].as_u64().unwrap())
                .collect();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!ids.is_empty());
    let exclude: Vec<String> = ids
        .iter()
        .map(|id| format!("{{ rule = {id}, path = \"/search\" }}"))
        .collect();
    let gw = start_waf(&format!("exclude = [{}]", exclude.join(", ")), "", "");
    assert_eq!(gw.get_with("api.example.com", attack, &[]).status, 200);
    // Still on elsewhere.
    assert_eq!(
        gw.get_with("api.example.com", &attack.replace("/search", "/other"), &[])
            .status,
        403
    );
}

#[test]
fn json_and_form_bodies_are_inspected() {
    let gw = start_waf("", "", "access = \"access.log\"");
    let post = |ct: &str, body: &str| {
        gw.connect().request(&req_with_headers(
            "POST",
            "/api/comments",
            &[
                ("Host", "api.example.com"),
                ("Content-Type", ct),
                ("Content-Length", &body.len().to_string()),
            ],
            body.as_bytes(),
        ))
    };
    let r = post(
        "application/json",
        r#"{"comment":{"text":["x","<script>alert(document.cookie)</script>"]}}"#,
    );
    assert_gateway_error(&r, 403, FORBIDDEN);
    // The audit line names the JSON value by its key path (its neighbours'
    // names differ: `comment.text` and `comment.text[0]`).
    let mut line = String::new();
    for _ in 0..50 {
        let log = fs::read_to_string(gw.dir.path.join("access.log")).unwrap_or_default();
        if let Some(l) = log.lines().find(|l| l.contains("\"type\":\"waf\"")) {
            line = l.to_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let v: serde_json::Value = serde_json::from_str(&line).expect("an audit line");
    let matches = v["matches"].as_array().unwrap();
    assert!(!matches.is_empty(), "{line}");
    for m in matches {
        assert_eq!(m["target"], "body", "{line}");
        assert_eq!(m["name"], "comment.text[1]", "{line}");
    }
    let r = post(
        "application/x-www-form-urlencoded",
        "name=x&id=1%27%20OR%20%271%27%3D%271",
    );
    assert_gateway_error(&r, 403, FORBIDDEN);
    let r = post(
        "application/json",
        r#"{"comment":{"text":"I'd like to order 2 items, thanks O'Brien"}}"#,
    );
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
fn oversize_continue_match_or_no_match_as_aws_waf() {
    let attack = "<script>alert(1)</script>";
    let padding = "a".repeat(2048);
    // The attack past the first KiB, or at its start, of a 2 KiB body.
    let late = format!("{padding}{attack}");
    let early = format!("{attack}{padding}");
    let send = |gw: &Gateway, target: &str, body: &str| {
        gw.connect()
            .request(&req_with_headers(
                "POST",
                target,
                &[
                    ("Host", "x"),
                    ("Content-Type", "text/plain"),
                    ("Content-Length", &body.len().to_string()),
                ],
                body.as_bytes(),
            ))
            .status
    };
    // continue (the default): the first KiB is inspected.
    for setting in [
        "inspect_body = 1024",
        "inspect_body = 1024\noversize = \"continue\"",
    ] {
        let gw = start_waf(setting, "", "");
        assert_eq!(send(&gw, "/upload", &late), 200, "{setting}");
        assert_eq!(send(&gw, "/upload", &early), 403, "{setting}");
    }
    // match: any body past the limit is refused, clean or not; a small one is inspected.
    let gw = start_waf("inspect_body = 1024\noversize = \"match\"", "", "");
    assert_eq!(send(&gw, "/upload", &padding), 403);
    assert_eq!(send(&gw, "/upload", "hello"), 200);
    assert_eq!(send(&gw, "/upload", attack), 403);
    // An empty body is not oversize.
    assert_eq!(send(&gw, "/upload", ""), 200);
    // no_match: the body is not inspected, the head still is.
    let gw = start_waf("inspect_body = 1024\noversize = \"no_match\"", "", "");
    assert_eq!(send(&gw, "/upload", &early), 200);
    assert_eq!(
        send(&gw, "/upload?q=%3Cscript%3Ealert(1)%3C/script%3E", &early),
        403
    );
    assert_eq!(
        send(&gw, "/upload", attack),
        403,
        "a body within the limit is inspected"
    );
    // Without a limit set, 64 KiB are inspected.
    let gw = start_waf("", "", "");
    assert_eq!(send(&gw, "/upload", &late), 403);
}

#[test]
fn oversize_rejects_unknown_values_at_check() {
    let (code, _, err) = check_config(&format!(
        "[waf.default]\nrules = \"{}\"\noversize = \"drop\"\n\n[[route]]\nname = \"a\"\npath = \"/\"\nwaf = \"default\"\nmock = {{}}\n",
        rules_dir().display()
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("gw.toml:3:")
            && err.contains("oversize")
            && err.contains("expected \"continue\", \"match\" or \"no_match\", not \"drop\""),
        "{err}"
    );
}

#[test]
fn bad_rule_file_names_file_line_and_rule_and_reload_keeps_old_rules() {
    let dir = TempDir::new("waf-rules");
    let good = "[[rule]]\nid = 100001\ndescription = \"test\"\ncategory = \"xss\"\ntargets = [\"query\"]\ntransforms = [\"url_decode\", \"lowercase\"]\nany = [\"<evil\"]\nscore = 5\n";
    fs::write(dir.path.join("a.toml"), good).unwrap();
    let rest = format!(
        "[waf.default]\nrules = \"{}\"\n\n[[route]]\nname = \"app\"\npath = \"/\"\nwaf = \"default\"\nmock = {{}}\n",
        dir.path.display()
    );
    let gw = Gateway::start("", &rest);
    assert_eq!(
        gw.get_with("api.example.com", "/x?q=%3CEVIL%3E", &[])
            .status,
        403
    );
    let bad = good.replace(
        "any = [\"<evil\"]",
        "any = [\"<evil\"]\nregex = \"(unclosed\"",
    );
    fs::write(dir.path.join("a.toml"), &bad).unwrap();
    let (code, _, err) = check_config_file(&gw.config_path);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("a.toml:2:") && err.contains("rule 100001") && err.contains("regex"),
        "{err}"
    );
    gw.signal("HUP");
    assert!(
        gw.wait_log("reload failed", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // The old rules still serve.
    assert_eq!(
        gw.get_with("api.example.com", "/x?q=%3CEVIL%3E", &[])
            .status,
        403
    );
    assert_eq!(gw.get_with("api.example.com", "/x?q=fine", &[]).status, 200);
}

#[test]
fn route_waf_names_must_exist() {
    let (code, _, err) =
        check_config("[[route]]\nname = \"r\"\npath = \"/\"\nwaf = \"nope\"\nmock = {}\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("gw.toml:4:") && err.contains("route[0].waf") && err.contains("unknown waf"),
        "{err}"
    );
}

/// A chunked body is decoded for the WAF (its framing forwarded as it came):
/// an attack split across chunks is seen whole; past `inspect_body` the
/// oversize setting decides as for a long Content-Length body.
#[test]
fn chunked_bodies_are_inspected_decoded() {
    let send = |gw: &Gateway, chunks: &[&str]| {
        let mut raw = String::from(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for c in chunks {
            raw.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
        }
        raw.push_str("0\r\n\r\n");
        gw.connect().request(raw.as_bytes())
    };
    let gw = start_waf("inspect_body = 1024", "", "");
    assert_eq!(send(&gw, &["hello ", "world"]).status, 200);
    let r = send(&gw, &["<scr", "ipt>alert(1)</scr", "ipt>"]);
    assert_gateway_error(&r, 403, FORBIDDEN);
    // Past the first KiB the default (continue) does not look.
    let padding = "a".repeat(700);
    assert_eq!(
        send(&gw, &[&padding, &padding, "<script>alert(1)</script>"]).status,
        200
    );
    // match: a chunked body longer than inspect_body is refused, a short one inspected.
    let gw = start_waf("inspect_body = 1024\noversize = \"match\"", "", "");
    assert_gateway_error(&send(&gw, &[&padding, &padding]), 403, FORBIDDEN);
    assert_eq!(send(&gw, &["short"]).status, 200);
}

/// What the WAF buffered of a chunked body is forwarded as it came, the rest
/// streamed after it, and the next request on the connection still parses.
#[test]
fn a_chunked_body_read_for_the_waf_reaches_the_upstream_whole() {
    let up = Upstream::start();
    let rest = format!(
        "[waf.default]\nrules = \"{}\"\ninspect_body = 1024\n\n{}[[route]]\nname = \"up\"\npath = \"/\"\nwaf = \"default\"\nupstream = \"u\"\n",
        rules_dir().display(),
        upstream_block("u", &[up.port], "")
    );
    let gw = Gateway::start("", &rest);
    let part = "b".repeat(900);
    let raw = format!(
        "POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{part}\r\n{:x}\r\n{part}\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
        part.len(),
        part.len()
    );
    let mut c = gw.connect();
    c.send(raw.as_bytes());
    let first = c.read_response();
    assert_eq!(first.status, 200, "{first:?}");
    let second = c.read_response();
    assert_eq!(second.status, 200, "{second:?}");
    let seen = up.seen();
    let post = seen
        .iter()
        .find(|s| s.target == "/in")
        .expect("the POST reached the upstream");
    assert_eq!(post.body_len, 1800);
    assert!(post.body.iter().all(|&b| b == b'b'));
    assert!(seen.iter().any(|s| s.target == "/next"));
}
