//! Secret references: a config field that holds a secret names where it is —
//! `file:PATH` (relative to the config file) or `env:NAME` — and never the secret
//! itself, so configs can be shared and logged.

use super::{ConfigError, Source, Spanned};

/// Reads the secret `value` refers to. Errors name the field, never the secret.
pub fn resolve(
    source: &Source,
    value: &Spanned<String>,
    field: &str,
) -> Result<String, ConfigError> {
    let v = value.get_ref();
    if let Some(p) = v.strip_prefix("file:") {
        let path = source.dir().join(p);
        return std::fs::read_to_string(&path).map_err(|e| {
            source.error_at(
                value.span(),
                field,
                format!("cannot read {}: {e}", path.display()),
            )
        });
    }
    if let Some(name) = v.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| {
            source.error_at(
                value.span(),
                field,
                format!("environment variable {name} is not set"),
            )
        });
    }
    Err(source.error_at(
        value.span(),
        field,
        "a secret is a reference: \"file:PATH\" or \"env:NAME\"",
    ))
}
