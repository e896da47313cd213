//! Unit tests of `normalize`.

use super::*;
use proptest::prelude::*;

fn run(chain: &[Transform], input: &[u8]) -> Vec<u8> {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    apply(chain, input, &mut out, &mut scratch);
    out
}

fn one(t: Transform, input: &str) -> String {
    String::from_utf8_lossy(&run(&[t], input.as_bytes())).into_owned()
}

#[test]
fn names_round_trip() {
    for t in ALL {
        assert_eq!(Transform::parse(t.name()), Some(t));
    }
    assert_eq!(Transform::parse("urlDecode"), None);
    assert_eq!(Transform::parse(""), None);
}

#[test]
fn empty_chain_copies() {
    assert_eq!(run(&[], b"AbC%27"), b"AbC%27");
    assert_eq!(run(&ALL, b""), b"");
}

#[test]
fn url_decode_single_and_plus() {
    let u = Transform::UrlDecode;
    assert_eq!(one(u, "a%27+OR+1%3D1"), "a' OR 1=1");
    assert_eq!(one(u, "%3cscript%3E"), "<script>");
    assert_eq!(run(&[u], b"%00%ff"), b"\x00\xff");
}

#[test]
fn url_decode_multiple_encoding() {
    let u = Transform::UrlDecode;
    assert_eq!(one(u, "%2527"), "'");
    assert_eq!(one(u, "%252527"), "'");
    // Three passes at most: quadruple encoding keeps one level.
    assert_eq!(one(u, "%25252527"), "%27");
    assert_eq!(one(u, "%252e%252e%252f"), "../");
}

#[test]
fn url_decode_iis_unicode() {
    let u = Transform::UrlDecode;
    assert_eq!(one(u, "%u0027%U003c"), "'<");
    // Fullwidth forms to ASCII.
    assert_eq!(one(u, "%uFF1Cscript%uff1e"), "<script>");
    // Others as UTF-8.
    assert_eq!(one(u, "%u4e2d"), "中");
    assert_eq!(one(u, "%uD83D%uDE00"), "😀");
    // Lone surrogate left as written.
    assert_eq!(one(u, "%uD83Dx"), "%uD83Dx");
    assert_eq!(one(u, "%uDE00"), "%uDE00");
    // %u2527 is a real code point (U+2527), not %25 then 27.
    assert_eq!(one(u, "%u2527"), "┧");
}

#[test]
fn url_decode_invalid_escapes_kept() {
    let u = Transform::UrlDecode;
    assert_eq!(one(u, "100%"), "100%");
    assert_eq!(one(u, "%zz%2%u12%u12zz%"), "%zz%2%u12%u12zz%");
    assert_eq!(one(u, "%%41"), "%A");
}

#[test]
fn html_decode_numeric() {
    let h = Transform::HtmlDecode;
    assert_eq!(one(h, "&#x27;"), "'");
    assert_eq!(one(h, "&#X27;"), "'");
    assert_eq!(one(h, "&#39"), "'");
    assert_eq!(one(h, "&#39;&#39"), "''");
    assert_eq!(one(h, "&#0000039;"), "'");
    assert_eq!(one(h, "&#x000003c;script&#x3e"), "<script>");
    assert_eq!(one(h, "&#x4e2d;&#20013;"), "中中");
    assert_eq!(run(&[h], b"&#0;&#160;"), b"\x00\xa0");
    // Invalid: no digits, surrogate, past U+10FFFF.
    assert_eq!(
        one(h, "&#;&#x;&#xD800;&#99999999999999999999;"),
        "&#;&#x;&#xD800;&#99999999999999999999;"
    );
}

#[test]
fn html_decode_named() {
    let h = Transform::HtmlDecode;
    assert_eq!(
        one(h, "&lt;script&gt;alert&lpar;1&rpar;&lt;&sol;script&gt;"),
        "<script>alert(1)</script>"
    );
    assert_eq!(
        one(h, "javascript&colon;x&Tab;&NewLine;"),
        "javascript:x\t\n"
    );
    assert_eq!(
        one(
            h,
            "&quot;&apos;&amp;&bsol;&semi;&comma;&period;&equals;&grave;&excl;"
        ),
        "\"'&\\;,.=`!"
    );
    assert_eq!(run(&[h], b"&nbsp;"), b"\xa0");
    // Legacy names without `;`, also as a prefix.
    assert_eq!(one(h, "&ltscript&gt"), "<script>");
    assert_eq!(one(h, "&LT;&AMP"), "<&");
    // Other names need the `;`; unknown names stay.
    assert_eq!(one(h, "&colon &bogus; & &;"), "&colon &bogus; & &;");
    // One pass only.
    assert_eq!(one(h, "&amp;lt;"), "&lt;");
}

#[test]
fn lowercase_ascii_only() {
    assert_eq!(one(Transform::Lowercase, "SeLeCt ÀB"), "select Àb");
}

