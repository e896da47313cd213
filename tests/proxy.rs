//! Proxying behaviour: methods, keep-alive on both sides, pipelining, body
//! framing both ways, 100-continue, 502/504, failover, header handling.

mod common;

use common::*;
use std::thread;
use std::time::Duration;

fn gw_for(up: &Upstream) -> Gateway {
    Gateway::start("", &proxy_all(&[up.port], ""))
}

#[test]
fn get_is_proxied_with_query_and_http11() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(
        b"GET /hello/world?q=1&r=two HTTP/1.1\r\nHost: example.test\r\nX-Custom: abc\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.header("x-upstream-port"),
        Some(up.port.to_string().as_str())
    );
    let lines = body_lines(&r);
    assert_eq!(lines[0], "method=GET");
    assert_eq!(lines[1], "target=/hello/world?q=1&r=two");
    assert_eq!(lines[2], "version=HTTP/1.1");
    assert!(r.has("x-request-id"));
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, "/hello/world?q=1&r=two");
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(seen.header("x-custom"), Some("abc"));
    assert_eq!(seen.body_len, 0);
}

#[test]
fn post_body_is_forwarded() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(b"POST /submit HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!(r.status, 200, "{:?}", r);
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/submit");
    assert_eq!(seen.body, b"hello world".to_vec());
    assert_eq!(seen.header("content-length"), Some("11"));
    assert!(!seen.has("transfer-encoding"));
    assert!(body_lines(&r).contains(&"body_len=11".to_string()));
}

#[test]
fn head_has_no_body_and_connection_stays_usable() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let get = c.request(b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(get.status, 200);
    c.send(b"HEAD /x HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let head = c.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(up.last().method, "HEAD");
    // the upstream announces the length of the echo body it would have sent
    assert!(head.has("content-length"), "{:?}", head);
    // if the gateway had sent body bytes after the HEAD response, the next
    // response would not start with a status line
    let after = c.request(b"GET /after HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(after.status, 200);
    assert_eq!(body_lines(&after)[1], "target=/after");
}

#[test]
fn keepalive_is_reused_on_both_sides() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    for i in 0..25 {
        let r =
            c.request(format!("GET /ka/{} HTTP/1.1\r\nHost: example.test\r\n\r\n", i).as_bytes());
        assert_eq!(r.status, 200, "request {}: {:?}", i, r);
        assert_eq!(body_lines(&r)[1], format!("target=/ka/{}", i));
    }
    assert_eq!(up.seen().len(), 25);
    assert_eq!(
        up.accepted(),
        1,
        "the gateway must reuse one pooled upstream connection"
    );
    let conns: Vec<usize> = up.seen().iter().map(|s| s.conn_id).collect();
    assert!(conns.iter().all(|&id| id == conns[0]));
}

#[test]
fn upstream_connection_reused_across_client_connections() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    for i in 0..5 {
        let mut c = gw.connect();
        let r = c.get(&format!("/seq/{}", i));
        assert_eq!(r.status, 200);
    }
    assert_eq!(up.accepted(), 1);
}

#[test]
fn pipelined_requests_answered_in_order() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    c.send(
        b"GET /p1 HTTP/1.1\r\nHost: example.test\r\n\r\n\
          POST /p2 HTTP/1.1\r\nHost: example.test\r\nContent-Length: 3\r\n\r\nabc\
          GET /p3?x=y HTTP/1.1\r\nHost: example.test\r\n\r\n",
    );
    let r1 = c.read_response();
    let r2 = c.read_response();
    let r3 = c.read_response();
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.status, 200, "{:?}", r);
    }
    assert_eq!(body_lines(&r1)[1], "target=/p1");
    assert_eq!(body_lines(&r2)[0], "method=POST");
    assert_eq!(body_lines(&r2)[1], "target=/p2");
    assert_eq!(body_lines(&r2)[3], "body_len=3");
    assert_eq!(body_lines(&r3)[1], "target=/p3?x=y");
    // still usable afterwards
    assert_eq!(c.get("/p4").status, 200);
}

