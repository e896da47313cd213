//! The parts splitters' tests: examples per kind of part and property tests
//! (bounds, no panics, the JSON walk agreeing with serde_json).

use super::*;
use proptest::prelude::*;

fn show(parts: &[Part<'_>]) -> Vec<(Target, String, String)> {
    parts
        .iter()
        .map(|p| {
            (
                p.target,
                String::from_utf8_lossy(&p.name).into_owned(),
                String::from_utf8_lossy(&p.value).into_owned(),
            )
        })
        .collect()
}

fn t(target: Target, name: &str, value: &str) -> (Target, String, String) {
    (target, name.to_owned(), value.to_owned())
}

fn query(q: &str) -> Vec<(Target, String, String)> {
    let mut out = Vec::new();
    query_parts(q.as_bytes(), 100, &mut out);
    show(&out)
}

/// The body's parts, JSON ones named by [`json_part_names`].
fn body(ct: Option<&str>, b: &[u8]) -> Vec<(Target, String, String)> {
    let ct = ct.map(str::as_bytes);
    let (mut names, mut out) = (JsonText::default(), Vec::new());
    body_parts(ct, b, &mut names, 100, &mut out);
    let mut shown = show(&out);
    if let Some(names) = json_part_names(ct, b, usize::MAX) {
        assert_eq!(names.len(), shown.len());
        for (part, name) in shown.iter_mut().zip(names) {
            assert_eq!(part.1, "", "collected JSON parts have no names");
            part.1 = String::from_utf8(name).unwrap();
        }
        // Asked for fewer, the first ones.
        let first = json_part_names(ct, b, 1).unwrap();
        assert_eq!(first.len(), shown.len().min(1));
    }
    shown
}

use Target::{Body, Cookies, Query, QueryNames};

#[test]
fn query_pairs_repeated_and_encoded() {
    assert_eq!(
        query("id=1&id=2+OR+1%3D1&%3Cname%3E=x"),
        vec![
            t(Query, "id", "1"),
            t(QueryNames, "id", "id"),
            t(Query, "id", "2 OR 1=1"),
            t(QueryNames, "id", "id"),
            t(Query, "<name>", "x"),
            t(QueryNames, "<name>", "<name>"),
        ]
    );
}

#[test]
fn query_decodes_once_and_skips_empty() {
    // Decoded once only: the transforms undo the rest.
    assert_eq!(
        query("a=%2527&&b=&=&%zz=%"),
        vec![
            t(Query, "a", "%27"),
            t(QueryNames, "a", "a"),
            t(QueryNames, "b", "b"),
            t(Query, "%zz", "%"),
            t(QueryNames, "%zz", "%zz"),
        ]
    );
    // A bare word is both name and value; `=` only at the first one.
    assert_eq!(
        query("%3Cscript%3E&x=a=b"),
        vec![
            t(Query, "<script>", "<script>"),
            t(QueryNames, "<script>", "<script>"),
            t(Query, "x", "a=b"),
            t(QueryNames, "x", "x"),
        ]
    );
    assert!(query("").is_empty());
    assert!(query("&&&").is_empty());
}

#[test]
fn query_borrows_when_nothing_to_decode() {
    let mut out = Vec::new();
    query_parts(b"a=b", 10, &mut out);
    assert!(matches!(out[0].value, Cow::Borrowed(b"b")));
    assert!(matches!(out[0].name, Cow::Borrowed(b"a")));
}

#[test]
fn max_caps_the_list() {
    let mut names = JsonText::default();
    let mut out = Vec::new();
    query_parts(b"a=1&b=2&c=3", 3, &mut out);
    assert_eq!(out.len(), 3);
    // Already full: nothing appended.
    cookie_parts(b"x=1", 3, &mut out);
    body_parts(None, b"body", &mut names, 3, &mut out);
    assert_eq!(out.len(), 3);
    let (mut names, mut out) = (JsonText::default(), Vec::new());
    body_parts(
        Some(b"application/json"),
        br#"{"a":[1,2,3,4,5]}"#,
        &mut names,
        4,
        &mut out,
    );
    assert_eq!(out.len(), 4);
}

#[test]
fn cookies_spaces_and_quotes() {
    let mut out = Vec::new();
    cookie_parts(
        b"session=abc;  theme = dark ;q=\"' OR 1=1\";;flag;empty=;\"=\"",
        100,
        &mut out,
    );
    assert_eq!(
        show(&out),
        vec![
            t(Cookies, "session", "abc"),
            t(Cookies, "theme", "dark"),
            t(Cookies, "q", "' OR 1=1"),
            t(Cookies, "", "flag"),
            t(Cookies, "\"", "\""),
        ]
    );
    // Values are not URL-decoded.
    let mut out = Vec::new();
    cookie_parts(b"a=%27", 100, &mut out);
    assert_eq!(show(&out), vec![t(Cookies, "a", "%27")]);
}

#[test]
fn form_body_like_query() {
    assert_eq!(
        body(
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            b"user=bob&pw=x%27+or+1%3D1"
        ),
        vec![
            t(Body, "user", "bob"),
            t(Body, "user", "user"),
            t(Body, "pw", "x' or 1=1"),
            t(Body, "pw", "pw"),
        ]
    );
}

#[test]
fn json_nested_objects_arrays() {
    let b = br#"{"a":{"b":[1,"two",{"c":null,"d":true,"e":-2.5e3}]},"k":"v"}"#;
    assert_eq!(
        body(Some("application/json"), b),
        vec![
            t(Body, "a", "a"),
            t(Body, "a.b", "b"),
            t(Body, "a.b[0]", "1"),
            t(Body, "a.b[1]", "two"),
            t(Body, "a.b[2].c", "c"),
            t(Body, "a.b[2].d", "d"),
            t(Body, "a.b[2].e", "e"),
            t(Body, "a.b[2].e", "-2500.0"),
            t(Body, "k", "k"),
            t(Body, "k", "v"),
        ]
    );
    assert_eq!(
        body(Some("application/vnd.api+json"), br#"[["x"]]"#),
        vec![t(Body, "[0][0]", "x")]
    );
    assert_eq!(
        body(Some("application/json"), br#""top""#),
        vec![t(Body, "", "top")]
    );
    assert_eq!(
        body(Some("application/json"), b"1e300"),
        vec![t(Body, "", "1e+300")]
    );
}

proptest! {
    #[test]
    fn string_stop_is_the_first_stopping_byte(s in proptest::collection::vec(
        proptest::sample::select(&b"ab \"\\\x00\x1f\x20\x7f\x80\xff~"[..]), 0..40)
    ) {
        let expected = s
            .iter()
            .position(|&b| !(0x20..0x80).contains(&b) || b == b'"' || b == b'\\');
        prop_assert_eq!(string_stop(&s), expected);
    }
}

#[test]
fn recycled_parts_keep_their_allocation() {
    let mut parts: Vec<Part<'static>> = Vec::with_capacity(64);
    let at = parts.as_ptr();
    for _ in 0..3 {
        let query = String::from("a=1&b=2");
        let mut borrowing = recycle(parts);
        query_parts(query.as_bytes(), 100, &mut borrowing);
        assert_eq!(borrowing.len(), 4);
        parts = recycle(borrowing);
        assert!(parts.is_empty());
        assert_eq!((parts.as_ptr(), parts.capacity()), (at, 64));
    }
}

#[test]
fn short_decimals_are_written_as_serde_json_writes_them() {
    let write = |t: &str| {
        serde_json::from_str::<serde_json::Number>(t)
            .unwrap()
            .to_string()
    };
    for t in [
        "24.5",
        "39.99",
        "0.1",
        "0.99",
        "-0.5",
        "1.5",
        "123456789012.345",
        "-7.25",
        "99999999999999.9",
        "0.123456789012345",
        "3.141592653589793",
    ] {
        let digits = t.strip_prefix('-').unwrap_or(t).as_bytes();
        if short_decimal(digits) {
            assert_eq!(write(t), t);
        }
    }
    for t in [
        "24.5",
        "0.1",
        "-0.5",
        "99999999999999.9",
        "0.123456789012345",
    ] {
        assert!(
            short_decimal(t.strip_prefix('-').unwrap_or(t).as_bytes()),
            "{t}"
        );
    }
    // Serde_json writes these otherwise: left to it.
    for t in [
        "24.50",
        "0.05",
        "00.5",
        "1.",
        ".5",
        "1.5e3",
        "3.141592653589793",
        "1234567890123456.5",
        "0.1234567890123456",
    ] {
        assert!(!short_decimal(t.as_bytes()), "{t}");
    }
}

#[test]
fn json_escapes_and_duplicates() {
    let b = br#"{"q":"\u0027 OR 1=1","\u003cs\u003e":"a\"b","q":"second"}"#;
    assert_eq!(
        body(Some("application/json; charset=utf-8"), b),
        vec![
            t(Body, "q", "q"),
            t(Body, "q", "' OR 1=1"),
            t(Body, "<s>", "<s>"),
            t(Body, "<s>", "a\"b"),
            t(Body, "q", "q"),
            t(Body, "q", "second"),
        ]
    );
    // Unescaped strings borrow from the body.
    let (mut names, mut out) = (JsonText::default(), Vec::new());
    body_parts(
        Some(b"application/json"),
        br#"{"a":"b"}"#,
        &mut names,
        10,
        &mut out,
    );
    assert!(out.iter().all(|p| matches!(p.value, Cow::Borrowed(_))));
}

#[test]
fn json_invalid_falls_back() {
    // Trailing comma: not JSON; whole body, plus the escaped literal decoded.
    let b = br#"{"q":"\u0027 OR 1=1", "r":"plain",}"#;
    assert_eq!(
        body(Some("application/json"), b),
        vec![
            t(Body, "", std::str::from_utf8(b).unwrap()),
            t(Body, "", "' OR 1=1"),
        ]
    );
    assert_eq!(
        body(Some("application/json"), b"not json \"\\x\""),
        vec![t(Body, "", "not json \"\\x\"")]
    );
}

#[test]
fn json_depth_bomb_falls_back() {
    let mut b = vec![b'['; 10_000];
    b.extend_from_slice(b"\"' OR 1=1\"");
    b.extend(std::iter::repeat_n(b']', 10_000));
    let (mut names, mut out) = (JsonText::default(), Vec::new());
    body_parts(Some(b"application/json"), &b, &mut names, 100, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].value.len(), b.len());
    // Unbalanced, and objects.
    let b = "{\"a\":".repeat(10_000);
    let (mut names, mut out) = (JsonText::default(), Vec::new());
    body_parts(
        Some(b"application/json"),
        b.as_bytes(),
        &mut names,
        100,
        &mut out,
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn json_deeper_than_depth_limit_still_inspected() {
    // 100 levels: serde_json accepts it (limit 128); names stop at 32 levels.
    let b = format!("{}\"deep\"{}", "[".repeat(100), "]".repeat(100));
    let parts = body(Some("application/json"), b.as_bytes());
    assert_eq!(parts, vec![t(Body, &"[0]".repeat(JSON_DEPTH), "deep")]);
    // Key paths are cut at MAX_NAME bytes.
    let key = "k".repeat(1000);
    let b = format!("{{\"{key}\":{{\"x\":[\"v\",\"w\"]}}}}");
    let (mut names, mut out) = (JsonText::default(), Vec::new());
    body_parts(
        Some(b"application/json"),
        b.as_bytes(),
        &mut names,
        100,
        &mut out,
    );
    assert_eq!(out.len(), 4);
    let names = json_part_names(Some(b"application/json"), b.as_bytes(), 4).unwrap();
    assert_eq!(names.len(), 4);
    assert!(names.iter().all(|n| n.len() == MAX_NAME));
    assert_eq!(&out[3].value[..], b"w");
}

const MULTIPART: &[u8] = b"preamble\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"user\"\r\n\
\r\n\
bob\r\n\
--XyZ\r\n\
content-disposition: form-data; name=\"q\"\r\n\
\r\n\
1' UNION SELECT\r\npassword\r\n\
--XyZ\r\n\
Content-Disposition: form-data; name=\"up\"; filename=\"shell.php\"\r\n\
Content-Type: application/octet-stream\r\n\
\r\n\
<?php system($_GET['c']); ?>\r\n\
--XyZ--\r\n\
epilogue";

#[test]
fn multipart_fields_and_file() {
    assert_eq!(
        body(Some("multipart/form-data; boundary=XyZ"), MULTIPART),
        vec![
            t(Body, "user", "bob"),
            t(Body, "q", "1' UNION SELECT\r\npassword"),
            t(Body, "up", "shell.php"),
            t(Body, "up", "<?php system($_GET['c']); ?>"),
        ]
    );
    // Quoted boundary, LF line ends.
    let lf = b"--b\nContent-Disposition: form-data; name=a\n\nv\n--b--\n";
    assert_eq!(
        body(Some("multipart/form-data; charset=x; Boundary=\"b\""), lf),
        vec![t(Body, "a", "v")]
    );
}

#[test]
fn multipart_file_head_only() {
    let mut b = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"; filename*=UTF-8''a.php\r\n\r\n".to_vec();
    b.extend(std::iter::repeat_n(b'x', 5000));
    b.extend_from_slice(b"\r\n--b--");
    let parts = body(Some("multipart/form-data; boundary=b"), &b);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].2, "a.txt");
    assert_eq!(parts[1].2, "UTF-8''a.php");
    assert_eq!(parts[2].2.len(), FILE_HEAD);
}

#[test]
fn multipart_malformed_best_effort() {
    // No closing boundary: the last field runs to the end.
    let b = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n' OR 1=1";
    assert_eq!(
        body(Some("multipart/form-data; boundary=b"), b),
        vec![t(Body, "a", "1"), t(Body, "c", "' OR 1=1")]
    );
    // Headers never end: nothing readable, so the whole body.
    let b = b"--b\r\nContent-Disposition: form-data; name=\"' OR 1=1";
    let whole = String::from_utf8_lossy(b).into_owned();
    assert_eq!(
        body(Some("multipart/form-data; boundary=b"), b),
        vec![t(Body, "", &whole)]
    );
    // No boundary line at all, or no boundary parameter: the whole body.
    assert_eq!(
        body(Some("multipart/form-data; boundary=zz"), b"x--zz"),
        vec![t(Body, "", "x--zz")]
    );
    assert_eq!(
        body(Some("multipart/form-data"), b"--b\r\n"),
        vec![t(Body, "", "--b\r\n")]
    );
    // Unterminated quotes in Content-Disposition.
    let b = b"--b\r\nContent-Disposition: form-data; name=\"a\\\r\n\r\nv";
    assert_eq!(
        body(Some("multipart/form-data; boundary=b"), b),
        vec![t(Body, "a\\", "v")]
    );
}

#[test]
fn other_types_whole_body() {
    assert_eq!(
        body(Some("text/plain"), b"<script>"),
        vec![t(Body, "", "<script>")]
    );
    assert_eq!(body(None, b"x=1"), vec![t(Body, "", "x=1")]);
    assert_eq!(
        body(Some("application/xml"), b"<a/>"),
        vec![t(Body, "", "<a/>")]
    );
    assert!(body(Some("application/json"), b"").is_empty());
}

/// The parts of a document serde_json parsed: what the walk must give when
/// no key repeats.
fn reference_walk(
    v: &serde_json::Value,
    path: &mut Vec<u8>,
    depth: usize,
    out: &mut Vec<(Vec<u8>, Vec<u8>)>,
) {
    use serde_json::Value;
    let base = path.len();
    let child = |path: &mut Vec<u8>, name: &[u8]| {
        path.truncate(base);
        if depth < JSON_DEPTH {
            path.extend_from_slice(name);
            path.truncate(MAX_NAME);
        }
    };
    match v {
        Value::String(s) => out.push((path.clone(), s.as_bytes().to_vec())),
        Value::Number(n) => out.push((path.clone(), n.to_string().into_bytes())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                child(path, format!("[{i}]").as_bytes());
                reference_walk(item, path, depth + 1, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                let dot = if base == 0 { "" } else { "." };
                child(path, format!("{dot}{k}").as_bytes());
                out.push((path.clone(), k.as_bytes().to_vec()));
                reference_walk(item, path, depth + 1, out);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    path.truncate(base);
}

/// `v` as JSON text, with whitespace and `\u` escapes (surrogate pairs
/// beyond the BMP) where `choice` says.
fn write_json(v: &serde_json::Value, choice: &mut impl FnMut() -> u8, out: &mut String) {
    use serde_json::Value;
    let space = |choice: &mut dyn FnMut() -> u8, out: &mut String| {
        out.push_str([" ", "", "\n\t", "", "\r\n  "][usize::from(choice() % 5)]);
    };
    let string = |s: &str, choice: &mut dyn FnMut() -> u8, out: &mut String| {
        out.push('"');
        for c in s.chars() {
            let must = c < ' ' || c == '"' || c == '\\';
            if must || choice() % 4 == 0 {
                match c {
                    '"' if choice() % 2 == 0 => out.push_str("\\\""),
                    '\\' if choice() % 2 == 0 => out.push_str("\\\\"),
                    '\n' if choice() % 2 == 0 => out.push_str("\\n"),
                    '/' => out.push_str("\\/"),
                    _ => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04X}"));
                        }
                    }
                }
            } else {
                out.push(c);
            }
        }
        out.push('"');
    };
    space(choice, out);
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(s, choice, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, choice, out);
            }
            space(choice, out);
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(choice, out);
                string(k, choice, out);
                space(choice, out);
                out.push(':');
                write_json(item, choice, out);
            }
            space(choice, out);
            out.push('}');
        }
    }
    space(choice, out);
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let text = proptest::collection::vec(
        proptest::sample::select(vec![
            'a', 'Z', ' ', '"', '\\', '/', '\n', '\u{1}', '\u{7f}', 'é', '€', '😀', '\u{ffff}',
            '.', '[',
        ]),
        0..8,
    )
    .prop_map(|c| c.into_iter().collect::<String>());
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0i64..1000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn walked(b: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let (mut text, mut out) = (JsonText::default(), Vec::new());
    json_parts::<true>(b, &mut text, usize::MAX, &mut out).then(|| {
        out.iter()
            .map(|p| (p.name.to_vec(), p.value.to_vec()))
            .collect()
    })
}

