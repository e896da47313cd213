//! Request framing rules (RFC 9112) and request limits. A violation answers 400
//! {"message":"Bad Request"} with `connection: close`, then the gateway closes
//! the connection.
//!
//! Most cases are rows of a table: (name, raw request bytes, what is expected),
//! run one after the other on one gateway, each on a fresh connection; a failing
//! table names every case that failed. Cases that need their own gateway config
//! or more than one exchange are tests of their own below the tables.

mod common;

use common::*;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn mock_gw() -> Gateway {
    Gateway::start("", &mock_route("m", "/", 200, "ok"))
}

// ---- the table --------------------------------------------------------------

/// What a case expects of the answer to its raw request (sent in one write on a
/// fresh connection).
enum Expect {
    /// 200 "ok" from the mock, and the connection kept: a second GET answers 200.
    Ok,
    /// 200 "ok" from the mock (the connection is not looked at).
    OkBody,
    /// Status 200, and the connection kept: a second GET answers 200.
    Kept,
    /// Status 200.
    Status200,
    /// 400 Bad Request with `connection: close`, then closed ([`expect_400`]).
    BadRequest,
    /// The gateway's own error (status, body), then the connection closed.
    Refused(u16, &'static str),
    /// The gateway's own error (status, body).
    Error(u16, &'static str),
}

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, raw: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        raw: raw.into(),
        expect,
    }
}

fn run_case(gw: &Gateway, case: &Case) {
    let raw = &case.raw[..];
    let shown = String::from_utf8_lossy(raw);
    match case.expect {
        Expect::BadRequest => expect_400(gw, raw),
        Expect::Ok | Expect::OkBody | Expect::Kept | Expect::Status200 => {
            let mut c = gw.connect();
            let r = c.request(raw);
            assert_eq!(r.status, 200, "{:?} for {:?}", r, shown);
            if matches!(case.expect, Expect::Ok | Expect::OkBody) {
                assert_eq!(r.body_str(), "ok");
            }
            if matches!(case.expect, Expect::Ok | Expect::Kept) {
                assert_eq!(c.get("/again").status, 200);
            }
        }
        Expect::Refused(status, body) | Expect::Error(status, body) => {
            let mut c = gw.connect();
            c.send(raw);
            let r = c.read_response();
            assert_gateway_error(&r, status, body);
            if matches!(case.expect, Expect::Refused(..)) {
                c.assert_closed();
            }
        }
    }
}

/// Runs every case on `gw`; fails naming each case that failed and why.
fn run_table(gw: &Gateway, cases: Vec<Case>) {
    let mut failed = Vec::new();
    for case in &cases {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run_case(gw, case))) {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("case {}: {}", case.name, why));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n"),
        gw.logs()
    );
}

// ---- the tables -------------------------------------------------------------