#[test]
fn compress_whitespace_runs() {
    let c = Transform::CompressWhitespace;
    assert_eq!(one(c, "union \t\n\r\x0b\x0c select"), "union select");
    assert_eq!(run(&[c], b"a\xc2\xa0\xc2\xa0b\xa0c"), b"a b c");
    // `à` (C3 A0) is not whitespace.
    assert_eq!(one(c, "à  é"), "à é");
    assert_eq!(one(c, "  x  "), " x ");
}

#[test]
fn sql_comments_block() {
    let s = Transform::RemoveSqlComments;
    assert_eq!(one(s, "SEL/**/ECT"), "SEL ECT");
    assert_eq!(one(s, "UNION/**/SELECT"), "UNION SELECT");
    assert_eq!(one(s, "UNION/*foo*//*bar*/SELECT"), "UNION  SELECT");
    assert_eq!(one(s, "1/*unterminated' OR 1=1"), "1 ");
    // A stray closer outside an executable comment is kept.
    assert_eq!(one(s, "a*/b"), "a*/b");
}

#[test]
fn sql_comments_mysql_executable() {
    let s = Transform::RemoveSqlComments;
    assert_eq!(one(s, "UNION/*!50000SELECT*/"), "UNION SELECT ");
    assert_eq!(one(s, "/*!50000 x*/"), "  x ");
    assert_eq!(
        one(s, "/*!UNION*/ /*!12345678SELECT*/"),
        " UNION   678SELECT "
    );
    assert_eq!(one(s, "/*M!50000UNION*/"), " UNION ");
    assert_eq!(one(s, "/*!union/**/select*/"), " union select ");
}

#[test]
fn sql_comments_line() {
    let s = Transform::RemoveSqlComments;
    assert_eq!(one(s, "admin'-- x"), "admin'");
    assert_eq!(one(s, "1 UNION#x\nSELECT"), "1 UNION\nSELECT");
    assert_eq!(one(s, "1 UNION-- c\r\nSELECT"), "1 UNION\r\nSELECT");
    assert_eq!(one(s, "a-b"), "a-b");
    // Documented limitation: quotes are not tracked.
    assert_eq!(one(s, "x'-- ' UNION SELECT"), "x'");
}

#[test]
fn normalize_path_resolves() {
    let n = Transform::NormalizePath;
    assert_eq!(one(n, "/a/./b//c/../d"), "/a/b/d");
    assert_eq!(one(n, "/a/b/"), "/a/b/");
    assert_eq!(one(n, "/a/b/."), "/a/b/");
    assert_eq!(one(n, "/a/b/.."), "/a/");
    assert_eq!(one(n, "./a"), "a");
    assert_eq!(one(n, "//"), "/");
    assert_eq!(one(n, ""), "");
    assert_eq!(one(n, "a\\b\\\\c"), "a/b/c");
}

#[test]
fn normalize_path_keeps_traversal_above_start() {
    let n = Transform::NormalizePath;
    // Resolved inside the value...
    assert_eq!(one(n, "a/b/../../etc/passwd"), "etc/passwd");
    // ...but climbing above the start stays visible.
    assert_eq!(one(n, "a/../../etc/passwd"), "../etc/passwd");
    assert_eq!(one(n, "../../etc/passwd"), "../../etc/passwd");
    assert_eq!(one(n, "/static/../../etc/passwd"), "/../etc/passwd");
    assert_eq!(one(n, "..\\..\\windows\\win.ini"), "../../windows/win.ini");
    assert_eq!(one(n, "..//.//../x"), "../../x");
    assert_eq!(one(n, "a/.."), "");
    assert_eq!(one(n, ".."), "..");
    assert_eq!(one(n, "../"), "../");
    assert_eq!(one(n, "/.."), "/..");
}

#[test]
fn remove_nulls() {
    assert_eq!(run(&[Transform::RemoveNulls], b"sel\0ect\0"), b"select");
    let chain = [Transform::UrlDecode, Transform::RemoveNulls];
    assert_eq!(run(&chain, b"sel%00ect"), b"select");
}

#[test]
fn fullwidth_fold() {
    let f = Transform::FullwidthFold;
    assert_eq!(one(f, "＜ｓｃｒｉｐｔ＞"), "<script>");
    assert_eq!(one(f, "ＵＮＩＯＮ\u{3000}ＳＥＬＥＣＴ"), "UNION SELECT");
    assert_eq!(one(f, "！～"), "!~");
    // Outside the range, and truncated sequences, are kept.
    assert_eq!(one(f, "｟ｿ中"), "｟ｿ中");
    assert_eq!(run(&[f], b"\xef\xbc"), b"\xef\xbc");
}

