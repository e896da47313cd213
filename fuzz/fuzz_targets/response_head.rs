//! Upstream response heads: parsing never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis::http::response::parse_response;

fuzz_target!(|data: &[u8]| {
    let mut headers = Vec::new();
    let _ = parse_response(data, false, &mut headers);
    let _ = parse_response(data, true, &mut headers);
});
