//! Unit tests of `request`.

use super::*;

fn parse(s: &str) -> Result<Option<RequestHead>, HeadError> {
    parse_head(s.as_bytes(), &mut Vec::new())
}

fn status(s: &str) -> u16 {
    match parse(s) {
        Ok(Some(_)) => 200,
        Ok(None) => 0,
        Err(e) => e.status,
    }
}

#[test]
fn simple_get() {
    let s = "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: abc-1\r\n\r\nrest";
    let mut hs = Vec::new();
    let h = parse_head(s.as_bytes(), &mut hs).unwrap().unwrap();
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.target.get(s.as_bytes()), b"/a/b?x=1");
    assert_eq!(h.path.get(s.as_bytes()), b"/a/b");
    assert_eq!(h.host.unwrap().get(s.as_bytes()), b"example.com");
    assert_eq!(h.request_id.unwrap().get(s.as_bytes()), b"abc-1");
    assert_eq!(h.body, BodyKind::None);
    assert!(h.keep_alive);
    assert_eq!(&s[h.len..], "rest");
}

#[test]
fn partial() {
    assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\n"), 0);
}

#[test]
fn framing() {
    let ok = "POST / HTTP/1.1\r\nHost: a\r\n";
    assert_eq!(status(&format!("{ok}Content-Length: 5\r\n\r\n")), 200);
    assert_eq!(
        status(&format!(
            "{ok}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
        )),
        200
    );
    assert_eq!(
        status(&format!("{ok}Transfer-Encoding: chunked\r\n\r\n")),
        200
    );
    assert_eq!(
        status(&format!("{ok}Transfer-Encoding: Chunked\r\n\r\n")),
        200
    );
    for bad in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: identity\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "X: a\r\n b\r\n",
        "X : a\r\n",
        "X: a\rb\r\n",
        "X: a\0b\r\n",
        "Host: b\r\n",
    ] {
        assert_eq!(status(&format!("{ok}{bad}\r\n")), 400, "{bad:?}");
    }
    assert_eq!(
        status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 200);
}

#[test]
fn targets() {
    assert_eq!(
        status("GET http://a.com/x HTTP/1.1\r\nHost: a.com\r\n\r\n"),
        200
    );
    assert_eq!(
        status("GET http://b.com/x HTTP/1.1\r\nHost: a.com\r\n\r\n"),
        400
    );
    assert_eq!(status("GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("GET /a/%2E%2e/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("GET /a/.../b HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_eq!(status("GET /a/.x HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    assert_eq!(status("GET x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
    assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
    for bad in [
        "/a/..;x/b",
        "/a/%2fb",
        "/a/%5Cb",
        "/a\\b",
        "/a/%zz",
        "/a/%2",
        "/a%00",
    ] {
        assert_eq!(
            status(&format!("GET {bad} HTTP/1.1\r\nHost: a\r\n\r\n")),
            400,
            "{bad}"
        );
    }
}

#[test]
fn normalized_for_routing() {
    let mut hs = Vec::new();
    let s = "GET //%61dmin/%7e%41%2A//x?q HTTP/1.1\r\nHost: a\r\n\r\n";
    let h = parse_head(s.as_bytes(), &mut hs).unwrap().unwrap();
    assert!(h.normalize);
    assert_eq!(normalize_path(h.path.get(s.as_bytes())), b"/admin/~A%2A/x");
    assert_eq!(
        normalize_path(b"/admin;jsessionid=1/secret;v=2"),
        b"/admin/secret"
    );
    let plain = "GET /a/b HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(
        !parse_head(plain.as_bytes(), &mut hs)
            .unwrap()
            .unwrap()
            .normalize
    );
}

#[test]
fn connection_named_headers_are_hop_by_hop() {
    let s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-secret, close\r\nX-Secret: 1\r\nX-Keep: 2\r\n\r\n";
    let mut hs = Vec::new();
    let h = parse_head(s.as_bytes(), &mut hs).unwrap().unwrap();
    assert!(!h.keep_alive);
    let roles: Vec<_> = hs.iter().map(|h| h.role).collect();
    assert_eq!(
        roles,
        [
            HeaderRole::Host,
            HeaderRole::HopByHop,
            HeaderRole::HopByHop,
            HeaderRole::EndToEnd
        ]
    );
}

#[test]
fn too_many_headers() {
    let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..MAX_HEADERS {
        s.push_str(&format!("X-{i}: v\r\n"));
    }
    s.push_str("\r\n");
    assert_eq!(status(&s), 431);
}

proptest::proptest! {
    /// httparse refuses NUL and bare CR anywhere in a head (RFC 9112 §2.2); the
    /// gateway relies on that rather than scanning the head again.
    #[test]
    fn nul_or_bare_cr_never_accepted(pos in 0usize..1000, nul in proptest::bool::ANY) {
        let head = b"POST /v1/orders?x=1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nContent-Length: 3\r\n\r\n";
        let pos = pos % head.len();
        let mut bad = head.to_vec();
        bad.insert(pos, if nul { 0 } else { b'\r' });
        if let Ok(Some(h)) = parse_head(&bad, &mut Vec::new()) {
            // Only acceptable if the byte landed outside the head that was accepted.
            proptest::prop_assert!(h.len <= pos, "accepted {:?}", String::from_utf8_lossy(&bad));
        }
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = parse_head(&bytes, &mut Vec::new());
    }
}
