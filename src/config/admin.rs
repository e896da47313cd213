//! `[admin]`: the operator's listener (health, readiness, metrics, reload) and the
//! bearer tokens that guard it.

use std::net::SocketAddr;

use serde::Deserialize;

use super::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin API listens; set at start (a reload does not move it).
    pub listen: Spanned<SocketAddr>,
    /// Secret references (`env:NAME`, `file:PATH`) to the accepted bearer tokens:
    /// one, or a list so a token can be rotated. Reloaded with the config.
    pub token: Option<Spanned<toml::Value>>,
}

impl AdminConfig {
    /// The token references, each with the span of `token` (a string, or every
    /// string of the list). Err: `token` is neither.
    pub fn token_refs(&self) -> Result<Vec<Spanned<String>>, std::ops::Range<usize>> {
        let Some(t) = &self.token else {
            return Ok(Vec::new());
        };
        let span = t.span();
        match t.get_ref() {
            toml::Value::String(s) => Ok(vec![Spanned::new(span, s.clone())]),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(Spanned::new(span.clone(), s.clone())),
                    _ => Err(span.clone()),
                })
                .collect(),
            _ => Err(span),
        }
    }
}
