//! The per-request cost of SigV4 verification (`guard::auth::sigv4::verify`): a
//! typical header-form GET with 4 signed headers and a query, and a POST whose
//! 1 KiB body is hashed (no x-amz-content-sha256, so the payload hash is the
//! body's). Both requests were signed by botocore's SigV4Auth (execute-api,
//! eu-west-1) at 20150830T123600Z, the clock the benchmark passes.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use portcullis::guard::auth::sigv4::{verify, Credentials, Settings, SignedRequest};

const NOW: u64 = 1_440_938_160;

fn credentials() -> Credentials {
    Credentials::parse(
        "[[key]]\n\
         id = \"AKIDBENCH0000000\"\n\
         secret = \"bench/secret/key+0123456789abcdefghij\"\n\
         principal = \"bench\"\n\
         \n\
         [[key]]\n\
         id = \"AKIDOTHER0000000\"\n\
         secret = \"another-secret\"\n\
         principal = \"other\"\n",
    )
    .expect("bench credentials")
}

fn bench_verify(c: &mut Criterion) {
    let creds = credentials();
    let settings = Settings::new("eu-west-1", "execute-api");

    let get_headers: [(&[u8], &[u8]); 5] = [
        (b"Host", b"api.example.com"),
        (b"Accept", b"application/json"),
        (b"X-Request-Id", b"7f9c2ba4-e88f-11e5-9730-9a79f06e9478"),
        (b"X-Amz-Date", b"20150830T123600Z"),
        (
            b"Authorization",
            b"AWS4-HMAC-SHA256 Credential=AKIDBENCH0000000/20150830/eu-west-1/execute-api/aws4_request, \
              SignedHeaders=accept;host;x-amz-date;x-request-id, \
              Signature=fbc780002c25ecad0a5085c58b3205cd16de43d716aff1e77e6b6ff1b0c4b12e",
        ),
    ];
    let get = SignedRequest {
        method: b"GET",
        path: b"/prod/orders/12345",
        query: b"limit=20&cursor=abc",
        headers: &get_headers,
        body: None,
        has_body: false,
    };
    assert_eq!(
        verify(&get, &creds, &settings, NOW).map(|k| k.principal.as_str()),
        Ok("bench")
    );
    c.bench_function("sigv4/verify_get_4_signed_headers", |b| {
        b.iter(|| verify(black_box(&get), &creds, &settings, NOW).is_ok())
    });

    let body: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let post_headers: [(&[u8], &[u8]); 5] = [
        (b"Host", b"api.example.com"),
        (b"Content-Type", b"application/octet-stream"),
        (b"Content-Length", b"1024"),
        (b"X-Amz-Date", b"20150830T123600Z"),
        (
            b"Authorization",
            b"AWS4-HMAC-SHA256 Credential=AKIDBENCH0000000/20150830/eu-west-1/execute-api/aws4_request, \
              SignedHeaders=content-length;content-type;host;x-amz-date, \
              Signature=ef1b9046b3669f6b652166ed993f6191d9b4b5b33d6fb5893c2eb5fe670fe5eb",
        ),
    ];
    let post = SignedRequest {
        method: b"POST",
        path: b"/prod/orders",
        query: b"",
        headers: &post_headers,
        body: Some(&body),
        has_body: true,
    };
    assert_eq!(
        verify(&post, &creds, &settings, NOW).map(|k| k.principal.as_str()),
        Ok("bench")
    );
    let mut group = c.benchmark_group("sigv4");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify_post_1k_body", |b| {
        b.iter(|| verify(black_box(&post), &creds, &settings, NOW).is_ok())
    });
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
