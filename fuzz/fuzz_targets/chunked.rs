//! The chunked scanner: no panics, and feeding the input whole or split in two
//! gives the same answer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis::http::chunked::ChunkedScanner;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len();
    let body = &data[1..];
    let mut whole = ChunkedScanner::new(1024);
    let a = whole.feed(body, |_| {});
    let mut parts = ChunkedScanner::new(1024);
    let split = split.min(body.len());
    let b = parts.feed(&body[..split], |_| {}).and_then(|n1| {
        if parts.is_done() {
            Ok(n1)
        } else {
            parts.feed(&body[split..], |_| {}).map(|n2| n1 + n2)
        }
    });
    match (a, b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x, y);
            assert_eq!(whole.is_done(), parts.is_done());
            assert_eq!(whole.data_len, parts.data_len);
        }
        (Err(_), Err(_)) => {}
        other => panic!("split changed the result: {other:?}"),
    }
});
