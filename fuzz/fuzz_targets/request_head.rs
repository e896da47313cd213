//! Request heads: parsing never panics, and an accepted head's spans stay inside it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis::http::request::parse_head;

fuzz_target!(|data: &[u8]| {
    let mut headers = Vec::new();
    if let Ok(Some(head)) = parse_head(data, &mut headers) {
        assert!(head.len <= data.len());
        assert!(head.target.end as usize <= head.len);
        for h in &headers {
            assert!(h.value.end as usize <= head.len);
        }
    }
});
