//! The config sections of throttling and usage plans: `[throttle]`, `[[plan]]`,
//! `[api_keys]`, `[[api_key]]` and `[store]` (see docs/configuration.md). Shapes and
//! defaults only; `Gateway::compile` checks the values and cross-references.

use serde::Deserialize;
use toml::Spanned;

use super::ConfigDuration;
use crate::limit::Period;

/// A token bucket: `rate` per second (may be fractional), `burst` tokens of
/// headroom (default: the rate, at least 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub rate: Spanned<f64>,
    pub burst: Option<Spanned<f64>>,
}

/// `[throttle]`: the account level (the whole gateway) and the per-client-IP level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    pub rate: Option<Spanned<f64>>,
    pub burst: Option<Spanned<f64>>,
    pub per_ip: Option<RateConfig>,
    /// Send RateLimit-Policy / RateLimit fields (draft-ietf-httpapi-ratelimit-headers).
    #[serde(default)]
    pub headers: bool,
    /// How many buckets (client IPs, keys, routes) are tracked at once, gateway-wide
    /// and per core; past it the least recently used are forgotten. Restart to change.
    #[serde(default = "default_max_tracked")]
    pub max_tracked: usize,
}

/// `[[plan]]`: a usage plan that API keys belong to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub name: Spanned<String>,
    pub throttle: Option<RateConfig>,
    pub quota: Option<QuotaConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub limit: Spanned<u64>,
    pub period: Period,
}

/// `[api_keys]`: where requests carry their key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeysConfig {
    pub header: Spanned<String>,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        ApiKeysConfig {
            header: Spanned::new(0..0, "x-api-key".into()),
        }
    }
}

/// `[[api_key]]`: a key declared in the config, by its hash only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub name: Spanned<String>,
    pub plan: Spanned<String>,
    /// `"sha256:<64 hex digits>"`: the SHA-256 of the key's text.
    pub hash: Spanned<String>,
    /// RFC 3339, e.g. `"2027-01-01T00:00:00Z"`.
    pub expires: Option<Spanned<String>>,
    #[serde(default)]
    pub revoked: bool,
}

/// `[store]`: where API keys and quota counters are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The embedded store's file (redb), relative to the config file.
    pub path: String,
    pub redis: Option<Spanned<String>>,
    pub flush_interval: ConfigDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: "data/portcullis.redb".into(),
            redis: None,
            flush_interval: ConfigDuration(std::time::Duration::from_secs(1)),
        }
    }
}

fn default_max_tracked() -> usize {
    100_000
}