#[test]
fn pipelined_mock_and_proxy_in_order() {
    let up = Upstream::start();
    let rest = format!(
        "{}{}{}",
        upstream_block("u", &[up.port], ""),
        mock_route("m", "/mock", 200, "mocked"),
        proxy_route("p", "/", "u")
    );
    let gw = Gateway::start("", &rest);
    let mut c = gw.connect();
    c.send(
        b"GET /slow?ms=200 HTTP/1.1\r\nHost: a\r\n\r\nGET /mock HTTP/1.1\r\nHost: a\r\n\r\nGET /nope/x HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let r1 = c.read_response();
    let r2 = c.read_response();
    let r3 = c.read_response();
    assert_eq!(r1.status, 200);
    assert_eq!(body_lines(&r1)[1], "target=/slow?ms=200");
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body_str(), "mocked");
    assert_eq!(r3.status, 200);
    assert_eq!(body_lines(&r3)[1], "target=/nope/x");
}

#[test]
fn chunked_request_body_is_forwarded() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"5\r\nhello\r\n");
    thread::sleep(Duration::from_millis(50));
    c.send(b"1;ext=1\r\n \r\n");
    c.send(b"a\r\nchunked!!!\r\n0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "received=16 pattern=bad");
    let seen = up.last();
    assert_eq!(seen.body, b"hello chunked!!!".to_vec());
    assert_eq!(seen.body_len, 16);
    // framing towards the upstream must be unambiguous
    assert!(
        !(seen.has("transfer-encoding") && seen.has("content-length")),
        "upstream got both TE and CL: {:?}",
        seen.headers
    );
    // keep-alive continues after a chunked body
    assert_eq!(c.get("/next").status, 200);
}

#[test]
fn chunked_request_with_trailers_is_forwarded() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(
        b"POST /upload HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "received=3 pattern=bad");
    assert_eq!(c.get("/next").status, 200);
}

#[test]
fn chunked_response_passed_through_as_chunked() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/chunked");
    assert_eq!(r.status, 200, "{:?}", r);
    assert!(r.chunked, "response should be chunked: {:?}", r.headers);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(!r.has("content-length"));
    assert_eq!(r.body_str(), "hello chunked world");
    // keep-alive continues
    let r2 = c.get("/after");
    assert_eq!(r2.status, 200);
}

#[test]
fn close_delimited_upstream_response_gets_connection_close() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/close");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "this body is delimited by close");
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();
}

#[test]
fn expect_100_continue_answered_by_gateway() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read_response();
    assert_eq!(interim.status, 100, "{:?}", interim);
    assert_eq!(interim.version, "HTTP/1.1");
    assert_eq!(interim.reason, "Continue");
    c.send(b"hello");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "received=5 pattern=bad");
    let seen = up.last();
    assert!(
        !seen.has("expect"),
        "Expect must not be forwarded: {:?}",
        seen.headers
    );
    assert_eq!(seen.body, b"hello".to_vec());
}

#[test]
fn expect_100_continue_over_limit_gets_413_without_continue() {
    let up = Upstream::start();
    let gw = Gateway::start("max_body_bytes = 100\n", &proxy_all(&[up.port], ""));
    let mut c = gw.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 413, "{:?}", r);
    assert_eq!(r.body_str(), TOO_LARGE);
    assert_eq!(up.seen().len(), 0);
}

#[test]
fn expect_100_continue_no_route_gets_404_without_continue() {
    let gw = Gateway::start("", &mock_route("m", "/only", 200, "x"));
    let mut c = gw.connect();
    c.send(b"POST /elsewhere HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 404, "{:?}", r);
    assert_eq!(r.body_str(), NOT_FOUND);
}

#[test]
fn upstream_refused_gives_502_and_keeps_connection() {
    let dead = dead_port();
    let gw = Gateway::start("", &proxy_all(&[dead], ""));
    let mut c = gw.connect();
    let r = c.get("/x");
    assert_eq!(r.status, 502, "{:?}", r);
    assert_eq!(r.body_str(), BAD_GATEWAY);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length"),
        Some(BAD_GATEWAY.len().to_string().as_str())
    );
    assert!(r.has("x-request-id"));
    // request was fully read: connection kept
    let r2 = c.get("/y");
    assert_eq!(r2.status, 502);
    assert_eq!(r2.body_str(), BAD_GATEWAY);
}

/// Garbage instead of a response, or a close without one: 502, and the client
/// connection still serves.
#[test]
fn upstream_garbage_or_close_gives_502() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    for path in ["/garbage", "/reset"] {
        let mut c = gw.connect();
        let r = c.get(path);
        assert_eq!(r.status, 502, "{}: {:?}", path, r);
        assert_eq!(r.body_str(), BAD_GATEWAY);
        let r2 = c.get("/fine");
        assert_eq!(r2.status, 200);
    }
}

