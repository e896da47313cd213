//! Unit tests of `transform`.
//!
//! `transformations.json` vendors libmodsecurity v3's own regression cases
//! (owasp-modsecurity/secrules-language-tests, `transformations/*.json`),
//! normalised: every string char is one byte (U+0000–U+00FF), and the
//! upstream runner's rewriting of the literal text `\xHH` / `\uHHHH` into a
//! byte has already been applied, so each case is the bytes ModSecurity
//! itself sees and emits.

use std::collections::BTreeSet;

use super::*;

/// Runs `t` over `input`.
fn run(t: Transform, input: &[u8]) -> Vec<u8> {
    let mut out = b"stale".to_vec();
    t.apply(input, &mut out);
    out
}

/// Asserts every `(input, output)` of `cases` under `t`.
fn check(t: Transform, cases: &[(&[u8], &[u8])]) {
    for &(input, want) in cases {
        let got = run(t, input);
        assert_eq!(
            got,
            want,
            "{}({:?}) = {:?}, want {:?}",
            t.name(),
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want)
        );
    }
}

/// A fixture string → bytes (one char, at most U+00FF, per byte).
fn bytes_of(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("fixture char above U+00FF"))
        .collect()
}

#[test]
fn modsecurity_regression_cases() {
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("transformations.json")).unwrap();
    assert!(cases.len() > 300, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let Some(Parsed::Transform(t)) = Transform::parse(name) else {
            panic!("fixture names unknown transformation {name}");
        };
        covered.insert(t);
        let input = bytes_of(case["input"].as_str().unwrap());
        let want = bytes_of(case["output"].as_str().unwrap());
        let got = run(t, &input);
        if got != want {
            failures.push(format!(
                "{name}({:?}) = {:?}, want {:?}",
                String::from_utf8_lossy(&input),
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let missing: Vec<_> = Transform::ALL
        .iter()
        .filter(|t| !covered.contains(*t))
        .map(|t| t.name())
        .collect();
    // removeCommentsChar, removeWhitespace and cmdLine have no upstream data
    // file; they are covered by the tables below.
    assert_eq!(
        missing,
        ["cmdLine", "removeCommentsChar", "removeWhitespace"],
        "transformations without regression data"
    );
}

// ---------------------------------------------------------------------------
// Names

#[test]
fn parse_is_case_insensitive_and_knows_aliases() {
    use Transform as T;
    for (name, want) in [
        ("urlDecodeUni", T::UrlDecodeUni),
        ("URLDECODEUNI", T::UrlDecodeUni),
        ("base64decode", T::Base64Decode),
        ("base64DecodeExt", T::Base64DecodeExt),
        ("normalisePath", T::NormalisePath),
        ("normalizePath", T::NormalisePath),
        ("normalisePathWin", T::NormalisePathWin),
        ("normalizepathwin", T::NormalisePathWin),
        ("utf8toUnicode", T::Utf8ToUnicode),
        ("cmdline", T::CmdLine),
        ("Sha1", T::Sha1),
    ] {
        assert_eq!(
            Transform::parse(name),
            Some(Parsed::Transform(want)),
            "{name}"
        );
        assert_eq!(Transform::from_name(name), Some(want), "{name}");
    }
    assert_eq!(Transform::parse("none"), Some(Parsed::None));
    assert_eq!(Transform::parse("NONE"), Some(Parsed::None));
    assert_eq!(Transform::from_name("none"), None);
    for bad in [
        "",
        "t:lowercase",
        "lowercase ",
        "urldecodeunix",
        "base64",
        "sha256",
        "nonee",
    ] {
        assert_eq!(Transform::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn names_round_trip_and_are_unique() {
    let mut seen = BTreeSet::new();
    for t in Transform::ALL {
        assert!(seen.insert(t.name()), "duplicate name {}", t.name());
        assert_eq!(Transform::parse(t.name()), Some(Parsed::Transform(t)));
    }
    assert_eq!(seen.len(), Transform::ALL.len());
    let sorted: Vec<_> = Transform::ALL
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        sorted,
        Transform::ALL,
        "ALL is in declaration order, without repeats"
    );
}

// ---------------------------------------------------------------------------
// Edge cases per transformation (expected values follow the v3 C code)

#[test]
fn empty_input() {
    for t in Transform::ALL {
        let got = run(t, b"");
        match t {
            Transform::Length => assert_eq!(got, b"0"),
            Transform::Md5 => assert_eq!(got.len(), 16),
            Transform::Sha1 => assert_eq!(got.len(), 20),
            _ => assert!(got.is_empty(), "{}", t.name()),
        }
    }
}

#[test]
fn url_decode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"%", b"%"),
        (b"%4", b"%4"),
        (b"%41", b"A"),
        (b"%4g", b"%4g"),
        (b"%%41", b"%A"),
        (b"a+b", b"a b"),
        (b"%u0041", b"%u0041"),
        (b"\xff\xfe%c3%A9", b"\xff\xfe\xc3\xa9"),
    ];
    check(Transform::UrlDecode, cases);
}

#[test]
fn url_decode_uni_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"%", b"%"),
        (b"%4", b"%4"),
        (b"%u", b"%u"),
        (b"%u004", b"%u004"),
        (b"%u004g", b"%u004g"),
        (b"%u0041", b"A"),
        (b"%U0041", b"A"),
        (b"%uFF21", b"A"),
        (b"%uff5e", b"~"),
        (b"%uff5f", b"_"),
        (b"%uff00", b"\x00"),
        (b"%u2215", b"\x15"),
        (b"%u00e9", b"\xe9"),
        (b"%uu0041", b"%uu0041"),
        (b"\xc3%u", b"\xc3%u"),
    ];
    check(Transform::UrlDecodeUni, cases);
}

