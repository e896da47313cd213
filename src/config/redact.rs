//! The running config as JSON for `GET /config`, with every secret shown as
//! `"<redacted>"`: the values of fields that hold or point at a secret (a
//! bearer token, credentials, a private key, a key hash) and any value written
//! as a secret reference (`env:NAME`, `file:PATH`), wherever it stands.

use serde_json::{Map, Value};

/// Field names whose values are secrets or say where one is.
const SECRET_FIELDS: &[&str] = &[
    "token",
    "tokens",
    "credentials",
    "key",
    "client_key",
    "hash",
    "password",
    "secret",
];

const REDACTED: &str = "<redacted>";

/// `text` (a config file that parsed) as pretty JSON, secrets redacted.
pub fn redacted_json(text: &str) -> String {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    let value = convert(toml::Value::Table(table), false);
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".into())
}

fn convert(v: toml::Value, secret: bool) -> Value {
    match v {
        toml::Value::String(s) if secret || s.starts_with("env:") || s.starts_with("file:") => {
            Value::String(REDACTED.into())
        }
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(|x| convert(x, secret)).collect()),
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| {
                    let secret = SECRET_FIELDS.contains(&k.as_str());
                    (k, convert(v, secret))
                })
                .collect::<Map<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_references_are_redacted() {
        let json = redacted_json(
            "[admin]\nlisten = \"127.0.0.1:9901\"\ntoken = [\"env:A\", \"file:b\"]\n\
             [[api_key]]\nname = \"acme\"\nhash = \"sha256:00\"\n\
             [auth.s]\ntype = \"sigv4\"\ncredentials = \"creds.toml\"\n\
             [[route]]\nname = \"r\"\npath = \"/\"\nheaders = { x = \"env:LEAK\" }\n",
        );
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["admin"]["listen"], "127.0.0.1:9901");
        assert_eq!(v["admin"]["token"], serde_json::json!([REDACTED, REDACTED]));
        assert_eq!(v["api_key"][0]["name"], "acme");
        assert_eq!(v["api_key"][0]["hash"], REDACTED);
        assert_eq!(v["auth"]["s"]["credentials"], REDACTED);
        assert_eq!(v["route"][0]["headers"]["x"], REDACTED);
        assert_eq!(v["route"][0]["path"], "/");
    }
}