#[test]
fn upstream_slow_gives_504() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], "response_timeout = \"300ms\""));
    let mut c = gw.connect();
    let r = c.get("/slow?ms=3000");
    assert_eq!(r.status, 504, "{:?}", r);
    assert_eq!(r.body_str(), GATEWAY_TIMEOUT);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.has("x-request-id"));
}

#[test]
fn upstream_fast_enough_within_response_timeout() {
    let up = Upstream::start();
    let gw = Gateway::start("", &proxy_all(&[up.port], "response_timeout = \"5s\""));
    let mut c = gw.connect();
    let r = c.get("/slow?ms=100");
    assert_eq!(r.status, 200, "{:?}", r);
}

#[test]
fn failover_from_dead_target_to_live_one() {
    let up = Upstream::start();
    let dead = dead_port();
    let gw = Gateway::start("", &proxy_all(&[dead, up.port], ""));
    // new connections and one keep-alive connection: every request succeeds
    for i in 0..6 {
        let mut c = gw.connect();
        let r = c.get(&format!("/f/{}", i));
        assert_eq!(r.status, 200, "request {}: {:?}", i, r);
        assert_eq!(
            r.header("x-upstream-port"),
            Some(up.port.to_string().as_str())
        );
    }
    let mut c = gw.connect();
    for i in 0..6 {
        let r = c.get(&format!("/g/{}", i));
        assert_eq!(r.status, 200, "request {}: {:?}", i, r);
    }
    assert_eq!(up.seen().len(), 12);
}

#[test]
fn round_robin_spreads_requests() {
    let a = Upstream::start();
    let b = Upstream::start();
    let gw = Gateway::start(
        "",
        &proxy_all(&[a.port, b.port], "balance = \"round_robin\""),
    );
    let mut c = gw.connect();
    for i in 0..4 {
        assert_eq!(c.get(&format!("/rr/{}", i)).status, 200);
    }
    assert_eq!(a.seen().len(), 2, "round robin over 2 targets, 4 requests");
    assert_eq!(b.seen().len(), 2, "round robin over 2 targets, 4 requests");
}

#[test]
fn hop_by_hop_request_headers_removed() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(
        b"GET /hop-req HTTP/1.1\r\nHost: example.test\r\n\
          Connection: keep-alive, X-Drop-Me\r\n\
          X-Drop-Me: 1\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\n\
          TE: trailers\r\n\
          Trailer: x-t\r\n\
          Upgrade: foo/1\r\n\
          Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
          X-Keep: yes\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{:?}", r);
    let seen = up.last();
    for h in [
        "x-drop-me",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "transfer-encoding",
    ] {
        assert!(
            !seen.has(h),
            "hop-by-hop header {:?} forwarded: {:?}",
            h,
            seen.headers
        );
    }
    for v in seen.header_all("connection") {
        assert_eq!(
            v.to_ascii_lowercase(),
            "keep-alive",
            "connection header towards upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-keep"), Some("yes"));
}

#[test]
fn hop_by_hop_response_headers_removed() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/hop");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), "hop");
    for h in [
        "x-up-hop",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert!(
            !r.has(h),
            "hop-by-hop header {:?} returned: {:?}",
            h,
            r.headers
        );
    }
    for v in r.header_all("connection") {
        assert_eq!(
            v.to_ascii_lowercase(),
            "keep-alive",
            "connection header towards client: {:?}",
            r.headers
        );
    }
    assert_eq!(r.header("x-up-keep"), Some("yes"));
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn upstream_interim_responses_skipped() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/interim");
    assert_eq!(
        r.status, 200,
        "first response must be the final one: {:?}",
        r
    );
    assert_eq!(body_lines(&r)[1], "target=/interim");
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn upstream_204_and_status_passthrough() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/status?code=204");
    assert_eq!(r.status, 204, "{:?}", r);
    assert!(r.body.is_empty());
    let r = c.get("/status?code=418");
    assert_eq!(r.status, 418);
    assert_eq!(r.body_str(), "status 418");
    let r = c.get("/status?code=500");
    assert_eq!(r.status, 500);
    assert_eq!(r.body_str(), "status 500");
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn x_forwarded_headers_added() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(b"GET /xf HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.header_all("x-forwarded-host"), vec!["example.test"]);
}

#[test]
fn untrusted_peer_xff_replaced() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(
        b"GET /xf HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.header_all("x-forwarded-host"), vec!["example.test"]);
}