#[test]
fn url_encode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"a b", b"a+b"),
        (b"*-_.~", b"*%2d%5f%2e%7e"),
        (b"\x00\xff", b"%00%ff"),
    ];
    check(Transform::UrlEncode, cases);
}

#[test]
fn html_entity_decode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"&", b"&"),
        (b"&#", b"&#"),
        (b"&#x", b"&#x"),
        (b"&#x;", b"&#x;"),
        (b"&#;", b"&#;"),
        (b"&#65", b"A"),
        (b"&#065;", b"A"),
        (b"&#x41;", b"A"),
        (b"&#X41", b"A"),
        (b"&#256;", b"\x00"),
        (b"&#321;", b"A"),
        (b"&#x141;", b"A"),
        (b"&#99999999999999999999;", b"\xff"),
        (b"&#xffffffffffffffffffff;", b"\xff"),
        (b"&LT;&Gt&QUOT;", b"<>\""),
        (b"&ltest;", b"&ltest;"),
        (b"&amp", b"&"),
        (b"&amp;amp;", b"&amp;"),
        (b"&unknown;", b"&unknown;"),
        (b"& x", b"& x"),
        (b"&nbsp;", b"\xa0"),
        (b"&lpar;&rpar;&colon;&sol;&bsol;", b"():/\\"),
        (b"\xff&#\xff", b"\xff&#\xff"),
    ];
    check(Transform::HtmlEntityDecode, cases);
}

#[test]
fn js_decode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"\\", b"\\"),
        (b"\\x4", b"x4"),
        (b"\\x41", b"A"),
        (b"\\X41", b"X41"),
        (b"\\u004", b"u004"),
        (b"\\u0041", b"A"),
        (b"\\U0041", b"U0041"),
        (b"\\uff21", b"A"),
        (b"\\uFF3c", b"\\"),
        (b"\\400", b" 0"),
        (b"\\377", b"\xff"),
        (b"\\0", b"\x00"),
        (b"\\07a", b"\x07a"),
        (b"\\q", b"q"),
        (b"a\\\xff", b"a\xff"),
    ];
    check(Transform::JsDecode, cases);
}

#[test]
fn css_decode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"\\", b""),
        (b"\\4", b"\x04"),
        (b"\\41", b"A"),
        (b"\\41 B", b"AB"),
        (b"\\41\tB", b"AB"),
        (b"\\41  B", b"A B"),
        (b"\\\nA", b"A"),
        (b"\\g", b"g"),
        (b"\\ff21", b"A"),
        (b"\\0ff21", b"A"),
        (b"\\00ff21", b"A"),
        (b"\\1ff21", b"!"),
        (b"\\ff5f", b"\x5f"),
        (b"\\\xff", b"\xff"),
    ];
    check(Transform::CssDecode, cases);
}

