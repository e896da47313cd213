//! Request framing rules (RFC 9112) and request limits: every violation is its
//! own test. A violation answers 400 {"message":"Bad Request"} with
//! `connection: close`, then the gateway closes the connection.

mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn mock_gw() -> Gateway {
    Gateway::start("", &mock_route("m", "/", 200, "ok"))
}

/// Send `raw` in one write to a fresh gateway; expect 400 + `connection: close` + closed.
fn expect_400(raw: &[u8]) {
    common::expect_400(&mock_gw(), raw);
}

/// Send `raw` in one write; expect 200 "ok" from the mock and the connection kept.
fn expect_ok(raw: &[u8]) {
    let gw = mock_gw();
    let mut c = gw.connect();
    let r = c.request(raw);
    assert_eq!(
        r.status,
        200,
        "{:?} for {:?}",
        r,
        String::from_utf8_lossy(raw)
    );
    assert_eq!(r.body_str(), "ok");
    let r2 = c.get("/again");
    assert_eq!(r2.status, 200);
}

// ---- controls ---------------------------------------------------------------

#[test]
fn control_valid_get() {
    expect_ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn control_valid_post_content_length() {
    expect_ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
}

#[test]
fn control_valid_post_chunked() {
    expect_ok(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn control_equal_duplicate_content_length_accepted() {
    expect_ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
}

#[test]
fn control_absolute_form_matching_host_accepted() {
    expect_ok(b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn control_dots_inside_segment_accepted() {
    expect_ok(b"GET /a/..b/c.d/...x HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn control_http10_without_host_accepted() {
    let gw = mock_gw();
    let mut c = gw.connect();
    let r = c.request(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "ok");
}

// ---- Content-Length / Transfer-Encoding -------------------------------------

#[test]
fn cl_and_te_together() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
}

#[test]
fn te_and_cl_together_te_first() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n");
}

#[test]
fn two_content_lengths_differ() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
}

#[test]
fn content_length_not_digits() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n");
}

#[test]
fn content_length_plus_sign() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello");
}

#[test]
fn content_length_negative() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n");
}

#[test]
fn content_length_hex() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello");
}

#[test]
fn content_length_empty() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n");
}

#[test]
fn content_length_list_of_different_values() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!");
}

#[test]
fn te_gzip_chunked() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
}

#[test]
fn te_chunked_gzip() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n");
}

#[test]
fn te_identity() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n");
}

#[test]
fn te_unknown_coding() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n");
}

#[test]
fn te_two_headers_chunked_chunked() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
}

#[test]
fn te_chunked_chunked_list() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    );
}

#[test]
fn http10_with_transfer_encoding() {
    expect_400(b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
}

// ---- chunked body -------------------------------------------------------------

#[test]
fn chunk_size_not_hex() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_size_empty() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_size_overflow() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_size_more_than_16_hex_digits() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_size_negative() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    );
}

#[test]
fn chunk_extension_invalid_char() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;na@me=v\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_extension_control_char() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\x01\r\nhello\r\n0\r\n\r\n");
}

#[test]
fn chunk_data_missing_crlf() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    );
}

#[test]
fn chunk_data_longer_than_size() {
    expect_400(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    );
}

// ---- head syntax -------------------------------------------------------------

#[test]
fn obs_fold_space() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n");
}

#[test]
fn obs_fold_tab() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n");
}

#[test]
fn whitespace_before_colon() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n");
}

#[test]
fn whitespace_before_colon_in_content_length() {
    expect_400(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello");
}

#[test]
fn tab_before_colon() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n");
}

#[test]
fn bare_cr_in_header_value() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n");
}

#[test]
fn bare_cr_as_line_end() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n");
}

#[test]
fn bare_cr_in_request_line() {
    expect_400(b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn nul_in_header_value() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n");
}

#[test]
fn nul_in_header_name() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nX-\x00A: b\r\n\r\n");
}

#[test]
fn header_line_without_colon() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n");
}

// ---- host / target ------------------------------------------------------------