#[test]
fn chains_compose() {
    use Transform::*;
    let chain = [UrlDecode, HtmlDecode, Lowercase];
    assert_eq!(run(&chain, b"%26lt%3BSCRIPT%26gt%3B"), b"<script>");
    let chain = [UrlDecode, FullwidthFold, Lowercase];
    assert_eq!(run(&chain, b"%EF%BC%9Cscript%uFF1E"), b"<script>");
    let chain = [UrlDecode, RemoveSqlComments, CompressWhitespace, Lowercase];
    assert_eq!(
        run(&chain, b"1%27%20UNION/**/%0aSELECT--+x"),
        b"1' union select"
    );
    let chain = [UrlDecode, NormalizePath];
    assert_eq!(run(&chain, b"..%255c..%255cwindows"), b"../../windows");
}

#[test]
fn buffers_are_reused() {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    apply(&ALL, b"%2527 UNION/**/SELECT", &mut out, &mut scratch);
    let first = out.clone();
    apply(&ALL, b"x", &mut out, &mut scratch);
    assert_eq!(out, b"x");
    apply(&ALL, b"%2527 UNION/**/SELECT", &mut out, &mut scratch);
    assert_eq!(out, first);
}

fn transform() -> impl Strategy<Value = Transform> {
    (0..ALL.len()).prop_map(|i| ALL[i])
}

/// Bytes biased towards what the transforms look for.
fn evasive_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        proptest::sample::select(vec![
            &b"%"[..],
            b"%2",
            b"%25",
            b"%u",
            b"%uD83D",
            b"%uDE00",
            b"%uFF1C",
            b"+",
            b"&",
            b"&#",
            b"&#x",
            b"&lt",
            b";",
            b"/*",
            b"*/",
            b"/*!",
            b"/*M!",
            b"--",
            b"#",
            b"/",
            b"\\",
            b".",
            b"..",
            b"\xef\xbc\x9c",
            b"\xe3\x80\x80",
            b"\xef",
            b"\xc2\xa0",
            b"\xa0",
            b"\0",
            b"0",
            b"9",
            b"f",
            b"D8",
            b"\n",
            b" ",
        ])
        .prop_map(|t| t.to_vec()),
    ];
    proptest::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

#[test]
fn changes_only_case_examples() {
    for clean in [
        &b""[..],
        b"Mozilla/5.0 (X11; Linux x86_64)",
        b"/api/v1/orders",
        b"a/b/",
        b"-created_at",
        b"Siobhan O'Brien",
        b"nobody's home - thanks!",
        b"...",
    ] {
        assert!(
            changes_only_case(clean),
            "{:?}",
            String::from_utf8_lossy(clean)
        );
    }
    for dirty in [
        &b"a%27"[..],
        b"a+b",
        b"&lt;",
        b"a\\b",
        b"1#",
        b"a--",
        b"/*",
        b"a  b",
        b"a\tb",
        b"a//b",
        b"/./",
        b"../x",
        b"x/..",
        b".",
        b"..",
        b"a\0",
        "\u{ff1c}".as_bytes(),
        b"\xa0",
    ] {
        assert!(
            !changes_only_case(dirty),
            "{:?}",
            String::from_utf8_lossy(dirty)
        );
    }
}

proptest! {
    #[test]
    fn apply_is_bounded_and_deterministic(
        chain in proptest::collection::vec(transform(), 0..8),
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), evasive_bytes()],
    ) {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        apply(&chain, &input, &mut out, &mut scratch);
        prop_assert!(out.len() <= input.len() + 8);
        prop_assert!(out.len() <= input.len());
        // Same result with fresh buffers and with dirty reused ones.
        let fresh = run(&chain, &input);
        prop_assert_eq!(&out, &fresh);
        scratch.extend_from_slice(b"junk");
        apply(&chain, &input, &mut out, &mut scratch);
        prop_assert_eq!(&out, &fresh);
    }

    #[test]
    fn changes_only_case_is_right(
        chain in proptest::collection::vec(transform(), 0..8),
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..64), evasive_bytes()],
    ) {
        let input = if changes_only_case(&input) {
            input
        } else {
            // Mostly dirty: keep the bytes a clean value can hold.
            input.into_iter().filter(|&b| changes_only_case(&[b])).collect()
        };
        prop_assume!(changes_only_case(&input));
        prop_assert!(changes_only_case(&input.to_ascii_lowercase()));
        let expected = if chain.contains(&Transform::Lowercase) {
            input.to_ascii_lowercase()
        } else {
            input.clone()
        };
        prop_assert_eq!(run(&chain, &input), expected);
    }

    #[test]
    fn has_rewritable_is_holding_a_rewritable_sequence(
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..64), evasive_bytes()],
    ) {
        let sequences = rewritable_sequences();
        let holds = sequences.iter().any(|s| input.windows(s.len()).any(|w| w == &s[..]));
        prop_assert_eq!(has_rewritable(&input), holds);
    }

    #[test]
    fn each_transform_never_grows(
        t in transform(),
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), evasive_bytes()],
    ) {
        prop_assert!(run(&[t], &input).len() <= input.len());
    }
}