#[test]
fn escape_seq_decode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"\\", b"\\"),
        (b"\\x4", b"x4"),
        (b"\\X41", b"A"),
        (b"\\x41", b"A"),
        (b"\\777", b"\xff"),
        (b"\\400", b"\x00"),
        (b"\\\\", b"\\"),
        (b"\\q", b"q"),
        (b"\\u0041", b"u0041"),
    ];
    check(Transform::EscapeSeqDecode, cases);
}

#[test]
fn cmd_line_cases() {
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"C:\\Windows\\System32\\CMD.exe /c \"dir\"",
            b"c:windowssystem32cmd.exe/c dir",
        ),
        (b"a,;\t\r\n b", b"a b"),
        (b"ec^ho  (x)", b"echo(x)"),
        (b"'w'h\"o\"am^i", b"whoami"),
        (b" /", b"/"),
        (b"a \"/", b"a/"),
        (b"\xc4B", b"\xc4b"),
    ];
    check(Transform::CmdLine, cases);
}

#[test]
fn whitespace_edges() {
    // v3's compressWhitespace does not treat NBSP as whitespace (v2 does).
    check(
        Transform::CompressWhitespace,
        &[(b"\xa0\xa0", b"\xa0\xa0"), (b"a \t\n\x0b\x0c\rb", b"a b")],
    );
    // removeWhitespace drops 0xA0 and 0xC2 bytes wherever they are.
    check(
        Transform::RemoveWhitespace,
        &[
            (b" a\tb\xc2\xa0c\xa0d\x0b\x0c\r\n", b"abcd"),
            (b"\xc3\xa0", b"\xc3"),
            (b"TestCase", b"TestCase"),
        ],
    );
    check(
        Transform::Trim,
        &[(b"\xa0x\xa0", b"\xa0x\xa0"), (b" \x0b\x0c", b"")],
    );
    check(Transform::TrimLeft, &[(b" \t", b"")]);
    check(Transform::TrimRight, &[(b" \t", b"")]);
}

#[test]
fn comment_edges() {
    check(
        Transform::ReplaceComments,
        &[
            (b"/*", b" "),
            (b"*/", b"*/"),
            (b"a/*b", b"a "),
            (b"/", b"/"),
            (b"/**/", b" "),
        ],
    );
    check(
        Transform::RemoveComments,
        &[
            (b"a--b", b"a"),
            (b"a#b", b"a"),
            (b"a-b", b"a-b"),
            (b"<!--x", b" "),
            (b"x-->y", b"x"),
            (b"/**/--x", b""),
            (b"a/*b*/#c", b"a"),
            (b"/*", b" "),
            (b"/", b"/"),
        ],
    );
    check(
        Transform::RemoveCommentsChar,
        &[
            (b"a/*b*/c", b"abc"),
            (b"<!--x-->", b"x"),
            (b"a--b#c", b"abc"),
            (b"-->", b""),
            (b"---", b"-"),
            (b"/", b"/"),
            (b"1/**/UNION--\n#", b"1UNION\n"),
        ],
    );
}

#[test]
fn path_edges() {
    check(
        Transform::NormalisePath,
        &[
            (b"/", b"/"),
            (b"//", b"/"),
            (b"a//b", b"a/b"),
            (b"/a/./b/../c", b"/a/c"),
            // The root slash is kept on the back-reference, then dropped as a
            // trailing slash the input did not have (as ModSecurity does).
            (b"/..", b""),
            (b"/../", b"/"),
            (b"\\a\\..\\b", b"\\a\\..\\b"),
        ],
    );
    check(
        Transform::NormalisePathWin,
        &[
            (b"\\", b"/"),
            (b"a\\..\\b", b"b"),
            (b"c:\\x\\..\\y", b"c:/y"),
            // ModSecurity converts `\` only at and right after the scan
            // position, so a third `\` in a row survives.
            (b"a\\\\\\b", b"a\\b"),
        ],
    );
}