/// Requests the gateway must accept.
#[test]
fn controls() {
    run_table(
        &mock_gw(),
        vec![
        case("control_valid_get", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Expect::Ok),
        case("control_valid_post_content_length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Expect::Ok),
        case("control_valid_post_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Expect::Ok),
        case("control_equal_duplicate_content_length_accepted", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", Expect::Ok),
        case("control_absolute_form_matching_host_accepted", b"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", Expect::Ok),
        case("control_dots_inside_segment_accepted", b"GET /a/..b/c.d/...x HTTP/1.1\r\nHost: a\r\n\r\n", Expect::Ok),
        case("control_http10_without_host_accepted", b"GET / HTTP/1.0\r\n\r\n", Expect::OkBody),
        ],
    );
}

/// Content-Length / Transfer-Encoding conflicts and codings.
#[test]
fn content_length_and_transfer_encoding() {
    run_table(
        &mock_gw(),
        vec![
        case("cl_and_te_together", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        case("te_and_cl_together_te_first", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        case("two_content_lengths_differ", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", Expect::BadRequest),
        case("content_length_not_digits", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", Expect::BadRequest),
        case("content_length_plus_sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", Expect::BadRequest),
        case("content_length_negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Expect::BadRequest),
        case("content_length_hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", Expect::BadRequest),
        case("content_length_empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", Expect::BadRequest),
        case("content_length_list_of_different_values", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", Expect::BadRequest),
        case("te_gzip_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        case("te_chunked_gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        case("te_identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Expect::BadRequest),
        case("te_unknown_coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n", Expect::BadRequest),
        case("te_two_headers_chunked_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        case("te_chunked_chunked_list", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        case("http10_with_transfer_encoding", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Expect::BadRequest),
        ],
    );
}

/// Malformed chunked bodies.
#[test]
fn chunked_body() {
    let mut long_ext =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=".to_vec();
    long_ext.extend_from_slice(&[b'a'; 1100]);
    long_ext.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let mut long_ws = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5".to_vec();
    long_ws.extend_from_slice(&[b' '; 1100]);
    long_ws.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    run_table(
        &mock_gw(),
        vec![
        case("chunk_size_not_hex", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_size_empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_size_overflow", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_size_more_than_16_hex_digits", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_size_negative", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_extension_invalid_char", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;na@me=v\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_extension_control_char", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\x01\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        case("chunk_data_missing_crlf", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", Expect::BadRequest),
        case("chunk_data_longer_than_size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", Expect::BadRequest),
        // chunk-size line garbage (found in review)
        case(
            "chunk_size_garbage",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 xyz\r\nhello\r\n0\r\n\r\n",
            Expect::BadRequest,
        ),
        case("chunk_extension_too_long", long_ext, Expect::BadRequest),
        // whitespace after the size counts against the same per-line budget
        case("chunk_size_trailing_whitespace_too_long", long_ws, Expect::BadRequest),
        // the gateway still serves
        case("still_serves_after_chunk_garbage", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Expect::OkBody),
        ],
    );
}

/// Header syntax: folding, whitespace, bare CR, NUL, missing colon.
#[test]
fn head_syntax() {
    run_table(
        &mock_gw(),
        vec![
            case(
                "obs_fold_space",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "obs_fold_tab",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "whitespace_before_colon",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "whitespace_before_colon_in_content_length",
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
                Expect::BadRequest,
            ),
            case(
                "tab_before_colon",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "bare_cr_in_header_value",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "bare_cr_as_line_end",
                b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "bare_cr_in_request_line",
                b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "nul_in_header_value",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "nul_in_header_name",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-\x00A: b\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "header_line_without_colon",
                b"GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n",
                Expect::BadRequest,
            ),
        ],
    );
}

/// Host and request-target checks (dot segments, absolute form).
#[test]
fn host_and_target() {
    run_table(
        &mock_gw(),
        vec![
            case(
                "absolute_form_authority_differs_from_host",
                b"GET http://other.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "missing_host_http11",
                b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "two_host_headers",
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "two_different_host_headers",
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_dotdot_segment",
                b"GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_dot_segment",
                b"GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_trailing_dotdot",
                b"GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_encoded_dotdot_lower",
                b"GET /a/%2e%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_encoded_dotdot_upper",
                b"GET /a/%2E%2E/b HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_encoded_dotdot_mixed",
                b"GET /a/.%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_encoded_dot",
                b"GET /a/%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "path_dotdot_in_absolute_form",
                b"GET http://a/x/../y HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
        ],
    );
}

/// Malformed request lines.
#[test]
fn request_line() {
    run_table(
        &mock_gw(),
        vec![
            case(
                "request_line_garbage",
                b"GARBAGE\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "request_line_missing_version",
                b"GET /\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "request_line_extra_token",
                b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "request_line_invalid_method_char",
                b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "request_line_bad_version",
                b"GET / HTXP/1.1\r\nHost: a\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "request_line_binary_garbage",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                Expect::BadRequest,
            ),
            case(
                "connect_method_gets_405",
                b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
                Expect::Error(405, METHOD_NOT_ALLOWED),
            ),
        ],
    );
}

/// The header count limit (100) on the default mock gateway.
#[test]
fn header_count_limit() {
    let headers = |n: usize| {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..n {
            raw.push_str(&format!("X-H{}: v\r\n", i));
        }
        raw.push_str("\r\n");
        raw
    };
    run_table(
        &mock_gw(),
        vec![
            case(
                "more_than_100_headers_431",
                headers(101),
                Expect::Refused(431, HEADERS_TOO_LARGE),
            ),
            case("exactly_100_headers_ok", headers(99), Expect::Status200),
        ],
    );
}

/// `max_body_bytes = "1KiB"`: by Content-Length and by chunked body.
#[test]
fn body_limit_1kib() {
    let mut at_limit = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n".to_vec();
    at_limit.extend(std::iter::repeat_n(b'x', 1024));
    let mut chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 0x200));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let gw = Gateway::start(
        "max_body_bytes = \"1KiB\"\n",
        &mock_route("m", "/", 200, "ok"),
    );
    run_table(
        &gw,
        vec![
            case(
                "body_too_large_by_content_length_413",
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n",
                Expect::Refused(413, TOO_LARGE),
            ),
            case("body_at_limit_by_content_length_ok", at_limit, Expect::Kept),
            case(
                "body_too_large_by_chunked_413",
                chunked,
                Expect::Refused(413, TOO_LARGE),
            ),
        ],
    );
}

// ---- limits that need their own gateway ---------------------------------------------------------------------

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