/// Whether serde_json parses `b` into values (as the walk did when it was
/// a serde visitor: unlike `IgnoredAny`, that refuses numbers out of `f64`'s
/// range and containers nested past its recursion limit).
fn serde_accepts(b: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(b).is_ok()
}

#[test]
fn json_nesting_limit_is_serde_json_s() {
    for depth in [126, 127, 128, 129] {
        for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
            let b = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            assert_eq!(
                walked(b.as_bytes()).is_some(),
                serde_accepts(b.as_bytes()),
                "{depth}"
            );
        }
    }
}

#[test]
fn json_tokens_like_serde_json() {
    for b in [
        &b"01"[..],
        b"-0",
        b"-",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"-01",
        b"1e400",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"123456789012345678",
        b"1234567890123456789",
        b"1.0E-2",
        b"\"\\ud800\"",
        b"\"\\ud83d\\ude00\"",
        b"\"\\udc00\\ud800\"",
        b"\"\\x\"",
        b"\"\xff\"",
        b"\"\t\"",
        b"tru",
        b"nulll",
        b"[1,]",
        b"{\"a\":1,}",
        b"{\"a\" 1}",
        b"{1:2}",
        b"[] []",
        b" \r\n[ ]\t",
        b"",
        b" ",
        b"\"a\\\"",
    ] {
        let ours = walked(b);
        assert_eq!(
            ours.is_some(),
            serde_accepts(b),
            "{}",
            String::from_utf8_lossy(b)
        );
        if let Some(ours) = ours {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            let mut expected = Vec::new();
            reference_walk(&v, &mut Vec::new(), 0, &mut expected);
            assert_eq!(ours, expected, "{}", String::from_utf8_lossy(b));
        }
    }
}

fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(vec![
            &b"application/json"[..],
            b"application/x-www-form-urlencoded",
            b"multipart/form-data; boundary=b",
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=",
            b"text/plain",
            b";",
            b"",
        ])
        .prop_map(|s| Some(s.to_vec())),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

/// Bytes biased towards the syntax the splitters look for.
fn syntax_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        proptest::sample::select(vec![
            &b"--b"[..],
            b"--b--",
            b"\r\n",
            b"\n",
            b"Content-Disposition: form-data; name=\"",
            b"; filename=\"",
            b"\"",
            b"\\",
            b";",
            b"=",
            b"&",
            b"%",
            b"%2",
            b"+",
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b"\"k\"",
            b"\\u0027",
            b"1",
            b"-1.5e3",
            b"null",
            b" ",
        ])
        .prop_map(|t| t.to_vec()),
    ];
    proptest::collection::vec(token, 0..80).prop_map(|v| v.concat())
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        syntax_bytes()
    ]
}

proptest! {
    #[test]
    fn query_never_panics_or_exceeds_max(q in any_body(), max in 0usize..20, pre in 0usize..5) {
        let mut out = vec![whole(b"pre"); pre];
        query_parts(&q, max, &mut out);
        prop_assert!(out.len() <= max.max(pre));
    }

    #[test]
    fn cookies_never_panic_or_exceed_max(c in any_body(), max in 0usize..20) {
        let mut out = Vec::new();
        cookie_parts(&c, max, &mut out);
        prop_assert!(out.len() <= max);
    }

    #[test]
    fn json_walk_gives_serde_json_s_values(v in json_value(), seed in any::<u64>()) {
        let mut state = seed | 1;
        let mut choice = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        };
        let mut text = String::new();
        write_json(&v, &mut choice, &mut text);
        // The values as serde_json reads them back (its float parsing is
        // not always the shortest round trip).
        let read: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut expected = Vec::new();
        reference_walk(&read, &mut Vec::new(), 0, &mut expected);
        prop_assert_eq!(walked(text.as_bytes()), Some(expected), "{}", text);
    }

    #[test]
    fn json_walk_accepts_what_serde_json_accepts(b in any_body()) {
        prop_assert_eq!(walked(&b).is_some(), serde_accepts(&b));
    }

    #[test]
    fn json_walk_accepts_mutated_documents_as_serde_json(v in json_value(), at in any::<usize>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut b = serde_json::to_vec(&v).unwrap();
        let at = at % (b.len() + 1);
        if cut {
            b.truncate(at);
        } else {
            b.insert(at, byte);
        }
        prop_assert_eq!(walked(&b).is_some(), serde_accepts(&b));
    }

    #[test]
    fn body_never_panics_or_exceeds_max(ct in content_type(), b in any_body(), max in 0usize..20, pre in 0usize..5) {
        let mut names = JsonText::default();
        let mut out = vec![whole(b"pre"); pre];
        body_parts(ct.as_deref(), &b, &mut names, max, &mut out);
        prop_assert!(out.len() <= max.max(pre));
        for p in &out[pre.min(out.len())..] {
            prop_assert!(p.name.len() <= MAX_NAME.max(b.len()));
            prop_assert!(p.value.len() <= b.len() + 32);
        }
    }
}
