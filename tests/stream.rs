//! Bodies are streamed, not buffered: 1 GiB each way through the gateway while
//! its peak RSS stays under 64 MiB.

mod common;

use common::*;
use std::io::BufRead;

const GIB: u64 = 1024 * 1024 * 1024;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

fn stream_gw(up: &Upstream) -> Gateway {
    Gateway::start(
        "max_body_bytes = \"2GiB\"\n",
        &proxy_all(&[up.port], "response_timeout = \"120s\""),
    )
}

#[test]
fn upload_1gib_content_length_streamed() {
    let up = Upstream::start();
    let gw = stream_gw(&up);
    let mut c = gw.connect();
    c.send(
        format!(
            "POST /upload HTTP/1.1\r\nHost: stream.test\r\nContent-Length: {}\r\n\r\n",
            GIB
        )
        .as_bytes(),
    );
    if let Err(e) = write_pattern(c.reader.get_mut(), GIB) {
        let r = c.try_read_response(false);
        panic!(
            "upload write failed: {} (response: {:?})\n{}",
            e,
            r,
            gw.logs()
        );
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), format!("received={} pattern=ok", GIB));
    let seen = up.last();
    assert_eq!(seen.body_len, GIB);
    assert!(seen.pattern_ok);
    let hwm = gw.vm_hwm_kib();
    eprintln!(
        "upload_1gib_content_length_streamed: gateway peak RSS {} KiB",
        hwm
    );
    assert!(
        hwm < RSS_LIMIT_KIB,
        "gateway peak RSS {} KiB >= {} KiB",
        hwm,
        RSS_LIMIT_KIB
    );
    // connection still usable
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn download_1gib_streamed() {
    let up = Upstream::start();
    let gw = stream_gw(&up);
    let mut c = gw.connect();
    c.send(
        format!(
            "GET /big?bytes={} HTTP/1.1\r\nHost: stream.test\r\n\r\n",
            GIB
        )
        .as_bytes(),
    );
    // read the head ourselves, then the body in blocks without keeping it
    let mut count = 0usize;
    let status = read_line(&mut c.reader, &mut count).expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{:?}", status);
    let mut cl: Option<u64> = None;
    let mut chunked = false;
    loop {
        let l = read_line(&mut c.reader, &mut count).expect("header line");
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        let k = k.trim().to_ascii_lowercase();
        if k == "content-length" {
            cl = Some(v.trim().parse().unwrap());
        }
        if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let mut chk = PatternChecker::new();
    if chunked {
        read_chunked_into(&mut c.reader, &mut count, &mut |d| chk.feed(d)).expect("chunked body");
    } else {
        assert_eq!(cl, Some(GIB), "content-length of the proxied download");
        let mut left = GIB;
        while left > 0 {
            let buf = c.reader.fill_buf().expect("read body");
            assert!(!buf.is_empty(), "EOF after {} of {} bytes", GIB - left, GIB);
            let n = (buf.len() as u64).min(left) as usize;
            chk.feed(&buf[..n]);
            c.reader.consume(n);
            left -= n as u64;
        }
    }
    assert_eq!(chk.offset, GIB);
    assert!(chk.ok, "download corrupted");
    let hwm = gw.vm_hwm_kib();
    eprintln!("download_1gib_streamed: gateway peak RSS {} KiB", hwm);
    assert!(
        hwm < RSS_LIMIT_KIB,
        "gateway peak RSS {} KiB >= {} KiB",
        hwm,
        RSS_LIMIT_KIB
    );
    // connection still usable
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn upload_1gib_chunked_streamed() {
    let up = Upstream::start();
    let gw = stream_gw(&up);
    let mut c = gw.connect();
    c.send(b"POST /upload HTTP/1.1\r\nHost: stream.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    if let Err(e) = write_pattern_chunked(c.reader.get_mut(), GIB) {
        let r = c.try_read_response(false);
        panic!(
            "upload write failed: {} (response: {:?})\n{}",
            e,
            r,
            gw.logs()
        );
    }
    let r = c.read_response();
    assert_eq!(r.status, 200, "{:?}", r);
    assert_eq!(r.body_str(), format!("received={} pattern=ok", GIB));
    let hwm = gw.vm_hwm_kib();
    eprintln!("upload_1gib_chunked_streamed: gateway peak RSS {} KiB", hwm);
    assert!(
        hwm < RSS_LIMIT_KIB,
        "gateway peak RSS {} KiB >= {} KiB",
        hwm,
        RSS_LIMIT_KIB
    );
    assert_eq!(c.get("/after").status, 200);
}

#[test]
fn download_1gib_chunked_streamed() {
    let up = Upstream::start();
    let gw = stream_gw(&up);
    let mut c = gw.connect();
    c.send(
        format!(
            "GET /bigchunked?bytes={} HTTP/1.1\r\nHost: stream.test\r\n\r\n",
            GIB
        )
        .as_bytes(),
    );
    let mut count = 0usize;
    let status = read_line(&mut c.reader, &mut count).expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{:?}", status);
    let mut chunked = false;
    loop {
        let l = read_line(&mut c.reader, &mut count).expect("header line");
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        if k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked" {
            chunked = true;
        }
    }
    assert!(
        chunked,
        "a chunked upstream body is passed through as chunked"
    );
    let mut chk = PatternChecker::new();
    read_chunked_into(&mut c.reader, &mut count, &mut |d| chk.feed(d)).expect("chunked body");
    assert_eq!(chk.offset, GIB);
    assert!(chk.ok, "download corrupted");
    let hwm = gw.vm_hwm_kib();
    eprintln!(
        "download_1gib_chunked_streamed: gateway peak RSS {} KiB",
        hwm
    );
    assert!(
        hwm < RSS_LIMIT_KIB,
        "gateway peak RSS {} KiB >= {} KiB",
        hwm,
        RSS_LIMIT_KIB
    );
    assert_eq!(c.get("/after").status, 200);
}