#[test]
fn utf8_to_unicode_edges() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"\xc3\xa9", b"%u00e9"),
        (b"\xc3", b""),
        (b"\xc3(", b"("),
        (b"\xff", b"\xff"),
        (b"\x80", b"\x80"),
        (b"\xc0\x80", b"%u0000\xc0"),
        (b"\xe0\x80\x80", b"%u0000\xe0"),
        (b"\xed\xa0\x80", b"%ud800\xed"),
        (b"\xf0\x9f\x98\x80", b"%u1f600"),
        (b"\xf5\x80\x80\x80", b"\xf5%u140000"),
        (b"\xe2\x82", b"\x82"),
        (b"\xe2\x82\xac", b"%u20ac"),
        (b"a\x00b", b"ab"),
        (b"ab\x00", b"ab\x00"),
        (b"plain", b"plain"),
    ];
    check(Transform::Utf8ToUnicode, cases);
}

#[test]
fn hex_and_sql_hex_edges() {
    check(
        Transform::HexDecode,
        &[(b"4", b""), (b"414", b"A"), (b"zz", b"S"), (b"4A4a", b"JJ")],
    );
    check(Transform::HexEncode, &[(b"\x00\xff", b"00ff")]);
    check(
        Transform::SqlHexDecode,
        &[
            (b"0", b"0"),
            (b"0x", b"0x"),
            (b"0x4", b"0x4"),
            (b"0x41", b"A"),
            (b"0X41", b"A"),
            (b"0x414", b"A4"),
            (b"0x4g", b"0x4g"),
            (b"0x\x00", b"0x\x00"),
        ],
    );
}

#[test]
fn base64_edges() {
    check(
        Transform::Base64Decode,
        &[
            (b"QUJD", b"ABC"),
            (b"QUI", b""),
            (b"QUI=", b"AB"),
            (b"QQ==", b"A"),
            (b"Q===", b""),
            (b"QU JD", b""),
            (b"QUJD\n", b"ABC"),
            (b"QUJD \nRA==", b"ABCD"),
            (b"QU\r\nJD", b"ABC"),
            (b"QUJD\r", b""),
            (b"QUJD=", b""),
            (b"QUJ\xc3", b""),
            (b"QQ==QQ==", b""),
            (b"\x00QUJD", b""),
            (b"QUJD  ", b"ABC"),
        ],
    );
    check(
        Transform::Base64DecodeExt,
        &[
            (b"QUJD", b"ABC"),
            (b"QUI", b"AB"),
            (b"QQ", b"A"),
            (b"Q", b""),
            (b"QUJDR", b"ABC"),
            (b"QUJD Q", b"ABC"),
            (b"QUJD9", b""),
            (b"Q=", b""),
            (b"QU-_", b"AO\xbf"),
            (b"\xffQ\x00UJD", b"ABC"),
        ],
    );
    check(
        Transform::Base64Encode,
        &[
            (b"A", b"QQ=="),
            (b"AB", b"QUI="),
            (b"ABC", b"QUJD"),
            (b"\xff\xfe", b"//4="),
        ],
    );
}

#[test]
fn digests() {
    fn hex(t: Transform, input: &[u8]) -> Vec<u8> {
        run(Transform::HexEncode, &run(t, input))
    }
    let a55 = [b'a'; 55];
    let a56 = [b'a'; 56];
    let a64 = [b'a'; 64];
    let a1000 = [b'a'; 1000];
    let vectors: [(&[u8], &str, &str); 5] = [
        (
            b"abc",
            "900150983cd24fb0d6963f7d28e17f72",
            "a9993e364706816aba3e25717850c26c9cd0d89d",
        ),
        (
            &a55,
            "ef1772b6dff9a122358552954ad0df65",
            "c1c8bbdc22796e28c0e15163d20899b65621d65a",
        ),
        (
            &a56,
            "3b0c8ac703f828b04c6c197006d17218",
            "c2db330f6083854c99d4b5bfb6e8f29f201be699",
        ),
        (
            &a64,
            "014842d480b571495a4a0363793f7367",
            "0098ba824b5c16427bd7a1122a5a442a25ec644d",
        ),
        (
            &a1000,
            "cabe45dcc9ae5b66ba86600cca6b8ba8",
            "291e9a6c66994949b57ba5e650361e98fc36b1ba",
        ),
    ];
    for (input, md5, sha1) in vectors {
        assert_eq!(hex(Transform::Md5, input), md5.as_bytes());
        assert_eq!(hex(Transform::Sha1, input), sha1.as_bytes());
    }
}

