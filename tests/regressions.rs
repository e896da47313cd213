//! Regressions found in review: odd upstream status lines, pipelined chunked
//! uploads, path normalization before routing, unsolicited upstream bytes on
//! pooled connections, stale pooled connections and non-idempotent requests,
//! HTTP/1.0 keep-alive and Host, mock 204, `gzip, chunked` responses and
//! chunk-size line garbage.

mod common;

use common::*;
use std::thread;
use std::time::Duration;

// ---- 1: status line without reason phrase ------------------------------------

#[test]
fn upstream_status_line_without_reason_phrase() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    let r = c.request(b"GET /no-reason HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "ok");
    assert_eq!(r.header("content-length"), Some("2"), "{:?}", r.headers);
    // the client connection was not dropped
    let r2 = c.request(b"GET /no-reason HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r2.status, 200, "{:?}", r2);
    assert_eq!(r2.body_str(), "ok");
    assert_eq!(up.seen().len(), 2);
}

// ---- 2: pipelined chunked uploads ---------------------------------------------

/// A chunked POST to `/upload` carrying the first `n` pattern bytes in
/// several chunks of different sizes.
fn chunked_upload(n: usize) -> Vec<u8> {
    let block = pattern_block();
    let data = &block[..n];
    let mut v =
        b"POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    let sizes = [8192usize, 1, 16000, 4095];
    let mut off = 0;
    let mut i = 0;
    while off < n {
        let k = if i < sizes.len() {
            sizes[i].min(n - off)
        } else {
            n - off
        };
        v.extend_from_slice(format!("{:x}\r\n", k).as_bytes());
        v.extend_from_slice(&data[off..off + k]);
        v.extend_from_slice(b"\r\n");
        off += k;
        i += 1;
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

#[test]
fn pipelined_chunked_uploads_on_one_connection() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    for round in 0..31 {
        let sizes: Vec<usize> = (0..3).map(|i| 40 * 1024 + round * 7 + i * 3).collect();
        let mut batch = Vec::new();
        for &n in &sizes {
            batch.extend_from_slice(&chunked_upload(n));
        }
        c.send(&batch);
        for (i, &n) in sizes.iter().enumerate() {
            let r = c
                .try_read_response(false)
                .unwrap_or_else(|e| panic!("round {} response {}: {}", round, i, e));
            assert_eq!(r.status, 200, "round {} response {}: {:?}", round, i, r);
            assert_eq!(
                r.body_str(),
                format!("received={} pattern=ok", n),
                "round {} response {}",
                round,
                i
            );
        }
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 93);
    assert!(seen
        .iter()
        .all(|s| s.method == "POST" && s.target == "/upload"));
}

// ---- 3: path normalization before routing -------------------------------------

#[test]
fn path_normalization_for_routing() {
    let rest = r#"
[[route]]
name = "admin"
path = "/admin"
mock = { status = 200, body = "admin", content_type = "text/plain" }
deny_ips = ["127.0.0.0/8"]

[[route]]
name = "public"
path = "/"
mock = { status = 200, body = "public", content_type = "text/plain" }
"#;
    let gw = Gateway::start("", rest);
    let mut c = gw.connect();
    for path in [
        "/%61dmin",
        "//admin",
        "/admin",
        "/admin;jsessionid=1",
        "/admin;x/secret",
    ] {
        let r = c.request(&get_req(path, "a"));
        assert_eq!(r.status, 403, "{}: {:?} {}", path, r, r.body_str());
        assert_gateway_error(&r, 403, FORBIDDEN);
    }
    let r = c.request(&get_req("/public", "a"));
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "public");

    for path in ["/a/..;x/admin", "/a/%2fadmin", "/a\\admin", "/a/%zz"] {
        expect_400(&gw, &get_req(path, "a"));
    }
}

// ---- 4: unsolicited bytes on a pooled upstream connection ----------------------

#[test]
fn pooled_connection_with_unsolicited_bytes_is_not_reused() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    let r = c.request(b"GET /late-extra HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "ok");
    // let the unsolicited response reach the gateway
    thread::sleep(Duration::from_millis(200));

    let mut c2 = gw.connect();
    let r2 = c2.request(b"GET /normal HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r2.status, 200, "{:?} {}", r2, r2.body_str());
    assert_ne!(r2.body_str(), "EVIL!");
    assert_eq!(body_lines(&r2)[1], "target=/normal", "{}", r2.body_str());
    assert_eq!(
        up.accepted(),
        2,
        "the tainted pooled connection must not be reused"
    );

    // the first client connection never saw the stray bytes either
    let r3 = c.request(b"GET /normal2 HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r3.status, 200, "{:?} {}", r3, r3.body_str());
    assert_eq!(body_lines(&r3)[1], "target=/normal2", "{}", r3.body_str());
}

// ---- 5: stale pooled connection and a non-idempotent request -------------------

#[test]
fn post_not_sent_on_stale_pooled_connection() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    let r = c.request(b"GET /once HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "once");
    // the upstream has closed the pooled connection by now
    thread::sleep(Duration::from_millis(200));

    let r2 = c.request(b"POST /once HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(r2.status, 200, "{:?} {}", r2, r2.body_str());
    assert_eq!(r2.body_str(), "once");

    let seen = up.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, vec!["GET", "POST"]);
    assert_eq!(seen[1].body, b"x".to_vec());
    assert_eq!(up.accepted(), 2);
}

// ---- 6: HTTP/1.0 keep-alive -------------------------------------------------------

#[test]
fn http10_keep_alive_client_on_mock_route() {
    let gw = Gateway::start("", &mock_route("m", "/m", 200, "mocked"));
    let mut c = gw.connect();
    for i in 0..2 {
        let r = c.request(b"GET /m HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(r.status, 200, "request {}: {:?}", i, r);
        assert_eq!(r.body_str(), "mocked");
        assert_eq!(
            r.header("connection"),
            Some("keep-alive"),
            "request {}: {:?}",
            i,
            r.headers
        );
    }
}

// ---- 7: HTTP/1.0 without Host ------------------------------------------------------

#[test]
fn http10_without_host_gets_upstream_name_as_host() {
    let up = Upstream::start();
    let rest = format!(
        "{}{}",
        upstream_block("backend-svc", &[up.port], ""),
        proxy_route("all", "/", "backend-svc")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = c.request(b"GET /nohost HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    let seen = up.last();
    assert_eq!(seen.target, "/nohost");
    assert_eq!(seen.header_all("host"), vec!["backend-svc"], "{:?}", seen);
}

// ---- 8: mock 204 -------------------------------------------------------------------

#[test]
fn mock_204_has_no_length_and_no_body() {
    let rest = format!(
        "{}{}",
        "[[route]]\nname = \"nc\"\npath = \"/nc\"\nmock = { status = 204 }\n\n",
        mock_route("m", "/m", 200, "after")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    let r = c.request(&get_req("/nc", "a"));
    assert_eq!(r.status, 204, "{:?}", r);
    assert!(!r.has("content-length"), "{:?}", r.headers);
    assert!(!r.has("transfer-encoding"), "{:?}", r.headers);
    assert!(r.body.is_empty());
    // no body bytes follow the head
    assert!(
        c.reader.buffer().is_empty(),
        "stray bytes after 204: {:?}",
        String::from_utf8_lossy(c.reader.buffer())
    );
    let r2 = c.request(&get_req("/m", "a"));
    assert_eq!(r2.status, 200, "{:?}", r2);
    assert_eq!(r2.body_str(), "after");

    let text = "[server]\nworkers = 1\nlisten = [\"127.0.0.1:1\"]\n\n[log]\naccess = \"off\"\n\n[[route]]\nname = \"nc\"\npath = \"/nc\"\nmock = { status = 204, body = \"not empty\" }\n";
    let (code, out, err) = check_config(text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(err.contains("gw.toml"), "stderr: {}", err);
    assert!(err.contains("mock.status"), "stderr: {}", err);
    let line = line_of(text, "status = 204");
    assert!(
        err.contains(&format!(":{}:", line)),
        "line {} in stderr: {}",
        line,
        err
    );
}

// ---- 9: `Transfer-Encoding: gzip, chunked` from the upstream ------------------------

#[test]
fn upstream_gzip_chunked_response_passed_through() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    let r = c.request(b"GET /gzip-chunked HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(
        r.header_all("transfer-encoding"),
        vec!["gzip, chunked"],
        "{:?}",
        r.headers
    );
    assert!(!r.has("content-length"), "{:?}", r.headers);
    assert!(r.chunked);
    assert_eq!(r.body, GZIP_CHUNKED_BODY.to_vec());
    let r2 = c.request(b"GET /after HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r2.status, 200, "{:?}", r2);
    assert_eq!(body_lines(&r2)[1], "target=/after");
}

// ---- 10: chunk-size line garbage ----------------------------------------------------

#[test]
fn chunk_size_garbage_and_long_extension_rejected() {
    let gw = Gateway::start("", &mock_route("m", "/", 200, "ok"));
    expect_400(
        &gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 xyz\r\nhello\r\n0\r\n\r\n",
    );
    let mut raw =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=".to_vec();
    raw.extend_from_slice(&[b'a'; 1100]);
    raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    expect_400(&gw, &raw);
    // whitespace after the size counts against the same per-line budget
    let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5".to_vec();
    raw.extend_from_slice(&[b' '; 1100]);
    raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    expect_400(&gw, &raw);
    // the gateway still serves
    let mut c = gw.connect();
    let r = c.request(&get_req("/", "a"));
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "ok");
}

// ---- 5b: a non-idempotent request already sent is never replayed ---------------

#[test]
fn post_on_pooled_connection_closed_after_send_is_not_replayed() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    let r = c.request(b"GET /close-on-reuse HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(body_lines(&r)[1], "target=/close-on-reuse");
    // the pooled connection is alive (the probe passes); the upstream reads the
    // POST and closes without answering: replaying it could run it twice
    let r2 = c.request(
        b"POST /close-on-reuse HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_gateway_error(&r2, 502, BAD_GATEWAY);
    let methods: Vec<String> = up.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, vec!["GET", "POST"]);
    assert_eq!(up.accepted(), 1);
    // the request was fully read: the client connection is kept
    let r3 = c.request(b"GET /close-on-reuse HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r3.status, 200, "{:?}", r3);
}

// ---- early upstream answer ----------------------------------------------------------

#[test]
fn upstream_early_answer_to_a_large_upload_is_relayed() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    // 8 MiB announced; the upstream answers 413 after the head and stops reading.
    let len: u64 = 8 << 20;
    c.send(
        format!("POST /early-413 HTTP/1.1\r\nHost: example.test\r\nContent-Length: {len}\r\n\r\n")
            .as_bytes(),
    );
    let writer = {
        let mut s = c.stream().try_clone().unwrap();
        thread::spawn(move || {
            let _ = write_pattern(&mut s, len);
        })
    };
    let r = c.read_response();
    assert_eq!(r.status, 413, "{:?} {}", r, r.body_str());
    assert_eq!(r.body_str(), "too big\n");
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    c.assert_closed();
    let _ = writer.join();
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/early-413");
}
