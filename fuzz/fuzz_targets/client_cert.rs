//! Client certificates (DER, as rustls hands them over): reading their facts and
//! matching `subjects` patterns never panics, and header lines never carry a
//! control character.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis::tls::ClientCert;

fuzz_target!(|data: &[u8]| {
    if let Some(c) = ClientCert::from_der(data) {
        let lines = c.header_lines.replace("\r\n", "");
        assert!(!lines.chars().any(char::is_control));
        let _ = c.matches("CN=a,O=b");
        let _ = c.matches(&c.subject);
        let _ = c.matches("URI:spiffe://x");
    }
});
