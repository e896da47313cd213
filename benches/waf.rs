//! The WAF's per-request cost: splitting a typical 1 KiB API request into parts and
//! scanning them with the shipped rule set (rules/), and with that rule set
//! tripled (each rule three times under other ids) — the scan should cost about
//! the same, since each chain's literals share one automaton pass.

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis::guard::waf::parts::{recycle, JsonText, Part};
use portcullis::guard::waf::{collect_parts, crs, rules, Waf, WafState};
use portcullis::http::request::{parse_head, Header};

const REQUEST: &[u8] = b"POST /api/v1/orders?include=items&page=2&sort=-created_at HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15\r\n\
Accept: application/json\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\
Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n\
Content-Type: application/json\r\n\
Content-Length: 489\r\n\
\r\n";

const BODY: &[u8] = br#"{"customer":{"id":"c-1029","name":"Siobhan O'Brien","email":"siobhan.obrien@example.com"},"items":[{"sku":"SKU-00421","name":"Espresso beans, 1 kg","qty":2,"price":24.5},{"sku":"SKU-00017","name":"Milk frother","qty":1,"price":39.99}],"shipping":{"address":"12 Harbour Road","city":"Cork","postcode":"T12 X2Y3","country":"IE"},"notes":"Please leave the parcel at the back door if nobody's home - thanks!","coupon":"SPRING-10","currency":"EUR"}"#;

/// What the gateway does per request before scanning: the request's parts, in
/// the core's recycled parts list.
fn collect<'a>(
    target: &'a [u8],
    q: usize,
    headers: &'a [Header],
    json: &'a mut JsonText,
    spare: &mut Vec<Part<'static>>,
) -> Vec<Part<'a>> {
    json.clear();
    let mut parts = recycle(std::mem::take(spare));
    collect_parts(
        &target[..q],
        &target[q + 1..],
        REQUEST,
        headers,
        Some(BODY),
        json,
        &mut parts,
    );
    parts
}

fn bench_scan(c: &mut Criterion) {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    let normal = Waf::blocking("bench", rules::load(&dir, 1).expect("rules/"));
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            for copy in 0..3u32 {
                let shifted = text
                    .lines()
                    .map(|l| match l.trim_start().strip_prefix("id = ") {
                        Some(id) => format!(
                            "id = {}",
                            id.trim().parse::<u32>().unwrap() + copy * 10_000_000
                        ),
                        None => l.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                sources.push((p.with_extension(format!("{copy}.toml")), shifted));
            }
        }
    }
    let tripled = Waf::blocking("bench", rules::compile(&sources, 1).unwrap());
    assert_eq!(tripled.rules.rules.len(), 3 * normal.rules.rules.len());

    let mut headers = Vec::new();
    let head = parse_head(REQUEST, &mut headers).unwrap().unwrap();
    let target = head.target.get(REQUEST);
    let q = target.iter().position(|&b| b == b'?').unwrap();
    let state = WafState::default();
    println!(
        "rules: {} (tripled {}), chains: {}, request {} bytes",
        normal.rules.rules.len(),
        tripled.rules.rules.len(),
        normal.rules.chains.len(),
        REQUEST.len() + BODY.len()
    );
    // The text JSON parts borrow, reused between requests as the gateway does.
    let mut json = JsonText::default();
    let mut g = c.benchmark_group("waf_scan_1kib_api_request");
    let mut spare = Vec::with_capacity(64);
    g.bench_function("collect_parts_only", |b| {
        b.iter(|| {
            let parts = collect(target, q, &headers, &mut json, &mut spare);
            let n = parts.len();
            spare = recycle(parts);
            n
        })
    });
    for (name, waf) in [("rules", &normal), ("rules_tripled", &tripled)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let parts = collect(target, q, &headers, &mut json, &mut spare);
                let scan = waf.scan(black_box(&parts), &state, |_| false);
                spare = recycle(parts);
                assert!(scan.hits.is_empty() || scan.score < 5);
                scan.score
            })
        });
    }
    // The CRS (Debian's 3.3.4 with its setup, paranoia 1), when installed.
    let crs_dir = std::path::Path::new("/usr/share/modsecurity-crs/rules");
    if crs_dir.exists() {
        let setup = std::path::Path::new("/etc/modsecurity/crs/crs-setup.conf");
        let crs = crs::load(crs_dir, Some(setup), None).expect("CRS loads");
        println!("{}", crs.summary());
        let pairs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|h| (h.name.get(REQUEST), h.value.get(REQUEST)))
            .collect();
        g.bench_function("crs_3_3_4_pl1", |b| {
            b.iter(|| {
                let req = crs::Request::new(
                    REQUEST,
                    pairs.clone(),
                    Some(BODY),
                    "192.0.2.1".into(),
                    b"bench",
                );
                let out = crs.evaluate(black_box(&req), &|_| false);
                assert!(out.denied.is_none(), "{out:?}");
                out.score
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_scan);
criterion_main!(benches);
