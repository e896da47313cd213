//! `[auth.NAME]` sections: the authorizers routes name in `auth = "NAME"` (see
//! docs/configuration.md). One flat shape for every `type`, so each field keeps its
//! line for errors; `Gateway::compile` checks which fields belong to which type.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigDuration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `"jwt"`, `"sigv4"`, `"external"` (or `"mtls"`, which comes with TLS).
    #[serde(rename = "type")]
    pub kind: Spanned<String>,

    // --- jwt -----------------------------------------------------------------
    pub issuer: Option<Spanned<String>>,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks_url: Option<Spanned<String>>,
    pub jwks_file: Option<Spanned<String>>,
    pub algorithms: Option<Spanned<Vec<String>>>,
    pub leeway: Option<ConfigDuration>,
    /// Claim → upstream header.
    pub forward_claims: Option<Spanned<BTreeMap<String, String>>>,
    /// Where the token is: `"header:authorization"` (the default, `Bearer` scheme),
    /// `"header:x-token"` (the whole value), `"query:access_token"`, `"cookie:id"`.
    pub token: Option<Spanned<String>>,
    /// Forward the `Authorization` header to the upstream (default: stripped).
    pub forward_authorization: Option<bool>,
    pub jwks_refresh: Option<ConfigDuration>,

    // --- sigv4 ---------------------------------------------------------------
    pub region: Option<Spanned<String>>,
    pub service: Option<Spanned<String>>,
    /// A secret reference (`file:path` or `env:NAME`) to the access keys.
    pub credentials: Option<Spanned<String>>,
    pub max_skew: Option<ConfigDuration>,
    pub allow_unsigned_payload: Option<bool>,
    /// The largest signed body the gateway buffers to check its hash.
    pub max_signed_body: Option<super::ByteSize>,

    // --- external ------------------------------------------------------------
    pub url: Option<Spanned<String>>,
    /// Identity sources: `"header:NAME"`, `"query:NAME"`, `"cookie:NAME"`.
    pub identity: Option<Spanned<Vec<String>>>,
    pub cache_ttl: Option<ConfigDuration>,
    pub timeout: Option<ConfigDuration>,
    /// `"deny"` (default) or `"allow"` when the authorizer fails or times out.
    pub failure_mode: Option<Spanned<String>>,
    /// Request headers sent along to the authorizer.
    pub forward_headers: Option<Vec<String>>,
    /// Headers of the authorizer's answer with this prefix go to the upstream.
    pub response_headers_prefix: Option<Spanned<String>>,

    // --- mtls ----------------------------------------------------------------
    pub subjects: Option<Vec<String>>,
}