#[test]
fn untrusted_peer_when_trusted_proxies_do_not_match() {
    let up = Upstream::start();
    let gw = Gateway::start(
        "trusted_proxies = [\"10.0.0.0/8\"]\n",
        &proxy_all(&[up.port], ""),
    );
    let mut c = gw.connect();
    let r =
        c.request(b"GET /xf HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header_all("x-forwarded-for"), vec!["127.0.0.1"]);
}

#[test]
fn trusted_proxy_xff_appended() {
    let up = Upstream::start();
    let gw = Gateway::start(
        "trusted_proxies = [\"127.0.0.0/8\"]\n",
        &proxy_all(&[up.port], ""),
    );
    let mut c = gw.connect();
    let r =
        c.request(b"GET /xf HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().header_all("x-forwarded-for"),
        vec!["1.2.3.4, 127.0.0.1"]
    );
    // without an incoming XFF the peer alone
    let r = c.request(b"GET /xf2 HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(up.last().header_all("x-forwarded-for"), vec!["127.0.0.1"]);
}

fn request_id_roundtrip(sent: Option<&str>) -> (String, String) {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let raw = match sent {
        Some(id) => format!(
            "GET /rid HTTP/1.1\r\nHost: example.test\r\nX-Request-Id: {}\r\n\r\n",
            id
        ),
        None => "GET /rid HTTP/1.1\r\nHost: example.test\r\n\r\n".to_string(),
    };
    let r = c.request(raw.as_bytes());
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.header_all("x-request-id").len(), 1, "{:?}", r.headers);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-request-id").len(),
        1,
        "{:?}",
        seen.headers
    );
    (
        r.header("x-request-id").unwrap().to_string(),
        seen.header("x-request-id").unwrap().to_string(),
    )
}

#[test]
fn request_id_kept_when_sane() {
    let id = "abc-123.X:y_z";
    let (resp, up) = request_id_roundtrip(Some(id));
    assert_eq!(resp, id);
    assert_eq!(up, id);
}

#[test]
fn request_id_kept_at_128_chars() {
    let id = "a".repeat(128);
    let (resp, up) = request_id_roundtrip(Some(&id));
    assert_eq!(resp, id);
    assert_eq!(up, id);
}

#[test]
fn request_id_generated_when_absent() {
    let (resp, up) = request_id_roundtrip(None);
    assert!(is_uuid_v4(&resp), "not a uuid v4: {:?}", resp);
    assert_eq!(resp, up);
}

#[test]
fn request_id_generated_when_too_long() {
    let id = "a".repeat(129);
    let (resp, up) = request_id_roundtrip(Some(&id));
    assert!(is_uuid_v4(&resp), "not a uuid v4: {:?}", resp);
    assert_eq!(resp, up);
}

#[test]
fn request_id_generated_when_bad_chars() {
    for id in ["has space", "slash/no", "semi;colon", "quote\"x", "ümlaut"] {
        let (resp, up) = request_id_roundtrip(Some(id));
        assert!(is_uuid_v4(&resp), "id {:?}: not a uuid v4: {:?}", id, resp);
        assert_eq!(resp, up);
    }
}

#[test]
fn request_id_generated_when_empty() {
    let (resp, up) = request_id_roundtrip(Some(""));
    assert!(is_uuid_v4(&resp), "not a uuid v4: {:?}", resp);
    assert_eq!(resp, up);
}

#[test]
fn request_ids_differ_between_requests() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let a = c.get("/1");
    let b = c.get("/2");
    let ia = a.header("x-request-id").unwrap();
    let ib = b.header("x-request-id").unwrap();
    assert!(is_uuid_v4(ia) && is_uuid_v4(ib));
    assert_ne!(ia, ib);
}

#[test]
fn absolute_form_target_sent_upstream_as_origin_form() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r =
        c.request(b"GET http://example.test/abs/path?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(up.last().target, "/abs/path?x=1");
}

#[test]
fn http10_client_upstream_gets_http11() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(b"GET /old HTTP/1.0\r\nHost: example.test\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(body_lines(&r)[1], "target=/old");
    assert_eq!(up.last().version, "HTTP/1.1");
}

#[test]
fn client_connection_close_is_honoured() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(b"GET /bye HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();
    // upstream side stays keep-alive: the gateway does not forward "close"
    let seen = up.last();
    for v in seen.header_all("connection") {
        assert_eq!(v.to_ascii_lowercase(), "keep-alive");
    }
}

