//! `[waf.NAME]` sections: a rule set and how it is applied (see
//! docs/configuration.md, and rules/README.md for the rule files). Shapes and
//! defaults only.

use serde::Deserialize;
use toml::Spanned;

use super::{ByteSize, Cidr, ConfigDuration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafConfig {
    /// A directory of native rule files (`*.toml`), relative to the config file.
    pub rules: Option<Spanned<String>>,
    /// A directory of SecLang `*.conf` files (the OWASP CRS), loaded in name order.
    pub crs: Option<Spanned<String>>,
    /// The CRS setup file (`crs-setup.conf`), loaded before `crs`.
    pub crs_setup: Option<Spanned<String>>,
    /// `"block"` (default) or `"count"`: log and count, never block.
    pub mode: Option<Spanned<String>>,
    #[serde(default = "default_threshold")]
    pub anomaly_threshold: u32,
    /// 1–4; native rules default to 1, the CRS to what `crs_setup` says.
    pub paranoia: Option<Spanned<u8>>,
    #[serde(default)]
    pub ip_deny: Vec<Cidr>,
    /// Client networks the WAF lets through unexamined.
    #[serde(default)]
    pub ip_allow: Vec<Cidr>,
    pub rate_based: Option<RateBased>,
    #[serde(default)]
    pub exclude: Vec<Exclusion>,
    /// How much of a body is inspected.
    #[serde(default = "default_body_limit")]
    pub inspect_body: ByteSize,
    /// Past `inspect_body` (or a chunked body): `"continue"` (inspect the
    /// first part; the default), `"match"` or `"no_match"`.
    pub oversize: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateBased {
    pub limit: Spanned<u64>,
    pub window: ConfigDuration,
}

/// Turns a rule off where it misfires: everywhere, under a path prefix, or on a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub rule: u32,
    pub path: Option<String>,
    pub route: Option<String>,
}

fn default_threshold() -> u32 {
    5
}
fn default_body_limit() -> ByteSize {
    ByteSize(64 << 10)
}
