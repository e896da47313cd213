//! Criterion benches for the request path's pure code: parsing a request head with
//! its framing checks, and writing the rewritten head sent upstream.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use portcullis::http::request::parse_head;
use portcullis::proxy::headers::{upstream_request, Forwarding};

const WRK_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9005\r\n\r\n";
const BROWSER_GET: &[u8] = b"GET /v1/orders/12345?expand=items&limit=20 HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Authorization: Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig\r\n\
Connection: keep-alive\r\n\
X-Request-Id: 7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f\r\n\
Cookie: session=abcdef0123456789; theme=dark\r\n\
Cache-Control: no-cache\r\n\r\n";

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_head");
    for (name, req) in [("wrk_get", WRK_GET), ("browser_get", BROWSER_GET)] {
        g.throughput(Throughput::Bytes(req.len() as u64));
        let mut headers = Vec::with_capacity(32);
        g.bench_function(name, |b| {
            b.iter(|| {
                parse_head(black_box(req), &mut headers)
                    .unwrap()
                    .unwrap()
                    .len
            })
        });
    }
    g.finish();
}

fn bench_rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("upstream_head");
    for (name, req) in [("wrk_get", WRK_GET), ("browser_get", BROWSER_GET)] {
        let mut headers = Vec::with_capacity(32);
        let head = parse_head(req, &mut headers).unwrap().unwrap();
        let fwd = Forwarding {
            peer_ip: "127.0.0.1",
            peer_trusted: false,
            request_id: b"7f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f",
            proto: "http",
            default_host: "up",
            extra: b"",
            client_cert: b"",
        };
        let mut out = Vec::with_capacity(64 << 10);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                upstream_request(&mut out, black_box(req), &head, &headers, &fwd);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_parse, bench_rewrite);
criterion_main!(benches);