#[test]
fn absolute_form_authority_differs_from_host() {
    expect_400(b"GET http://other.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n");
}

#[test]
fn missing_host_http11() {
    expect_400(b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n");
}

#[test]
fn two_host_headers() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
}

#[test]
fn two_different_host_headers() {
    expect_400(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
}

#[test]
fn path_dotdot_segment() {
    expect_400(b"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_dot_segment() {
    expect_400(b"GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_trailing_dotdot() {
    expect_400(b"GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_encoded_dotdot_lower() {
    expect_400(b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_encoded_dotdot_upper() {
    expect_400(b"GET /a/%2E%2E/b HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_encoded_dotdot_mixed() {
    expect_400(b"GET /a/.%2e/b HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_encoded_dot() {
    expect_400(b"GET /a/%2e/b HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn path_dotdot_in_absolute_form() {
    expect_400(b"GET http://a/x/../y HTTP/1.1\r\nHost: a\r\n\r\n");
}

// ---- request line ---------------------------------------------------------------

#[test]
fn request_line_garbage() {
    expect_400(b"GARBAGE\r\n\r\n");
}

#[test]
fn request_line_missing_version() {
    expect_400(b"GET /\r\nHost: a\r\n\r\n");
}

#[test]
fn request_line_extra_token() {
    expect_400(b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n");
}

#[test]
fn request_line_invalid_method_char() {
    expect_400(b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn request_line_bad_version() {
    expect_400(b"GET / HTXP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn request_line_binary_garbage() {
    expect_400(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n");
}

#[test]
fn connect_method_gets_405() {
    let gw = mock_gw();
    let mut c = gw.connect();
    c.send(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n");
    let r = c.read_response();
    assert_gateway_error(&r, 405, METHOD_NOT_ALLOWED);
}

// ---- limits ---------------------------------------------------------------------

#[test]
fn headers_too_large_431() {
    let gw = Gateway::start(
        "max_header_bytes = \"1KiB\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2000)
    );
    c.send(raw.as_bytes());
    let r = c.read_response();
    assert_gateway_error(&r, 431, HEADERS_TOO_LARGE);
    c.assert_closed();
}

#[test]
fn headers_just_under_limit_ok() {
    let gw = Gateway::start(
        "max_header_bytes = \"2KiB\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1000)
    );
    let r = c.request(raw.as_bytes());
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
fn more_than_100_headers_431() {
    let gw = mock_gw();
    let mut c = gw.connect();
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..101 {
        raw.push_str(&format!("X-H{}: v\r\n", i));
    }
    raw.push_str("\r\n");
    c.send(raw.as_bytes());
    let r = c.read_response();
    assert_gateway_error(&r, 431, HEADERS_TOO_LARGE);
    c.assert_closed();
}

#[test]
fn exactly_100_headers_ok() {
    let gw = mock_gw();
    let mut c = gw.connect();
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..99 {
        raw.push_str(&format!("X-H{}: v\r\n", i));
    }
    raw.push_str("\r\n");
    let r = c.request(raw.as_bytes());
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
fn body_too_large_by_content_length_413() {
    let gw = Gateway::start(
        "max_body_bytes = \"1KiB\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n");
    let r = c.read_response();
    assert_gateway_error(&r, 413, TOO_LARGE);
    c.assert_closed();
}

#[test]
fn body_at_limit_by_content_length_ok() {
    let gw = Gateway::start(
        "max_body_bytes = \"1KiB\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 1024));
    let r = c.request(&raw);
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(c.get("/again").status, 200);
}

#[test]
fn body_too_large_by_chunked_413() {
    let gw = Gateway::start(
        "max_body_bytes = \"1KiB\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend(std::iter::repeat_n(b'y', 0x200));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send(&raw);
    let r = c.read_response();
    assert_gateway_error(&r, 413, TOO_LARGE);
    c.assert_closed();
}

#[test]
fn body_too_large_by_chunked_upstream_route_413() {
    let up = Upstream::start();
    let gw = Gateway::start("max_body_bytes = \"1KiB\"\n", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    let mut raw =
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend(std::iter::repeat_n(b'y', 0x200));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send(&raw);
    let r = c.read_response();
    assert_gateway_error(&r, 413, TOO_LARGE);
    c.assert_closed();
}

#[test]
fn route_max_body_bytes_lowers_limit() {
    let rest = "[[route]]\nname = \"small\"\npath = \"/small\"\nmax_body_bytes = 100\nmock = { status = 200, body = \"small\" }\n\n\
                [[route]]\nname = \"big\"\npath = \"/big\"\nmock = { status = 200, body = \"big\" }\n";
    let gw = Gateway::start("max_body_bytes = \"1KiB\"\n", rest);
    let body = "z".repeat(200);
    let mut c = gw.connect();
    let r = c.request(
        format!(
            "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\n{}",
            body
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "big");
    let mut c = gw.connect();
    c.send(b"POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 200\r\n\r\n");
    let r = c.read_response();
    assert_gateway_error(&r, 413, TOO_LARGE);
    c.assert_closed();
}

#[test]
fn slow_head_gets_408_and_close() {
    let gw = Gateway::start(
        "header_timeout = \"500ms\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    let r = c.read_response();
    assert_gateway_error(&r, 408, REQUEST_TIMEOUT);
    c.assert_closed();
}

#[test]
fn slowloris_trickle_gets_408_and_close() {
    // bytes keep arriving, but the head never completes: the timeout covers the
    // whole head, not each read
    let gw = Gateway::start(
        "header_timeout = \"500ms\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = c.stream().try_clone().unwrap();
    let t = {
        let stop = stop.clone();
        thread::spawn(move || {
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) || w.write_all(b"a").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let r = c.try_read_response(false);
    stop.store(true, Ordering::SeqCst);
    let r = r.expect("a 408 response");
    assert_gateway_error(&r, 408, REQUEST_TIMEOUT);
    c.assert_closed();
    t.join().unwrap();
}

#[test]
fn head_within_timeout_in_pieces_ok() {
    let gw = Gateway::start(
        "header_timeout = \"5s\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    let mut c = gw.connect();
    c.send(b"GET / HTTP/1.1\r\n");
    thread::sleep(Duration::from_millis(100));
    c.send(b"Host: a\r\n");
    thread::sleep(Duration::from_millis(100));
    c.send(b"\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
fn bad_request_after_good_one_on_same_connection() {
    let gw = mock_gw();
    let mut c = gw.connect();
    let r = c.get("/fine");
    assert_eq!(r.status, 200);
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    let r = c.read_response();
    assert_gateway_error(&r, 400, BAD_REQUEST);
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();
}

#[test]
fn smuggled_request_after_bad_framing_not_served() {
    // CL+TE with a smuggled second request: the gateway answers only the 400
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.read_response();
    assert_gateway_error(&r, 400, BAD_REQUEST);
    c.assert_closed();
    assert!(
        up.seen().iter().all(|s| !s.target.contains("smuggled")),
        "{:?}",
        up.seen()
    );
    assert_eq!(up.seen().len(), 0);
}

// ---- found in review (formerly tests/regressions.rs) ------------------------

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

#[test]
fn chunk_size_garbage_and_long_extension_rejected() {
    let gw = Gateway::start("", &mock_route("m", "/", 200, "ok"));
    common::expect_400(
        &gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 xyz\r\nhello\r\n0\r\n\r\n",
    );
    let mut raw =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=".to_vec();
    raw.extend_from_slice(&[b'a'; 1100]);
    raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    common::expect_400(&gw, &raw);
    // whitespace after the size counts against the same per-line budget
    let mut raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5".to_vec();
    raw.extend_from_slice(&[b' '; 1100]);
    raw.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    common::expect_400(&gw, &raw);
    // the gateway still serves
    let mut c = gw.connect();
    let r = c.request(&get_req("/", "a"));
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "ok");
}
