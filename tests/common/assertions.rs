//! Assertions on what the gateway answers: its own error replies
//! (`assert_gateway_error`, `assert_401`, `assert_403`, `expect_400` and the
//! bodies they expect), response bodies and ids, and `portcullis check` errors
//! located by config line (`line_of`, `table_lines`, `assert_check_error`).

use super::client::{HasHeaders, Response};
use super::gateway::{check_config, Gateway};
use serde_json::{Map, Value};
use std::ops::RangeInclusive;

pub const BAD_REQUEST: &str = r#"{"message":"Bad Request"}"#;
pub const NOT_FOUND: &str = r#"{"message":"Not Found"}"#;
pub const METHOD_NOT_ALLOWED: &str = r#"{"message":"Method Not Allowed"}"#;
pub const HEADERS_TOO_LARGE: &str = r#"{"message":"Request Header Fields Too Large"}"#;
pub const TOO_LARGE: &str = r#"{"message":"Request Entity Too Large"}"#;
pub const REQUEST_TIMEOUT: &str = r#"{"message":"Request Timeout"}"#;
pub const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;
pub const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
pub const BAD_GATEWAY: &str = r#"{"message":"Bad Gateway"}"#;
pub const GATEWAY_TIMEOUT: &str = r#"{"message":"Gateway Timeout"}"#;
pub const SERVICE_UNAVAILABLE: &str = r#"{"message":"Service Unavailable"}"#;

/// Asserts a response the gateway made itself: status, exact JSON body, its
/// content-type and length, and a request id.
pub fn assert_gateway_error(r: &Response, status: u16, body: &str) {
    assert_eq!(r.status, status, "{:?}\nbody: {}", r, r.body_str());
    assert_eq!(r.body_str(), body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.header("content-length"),
        Some(body.len().to_string().as_str()),
        "{:?}",
        r.headers
    );
    assert!(r.has("x-request-id"), "{:?}", r.headers);
}

/// Send `raw` in one write on a fresh connection; expect 400 +
/// `connection: close`, then the connection closed.
pub fn expect_400(gw: &Gateway, raw: &[u8]) {
    let mut c = gw.connect();
    c.send(raw);
    let r = c.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "no 400 response for {:?}: {}",
            String::from_utf8_lossy(raw),
            e
        )
    });
    assert_eq!(
        r.status,
        400,
        "{:?} for {:?}",
        r,
        String::from_utf8_lossy(raw)
    );
    assert_gateway_error(&r, 400, BAD_REQUEST);
    assert_eq!(r.header("connection"), Some("close"), "{:?}", r.headers);
    c.assert_closed();
}

/// The gateway's 401 with exactly one `WWW-Authenticate` challenge, `challenge`.
pub fn assert_401(r: &Response, challenge: &str) {
    assert_gateway_error(r, 401, UNAUTHORIZED);
    assert_eq!(
        r.header_all("www-authenticate"),
        vec![challenge],
        "{:?}",
        r.headers
    );
}

/// The gateway's 403, without a challenge.
pub fn assert_403(r: &Response) {
    assert_gateway_error(r, 403, FORBIDDEN);
    assert!(!r.has("www-authenticate"), "{:?}", r.headers);
}

/// The response body split into lines.
pub fn body_lines(r: &Response) -> Vec<String> {
    r.body_str().lines().map(|s| s.to_string()).collect()
}

/// UUID v4 in lowercase: 8-4-4-4-12 hex, version nibble 4, variant 8/9/a/b.
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        match i {
            8 | 13 | 18 | 23 => {
                if c != b'-' {
                    return false;
                }
            }
            _ => {
                if !(c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                    return false;
                }
            }
        }
    }
    b[14] == b'4' && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// 1-based number of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{:?} not in config", needle))
        + 1
}

/// The lines of the table whose header is `header` (header line to the line
/// before the next table).
pub fn table_lines(text: &str, header: &str) -> RangeInclusive<usize> {
    let start = line_of(text, header);
    let lines: Vec<&str> = text.lines().collect();
    let end = lines[start..]
        .iter()
        .position(|l| l.starts_with('['))
        .map_or(lines.len(), |i| start + i);
    start..=end
}

/// `portcullis check` accepts `text` (exit 0).
pub fn assert_check_ok(text: &str) {
    let (code, out, err) = check_config(text);
    assert_eq!(code, 0, "stdout: {}\nstderr: {}", out, err);
}

/// `check` fails with exit 1, and stderr names `gw.toml:<line>` (a line in
/// `lines`), `field` and `also`.
pub fn assert_check_error(text: &str, lines: RangeInclusive<usize>, field: &str, also: &str) {
    assert!(
        !field.is_empty() && !also.is_empty(),
        "assert_check_error needs a field and a message to look for"
    );
    let (code, out, err) = check_config(text);
    assert_eq!(code, 1, "stdout: {}\nstderr: {}", out, err);
    assert!(!out.contains("configuration ok"), "stdout: {:?}", out);
    let at = err
        .find("gw.toml:")
        .unwrap_or_else(|| panic!("no gw.toml:LINE in stderr: {:?}", err));
    let line: usize = err[at + "gw.toml:".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no line number after gw.toml: in {:?}", err));
    assert!(
        lines.contains(&line),
        "error at line {}, expected {:?}: {:?}",
        line,
        lines,
        err
    );
    assert!(
        err.contains(field),
        "expected {:?} in stderr: {:?}",
        field,
        err
    );
    assert!(
        err.contains(also),
        "expected {:?} in stderr: {:?}",
        also,
        err
    );
}

/// Parses an access-log line: one JSON object whose every value is a scalar
/// (no arrays or objects).
pub fn parse_flat_json(line: &str) -> Result<Map<String, Value>, String> {
    let obj = match serde_json::from_str::<Value>(line).map_err(|e| e.to_string())? {
        Value::Object(obj) => obj,
        other => return Err(format!("not an object: {other}")),
    };
    if let Some((k, _)) = obj.iter().find(|(_, v)| v.is_array() || v.is_object()) {
        return Err(format!("the value of {k:?} is not a scalar"));
    }
    Ok(obj)
}

/// The value of `key`; panics naming the object when it is missing.
pub fn json_get<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a Value {
    obj.get(key)
        .unwrap_or_else(|| panic!("key {:?} missing in {:?}", key, obj))
}