#[test]
fn multi_megabyte_response_streamed() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let n = 5 * 1024 * 1024 + 7;
    let r = c.get(&format!("/big?bytes={}", n));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), n);
    let mut chk = PatternChecker::new();
    chk.feed(&r.body);
    assert!(chk.ok, "response body corrupted");
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn multi_megabyte_upload_streamed() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let n: u64 = 3 * 1024 * 1024 + 5;
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: {}\r\n\r\n",
            n
        )
        .as_bytes(),
    );
    write_pattern(c.reader.get_mut(), n).unwrap();
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), format!("received={} pattern=ok", n));
}

#[test]
fn idle_client_connection_closed_after_idle_timeout() {
    let gw = Gateway::start("idle_timeout = \"1s\"\n", &mock_route("m", "/", 200, "ok"));
    let mut c = gw.connect();
    assert_eq!(c.get("/x").status, 200);
    c.assert_closed();
}

#[test]
fn over_max_connections_gets_503_and_close() {
    let gw = Gateway::start("max_connections = 2\n", &mock_route("m", "/", 200, "ok"));
    let mut a = gw.connect();
    let mut b = gw.connect();
    assert_eq!(a.get("/a").status, 200);
    assert_eq!(b.get("/b").status, 200);
    let mut c = gw.connect();
    let _ = c.try_send(&get_req("/c", "test.local"));
    let r = c.try_read_response(false).expect("a 503 response");
    assert_eq!(r.status, 503, "{:?}", r);
    assert_eq!(r.body_str(), SERVICE_UNAVAILABLE);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.has("x-request-id"), "{:?}", r.headers);
    c.assert_closed();
    // existing connections unaffected
    assert_eq!(a.get("/a2").status, 200);
    // after one closes, a new connection is served
    drop(b);
    let mut ok = false;
    for _ in 0..50 {
        let mut d = gw.connect();
        let _ = d.try_send(&get_req("/d", "test.local"));
        if let Ok(r) = d.try_read_response(false) {
            if r.status == 200 {
                ok = true;
                break;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "a slot must free up after a connection closes");
}

#[test]
fn least_conn_avoids_busy_target() {
    let a = Upstream::start();
    let b = Upstream::start();
    let gw = Gateway::start(
        "",
        &proxy_all(&[a.port, b.port], "balance = \"least_conn\""),
    );
    let port = gw.port;
    let t = thread::spawn(move || {
        let mut c = Client::connect(port);
        c.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.try_read_response(false)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let busy = loop {
        if a.wait_arrival("/slow", Duration::from_millis(10)) {
            break a.port;
        }
        if b.wait_arrival("/slow", Duration::from_millis(10)) {
            break b.port;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slow request never arrived"
        );
    };
    let idle = if busy == a.port { b.port } else { a.port };
    for i in 0..3 {
        let mut c = gw.connect();
        let r = c.get(&format!("/fast/{}", i));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-upstream-port"),
            Some(idle.to_string().as_str()),
            "least_conn must pick the target without the in-flight request"
        );
    }
    let slow = t.join().unwrap().expect("slow response");
    assert_eq!(slow.status, 200);
}

#[test]
fn upstream_connect_timeout_gives_504() {
    // a listener that never accepts, with its accept queue filled: further
    // SYNs are dropped, so connecting to it times out
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let mut full = false;
    for _ in 0..4000 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(
        full,
        "could not fill the accept queue of the black-hole listener"
    );
    let gw = Gateway::start(
        "",
        &proxy_all(&[addr.port()], "connect_timeout = \"300ms\""),
    );
    let mut c = gw.connect();
    let r = c.get("/x");
    assert_eq!(r.status, 504, "{:?}", r);
    assert_eq!(r.body_str(), GATEWAY_TIMEOUT);
    assert_eq!(r.header("content-type"), Some("application/json"));
    drop(held);
    drop(listener);
}

#[test]
fn upstream_own_request_id_not_duplicated() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(
        b"GET /own-rid HTTP/1.1\r\nHost: example.test\r\nX-Request-Id: client-id-7\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(
        r.header_all("x-request-id"),
        vec!["client-id-7"],
        "{:?}",
        r.headers
    );
    assert_eq!(up.last().header("x-request-id"), Some("client-id-7"));
}

#[test]
fn upstream_invalid_content_length_gives_502() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/badcl");
    assert_eq!(r.status, 502, "{:?}", r);
    assert_eq!(r.body_str(), BAD_GATEWAY);
    assert_eq!(c.get("/fine").status, 200);
}

