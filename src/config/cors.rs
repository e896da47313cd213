//! `[cors.NAME]` sections: a CORS policy routes name with `cors = "NAME"` (see
//! docs/configuration.md). Shapes and defaults only; the policy is checked and
//! compiled in `guard::cors`.

use serde::Deserialize;
use toml::Spanned;

use super::ConfigDuration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`"https://app.example.com"`), `"https://*.example.com"`
    /// for subdomains, or `"*"` (only without `credentials`).
    pub origins: Spanned<Vec<Spanned<String>>>,
    /// Methods a preflight may ask for (default: the CORS-safelisted GET, HEAD, POST).
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Request headers a preflight may ask for (case-insensitive).
    #[serde(default)]
    pub headers: Vec<Spanned<String>>,
    /// Response headers a page may read beyond the safelisted ones.
    #[serde(default)]
    pub expose_headers: Vec<Spanned<String>>,
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may cache a preflight answer; absent: no `Max-Age`.
    pub max_age: Option<Spanned<ConfigDuration>>,
    /// Answer Private Network Access preflights with
    /// `Access-Control-Allow-Private-Network: true`.
    #[serde(default)]
    pub private_network: bool,
}
