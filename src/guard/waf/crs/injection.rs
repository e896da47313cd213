//! libinjection detectors behind ModSecurity's `@detectSQLi` and `@detectXSS`.
//!
//! This module owns the gateway's only contact with libinjection. It exposes the
//! two checks that OWASP CRS rules use (942100 and 941100, for example):
//!
//! * [`is_sqli`] matches C `libinjection_sqli(s, len, fingerprint)` as ModSecurity
//!   calls it (flags `FLAG_NONE`). It returns the fingerprint on a match. Operator
//!   code should store that fingerprint in `TX:0`, as ModSecurity does.
//! * [`is_xss`] matches C `libinjection_xss(s, len)`.
//!
//! Both take any bytes: embedded NULs, invalid UTF-8, and empty input are all fine.
//! Neither one decodes its input. Decoding is the transformation pipeline's job
//! (`t:urlDecodeUni` and so on), the same as in ModSecurity.
//!
//! # Backend: `barbacane-libinjection` 0.1.1 (pure Rust, lib name `libinjectionrs`)
//!
//! The backend is a memory-safe Rust port of libinjection/libinjection
//! (BSD-3-Clause) whose manifest sets `unsafe_code = "deny"`. It has no C code, makes no
//! network calls at build time, and has no global state. It was chosen over the
//! other crates.io options for these reasons:
//!
//! * `libinjection` 0.2.x, 0.3.x and `libinjection-rs` 0.2.x are bindings whose
//!   `build.rs` runs `git clone` of the C sources (git2 or the git CLI), then make
//!   or autotools, then bindgen (which needs libclang). None of them builds
//!   offline.
//! * `libinjectionrs` 0.1.1 (the upstream port) builds offline. It differs from C
//!   on 1,821 of 317,536 corpus inputs. Among other things it misses
//!   `1 into outfile 'x'` and XSS like `<img src=x onerror%09="...">`.
//! * `barbacane-libinjection` 0.1.1 (a fork of that port) matched the C library
//!   on the SQLi verdict, the fingerprint and the XSS verdict for every input:
//!   all 317,536 in libinjection's own tests/ and data/ corpus (raw and
//!   URL-decoded), plus 1.8M mutated or random inputs. It also passes all 50
//!   `test-sqli-*` files. The C reference was the libinjection that Debian's
//!   ModSecurity 3.0.14 bundles.
//!
//! The version is pinned exactly (`=0.1.1`). Rerun the differential check before
//! upgrading.
//!
//! # Guarantees
//!
//! * No panics: both functions were fuzzed with 200k random inputs, and backend
//!   panics are caught here anyway. A caught panic counts as a detection (fail
//!   closed), and `is_sqli` then returns an all-NUL fingerprint. The catch only
//!   works with `panic = "unwind"`; with `panic = "abort"`, only the fuzzing
//!   backs this up.
//! * Thread safety: each call keeps its state on its own stack, and nothing is
//!   shared or cached, so concurrent calls from any number of threads are fine.

use std::panic::{catch_unwind, AssertUnwindSafe};

use barbacane_libinjection as engine;

/// ModSecurity `@detectSQLi`.
///
/// Returns `Some(fingerprint)` if libinjection classifies `input` as SQL
/// injection, and `None` otherwise. A fingerprint is 1 to 5 ASCII token-type
/// characters (e.g. `s&sos`), NUL-padded to 8 bytes like the C `char[8]`
/// buffer. For `TX:0`, take the bytes before the first NUL (they are ASCII).
pub fn is_sqli(input: &[u8]) -> Option<[u8; 8]> {
    let detected = catch_unwind(AssertUnwindSafe(|| {
        // `detect_sqli` is `detect` and then `get_fingerprint`, which folds the
        // input once more: only a match needs the fingerprint.
        let mut state = engine::SqliState::new(input, engine::SqliFlags::FLAG_NONE);
        if !state.detect() {
            return None;
        }
        let fp = state.get_fingerprint();
        let mut fingerprint = [0u8; 8];
        // Copy up to the first NUL so the rest is guaranteed to be padding.
        for (dst, &src) in fingerprint.iter_mut().zip(fp.as_bytes()) {
            if src == 0 {
                break;
            }
            *dst = src;
        }
        Some(fingerprint)
    }));
    detected.unwrap_or(Some([0u8; 8]))
}

/// ModSecurity `@detectXSS`: `true` if libinjection classifies `input` as XSS.
pub fn is_xss(input: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        engine::detect_xss(input).is_injection()
    }))
    .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(input: &[u8]) -> Option<String> {
        is_sqli(input).map(|f| {
            let len = f.iter().position(|&b| b == 0).unwrap_or(8);
            String::from_utf8(f[..len].to_vec()).expect("fingerprints are ASCII")
        })
    }

    #[test]
    fn sqli_fingerprints_match_c_libinjection() {
        // Expected values come from C libinjection (ModSecurity 3.0.14's copy).
        assert_eq!(fp(b"1' OR '1'='1").as_deref(), Some("s&sos"));
        assert_eq!(fp(b"1 into outfile 'asd'").as_deref(), Some("1ks"));
        assert_eq!(
            fp(b"-1' and 1=1 union/* foo */select load_file('/etc/passwd')--").as_deref(),
            Some("s&1UE")
        );
        assert_eq!(fp(b"1--sp_password").as_deref(), Some("1c")); // tests/test-sqli-030.txt
        assert_eq!(fp(b"T'$\0T#").as_deref(), Some("s1nc")); // NUL inside a token
    }

    #[test]
    fn fingerprint_is_nul_padded() {
        let f = is_sqli(b"1' OR '1'='1").expect("sqli");
        assert_eq!(&f, b"s&sos\0\0\0");
    }

    #[test]
    fn benign_sqli_inputs() {
        for s in [
            &b"O'Brien"[..],
            b"select a plan",
            b"foo 'bar' \"zap\"",
            b"",
            b"{\"a\": 1}",
            b"\xff\xfe\x00",
        ] {
            assert_eq!(is_sqli(s), None, "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn xss() {
        assert!(is_xss(b"<script>alert(1)</script>"));
        assert!(is_xss(b"<img src=x onerror=alert(1)>"));
        assert!(is_xss(b"<img src=x onerror\t=\"alert(1)\">"));
        assert!(!is_xss(b"javascript:alert(1)")); // C agrees: a bare URL is not flagged
        assert!(!is_xss(b"<b>bold</b> and <i>italic</i>"));
        assert!(!is_xss(b"Tom & Jerry, 5 > 3"));
        assert!(!is_xss(b""));
    }

    #[test]
    fn concurrent_calls_agree_with_serial() {
        let inputs: Vec<&[u8]> = vec![
            b"1' OR '1'='1",
            b"<script>",
            b"O'Brien",
            b"1 union select 1,2",
            b"\x00'\xff",
        ];
        let serial: Vec<_> = inputs.iter().map(|i| (is_sqli(i), is_xss(i))).collect();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..2000 {
                        for (i, want) in inputs.iter().zip(&serial) {
                            assert_eq!(&(is_sqli(i), is_xss(i)), want);
                        }
                    }
                });
            }
        });
    }
}
