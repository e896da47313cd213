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
    #[serde(default)]
    pub token: Tokens,
}

/// One token reference or several.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(untagged)]
pub enum Tokens {
    #[default]
    None,
    One(Spanned<String>),
    Many(Vec<Spanned<String>>),
}

impl Tokens {
    pub fn refs(&self) -> &[Spanned<String>] {
        match self {
            Tokens::None => &[],
            Tokens::One(t) => std::slice::from_ref(t),
            Tokens::Many(v) => v,
        }
    }
}