#[test]
fn upstream_truncated_body_closes_client_connection() {
    // the head is already forwarded: the only honest signal left is closing
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    c.send(&get_req("/truncated", "example.test"));
    match c.try_read_response(false) {
        Err(_) => {}
        Ok(r) => panic!(
            "a truncated upstream body must not produce a complete response: {:?}",
            r
        ),
    }
    c.assert_closed();
}

#[test]
fn many_pipelined_requests_in_one_write() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let mut raw = Vec::new();
    for i in 0..100 {
        raw.extend_from_slice(
            format!("GET /pipe/{} HTTP/1.1\r\nHost: example.test\r\n\r\n", i).as_bytes(),
        );
    }
    c.send(&raw);
    for i in 0..100 {
        let r = c.read_response();
        assert_eq!(r.status, 200, "response {}: {:?}", i, r);
        assert_eq!(body_lines(&r)[1], format!("target=/pipe/{}", i));
    }
    assert_eq!(up.accepted(), 1);
}

#[test]
fn head_to_chunked_upstream_has_no_body() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    c.send(b"HEAD /chunked HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let r = c.read_head_response();
    assert_eq!(r.status, 200, "{:?}", r);
    let after = c.get("/after");
    assert_eq!(after.status, 200, "{:?}", after);
    assert_eq!(body_lines(&after)[1], "target=/after");
}

#[test]
fn head_to_big_upstream_keeps_content_length_and_sends_no_body() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    c.send(b"HEAD /big?bytes=100000 HTTP/1.1\r\nHost: example.test\r\n\r\n");
    let r = c.read_head_response();
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.header("content-length"), Some("100000"));
    let after = c.get("/after");
    assert_eq!(after.status, 200, "{:?}", after);
    assert_eq!(body_lines(&after)[1], "target=/after");
}

#[test]
fn x_forwarded_host_keeps_port() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(b"GET /xf HTTP/1.1\r\nHost: example.test:8080\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().header_all("x-forwarded-host"),
        vec!["example.test:8080"]
    );
}

#[test]
fn trusted_proxy_multiple_xff_headers_combined() {
    let up = Upstream::start();
    let gw = Gateway::start(
        "trusted_proxies = [\"127.0.0.1/32\"]\n",
        &proxy_all(&[up.port], ""),
    );
    let mut c = gw.connect();
    let r = c.request(
        b"GET /xf HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().header_all("x-forwarded-for"),
        vec!["1.1.1.1, 2.2.2.2, 127.0.0.1"]
    );
}

#[test]
fn dots_in_query_are_not_path_segments() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.get("/q?next=../../etc&x=./y");
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(up.last().target, "/q?next=../../etc&x=./y");
}

#[test]
fn client_abort_mid_upload_does_not_hurt_gateway() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    {
        let mut c = gw.connect();
        c.send(b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1000000\r\n\r\n");
        c.send(&[b'x'; 5000]);
        // dropped: connection closed mid-body
    }
    {
        let mut c = gw.connect();
        c.send(&get_req("/slow?ms=500", "example.test"));
        // dropped while the upstream is still working
    }
    for i in 0..5 {
        let mut c = gw.connect();
        let r = c.get(&format!("/alive/{}", i));
        assert_eq!(r.status, 200, "{:?}", r);
        assert_eq!(body_lines(&r)[1], format!("target=/alive/{}", i));
    }
    // let the slow one finish upstream, then check again (a stale pooled
    // connection must not leak its late response into another request)
    thread::sleep(Duration::from_millis(700));
    let mut c = gw.connect();
    for i in 0..5 {
        let r = c.get(&format!("/later/{}", i));
        assert_eq!(r.status, 200, "{:?}", r);
        assert_eq!(body_lines(&r)[1], format!("target=/later/{}", i));
    }
}

// ---- found in review (formerly tests/regressions.rs) ------------------------

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

#[test]
fn identity_headers_a_client_sends_never_reach_the_upstream() {
    let up = Upstream::start();
    let gw = gw_for(&up);
    let mut c = gw.connect();
    let r = c.request(
        b"GET /x HTTP/1.1\r\nHost: a\r\nX-Principal: admin\r\nX-API-Key-Name: acme\r\nX-Usage-Plan: pro\r\nX-Client-Cert-Subject: CN=root\r\nX-Other: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = up.last();
    for h in [
        "x-principal",
        "x-api-key-name",
        "x-usage-plan",
        "x-client-cert-subject",
    ] {
        assert_eq!(
            seen.header(h),
            None,
            "{h} reached the upstream on a route without those stages"
        );
    }
    assert_eq!(seen.header("x-other"), Some("kept"));
}