#[test]
fn case_length_parity_nulls() {
    check(Transform::Length, &[(b"abc", b"3"), (&[0u8; 12], b"12")]);
    check(
        Transform::Lowercase,
        &[(b"\xc4\xd6AZaz@[", b"\xc4\xd6azaz@[")],
    );
    check(
        Transform::Uppercase,
        &[(b"\xe4\xf6AZaz`{", b"\xe4\xf6AZAZ`{")],
    );
    // Parity is computed over the whole byte, bit 7 included (v2 and v3).
    check(
        Transform::ParityEven7bit,
        &[(b"\x81\x80a", b"\x01\x80\xe1")],
    );
    check(Transform::ParityOdd7bit, &[(b"\x81\x80a", b"\x81\x00a")]);
    check(Transform::ParityZero7bit, &[(b"\x81\xffa", b"\x01\x7fa")]);
    check(Transform::RemoveNulls, &[(b"\x00\x00", b"")]);
    check(Transform::ReplaceNulls, &[(b"\x00\x00", b"  ")]);
}

#[test]
fn apply_clears_the_output_buffer() {
    let mut out = b"left over".to_vec();
    Transform::Lowercase.apply(b"AB", &mut out);
    assert_eq!(out, b"ab");
    Transform::Base64Decode.apply(b"!!", &mut out);
    assert_eq!(out, b"");
}

// ---------------------------------------------------------------------------
// Property test

/// xorshift64*: a tiny deterministic PRNG.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Bytes that start or continue the escapes the decoders know, so random
/// inputs hit their edge paths often; the rest of the time any byte.
const INTERESTING: &[u8] =
    b"%&#;\\/*-<!>+=.0xXuU9aAfFz \t\n\r\x00\x80\xa0\xc2\xc3\xe2\xed\xf0\xf5\xff";

#[test]
fn random_bytes_never_panic_and_decoders_never_grow() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut input = Vec::new();
    let mut out = Vec::new();
    for _ in 0..100_000 {
        input.clear();
        let len = (rng.next() % 48) as usize;
        for _ in 0..len {
            let r = rng.next();
            input.push(if r % 4 == 0 {
                (r >> 8) as u8
            } else {
                INTERESTING[((r >> 8) % INTERESTING.len() as u64) as usize]
            });
        }
        for t in Transform::ALL {
            t.apply(&input, &mut out);
            if t.never_grows() {
                assert!(
                    out.len() <= input.len(),
                    "{} grew {:?} to {:?}",
                    t.name(),
                    input,
                    out
                );
            }
        }
    }
}

mod unchanged {
    use super::*;
    use proptest::prelude::*;

    /// Bytes every transformation acts on, and some it does not.
    fn interesting() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> =
            b"aZ09 \t\r\n\x0b\x0c%+&#;\\/*.-<!>\"'^,(x0X\x00\xa0\xc2\xc3\xa9\xff=".to_vec();
        proptest::collection::vec(proptest::sample::select(alphabet), 0..12)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// The contract of `leaves_unchanged`: when it says so, `apply` gives the input back.
        #[test]
        fn leaves_unchanged_means_apply_is_identity(input in interesting()) {
            for t in Transform::ALL {
                if t.leaves_unchanged(&input) {
                    prop_assert_eq!(run(t, &input), input.clone(), "{:?}", t);
                }
                // Features only ever answer what the exact scan would.
                prop_assert_eq!(
                    t.leaves_unchanged_with(Features::of(&input), &input),
                    t.leaves_unchanged(&input),
                    "{:?}", t
                );
            }
        }
    }

    #[test]
    fn plain_values_are_left_alone() {
        for t in [
            Transform::Lowercase,
            Transform::UrlDecodeUni,
            Transform::HtmlEntityDecode,
            Transform::JsDecode,
            Transform::CssDecode,
            Transform::RemoveNulls,
            Transform::Utf8ToUnicode,
            Transform::CompressWhitespace,
            Transform::ReplaceComments,
            Transform::NormalisePath,
            Transform::CmdLine,
        ] {
            assert!(t.leaves_unchanged(b"espresso beans 1 kg"), "{t:?}");
        }
        assert!(!Transform::Lowercase.leaves_unchanged(b"Cork"));
        assert!(!Transform::UrlDecodeUni.leaves_unchanged(b"a%20b"));
    }
}
