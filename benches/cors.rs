//! The CORS stage's per-request cost on a route with a policy: a request without
//! `Origin` (what non-browser clients send: one scan of the header index), an
//! actual request from an allowed origin (plus an append of the precomputed
//! lines), and a preflight.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis::config::{CorsConfig, Source};
use portcullis::guard::cors::{compile, Cors};
use portcullis::guard::Verdict;
use portcullis::http::request::parse_head;

const POLICY: &str = r#"
origins = ["https://app.example.com", "https://*.example.org"]
methods = ["GET", "PUT"]
headers = ["content-type", "x-custom"]
expose_headers = ["x-request-id"]
credentials = true
max_age = "10m"
"#;

const HEAD: &str = "GET /api/v1/orders?page=2 HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\n\
Accept: application/json\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\
Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n";

fn policy() -> Cors {
    let source = Source::new("bench.toml", POLICY);
    let c: CorsConfig = toml::from_str(POLICY).unwrap();
    compile("web", &c, &source).unwrap()
}

fn bench(c: &mut Criterion, cors: &Cors, name: &str, raw: &str, preflight: bool) {
    let mut headers = Vec::new();
    let head = parse_head(raw.as_bytes(), &mut headers).unwrap().unwrap();
    let method = head.method_span.get(raw.as_bytes());
    let mut client = String::with_capacity(512);
    c.bench_function(name, |b| {
        b.iter(|| {
            client.clear();
            let (v, _) = cors.apply(black_box(method), raw.as_bytes(), &headers, &mut client);
            assert_eq!(matches!(v, Verdict::Respond(_)), preflight);
            black_box(client.len())
        })
    });
}

fn bench_cors(c: &mut Criterion) {
    let cors = policy();
    bench(c, &cors, "cors/no_origin", &format!("{HEAD}\r\n"), false);
    bench(
        c,
        &cors,
        "cors/allowed_origin",
        &format!("{HEAD}Origin: https://app.example.com\r\n\r\n"),
        false,
    );
    bench(
        c,
        &cors,
        "cors/preflight",
        &format!(
            "{}Origin: https://a.example.org\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type, x-custom\r\n\r\n",
            HEAD.replacen("GET", "OPTIONS", 1)
        ),
        true,
    );
}

criterion_group!(benches, bench_cors);
criterion_main!(benches);
