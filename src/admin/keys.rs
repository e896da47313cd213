//! `/keys`: the API keys of the store, managed over the admin API with the
//! same operations as `portcullis keys …` ([`crate::keys`]).
//!
//! - `GET /keys` → 200 `[{"name","plan","state","expires","created","hash"}…]`
//!   (never a key's text);
//! - `POST /keys` `{"plan":"basic","name":"acme","expires":"2027-01-01T00:00:00Z"}`
//!   (`name` and `expires` optional) → 201 `{"key":"pk_…","name",…}`: the
//!   key's text, shown this once;
//! - `DELETE /keys/NAME` → 200 `{"revoked":N}` (404 when no active key has
//!   that name);
//! - `POST /keys/NAME/rotate` `{"grace":"24h"}` → 201 with the new key and
//!   `old_expires`, when the old one stops working.
//!
//! A bad request is 400 `{"message":"…"}` saying what is wrong; a store that
//! cannot be opened is 503. The running gateway picks changes up within a
//! second (it polls the store), as with the command line.

use super::Answer;
use crate::http::request::Method;
use crate::limit::period::{format_rfc3339, unix_now};
use crate::session::Shared;

fn error(status: u16, message: impl std::fmt::Display) -> Answer {
    Answer::json(
        status,
        serde_json::json!({ "message": message.to_string() }).to_string(),
    )
}

/// The JSON object of a request body; a 400 saying why otherwise.
fn object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Answer> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(400, "the body must be a JSON object")),
        Err(e) => Err(error(400, format!("the body is not JSON: {e}"))),
    }
}

/// An optional string field of `o`.
fn field<'a>(
    o: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<&'a str>, Answer> {
    match o.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(400, format!("{name} must be a string"))),
    }
}

/// A path segment with its `%XX` escapes decoded (key names may hold spaces,
/// `/`, `?`, …); None when it is not UTF-8 or holds a raw `/`.
fn percent_decoded(seg: &[u8]) -> Option<String> {
    if seg.contains(&b'/') {
        return None;
    }
    let mut out = Vec::with_capacity(seg.len());
    let mut i = 0;
    while i < seg.len() {
        match (seg[i], seg.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let h = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn created_json(c: &crate::keys::Created, t: u64) -> serde_json::Value {
    let mut v = crate::keys::to_json(&c.key, t);
    v["key"] = serde_json::Value::String(c.text.clone());
    v
}

pub(super) fn route(method: Method, path: &[u8], body: &[u8], shared: &Shared) -> Answer {
    let gw = shared.gateway.load();
    let rest = &path[b"/keys".len()..];
    let name = rest
        .strip_prefix(b"/")
        .map(|r| r.strip_suffix(b"/rotate").map_or((r, false), |n| (n, true)));
    let name = match name {
        Some((n, rotate)) => match percent_decoded(n) {
            Some(s) if !s.is_empty() => Some((s, rotate)),
            _ => return Answer::message(404),
        },
        None if rest.is_empty() => None,
        None => return Answer::message(404),
    };
    let open = || crate::keys::open_store(&gw).map_err(|e| error(503, e));
    let t = unix_now();
    let result = match (name, method) {
        (None, Method::Get | Method::Head) => open().map(|store| match store.list_keys() {
            Ok(keys) => Answer::json(
                200,
                serde_json::Value::Array(keys.iter().map(|k| crate::keys::to_json(k, t)).collect())
                    .to_string(),
            ),
            Err(e) => error(503, e),
        }),
        (None, Method::Post) => object(body).and_then(|o| {
            let plan = field(&o, "plan")?.ok_or_else(|| error(400, "plan is required"))?;
            let store = open()?;
            match crate::keys::create(&gw, &store, plan, field(&o, "name")?, field(&o, "expires")?)
            {
                Ok(c) => Ok(Answer::json(201, created_json(&c, t).to_string())),
                Err(e) => Err(error(400, e)),
            }
        }),
        (None, _) => Ok(Answer::not_allowed("GET, HEAD, POST")),
        (Some((name, false)), Method::Delete) => {
            open().map(|store| match store.revoke_key(&name) {
                Ok(0) => error(404, format!("no active key named {name:?}")),
                Ok(n) => Answer::json(200, serde_json::json!({ "revoked": n }).to_string()),
                Err(e) => error(503, e),
            })
        }
        (Some((_, false)), _) => Ok(Answer::not_allowed("DELETE")),
        (Some((name, true)), Method::Post) => object(body).and_then(|o| {
            let grace = field(&o, "grace")?.ok_or_else(|| error(400, "grace is required"))?;
            let store = open()?;
            match crate::keys::rotate(&store, &name, grace) {
                Ok((c, until)) => {
                    let mut v = created_json(&c, t);
                    v["old_expires"] = serde_json::Value::String(format_rfc3339(until));
                    Ok(Answer::json(201, v.to_string()))
                }
                Err(e) if e.starts_with("no active key") => Err(error(404, e)),
                Err(e) => Err(error(400, e)),
            }
        }),
        (Some((_, true)), _) => Ok(Answer::not_allowed("POST")),
    };
    result.unwrap_or_else(|a| a)
}
