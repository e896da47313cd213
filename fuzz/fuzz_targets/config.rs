//! Config text: loading and compiling never panics, and errors always render.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portcullis::config::{parse, Source};
use portcullis::gateway::Gateway;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = Source::new("fuzz.toml", text);
    match parse(&source) {
        Ok(config) => {
            if let Err(e) = Gateway::compile(&config, &source) {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
