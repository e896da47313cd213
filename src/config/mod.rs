//! The config file: TOML → typed [`Config`] (serde), with errors that name the file,
//! line, column and field.
//!
//! This module owns the file's shape and its defaults (see docs/configuration.md).
//! It does not interpret the values: [`crate::gateway::Gateway::compile`] turns a `Config` into the
//! snapshot that serves requests, and reports cross-references (an unknown upstream,
//! say) through [`Source::error_at`] so they carry a line too.

mod admin;
mod auth;
mod cors;
mod error;
pub mod include;
pub mod redact;
pub mod secret;
mod throttle;
mod tls;
mod units;
mod waf;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
pub use toml::Spanned;

pub use admin::AdminConfig;
pub use auth::AuthConfig;
pub use cors::CorsConfig;
pub use error::ConfigError;
pub use throttle::{
    ApiKeyConfig, ApiKeysConfig, PlanConfig, QuotaConfig, RateConfig, StoreConfig, ThrottleConfig,
};
pub use tls::{CertConfig, TlsListenerConfig, UpstreamTlsConfig};
pub use units::{ByteSize, Cidr, ConfigDuration};
pub use waf::{Exclusion, RateBased, WafConfig};

/// The whole config file. Only `[[route]]` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Other files merged into this one ([`include`]).
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub server: ServerConfig,
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub auth: BTreeMap<String, AuthConfig>,
    #[serde(default)]
    pub waf: BTreeMap<String, WafConfig>,
    #[serde(default)]
    pub cors: BTreeMap<String, CorsConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    pub throttle: Option<ThrottleConfig>,
    #[serde(default, rename = "plan")]
    pub plans: Vec<PlanConfig>,
    #[serde(default)]
    pub api_keys: ApiKeysConfig,
    #[serde(default, rename = "api_key")]
    pub keys: Vec<ApiKeyConfig>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
}

/// Which io driver the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, epoll otherwise.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

/// `[server]`: listeners, limits and timeouts of the client side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub workers: usize,
    pub listen: Vec<Spanned<SocketAddr>>,
    pub driver: DriverChoice,
    pub max_header_bytes: ByteSize,
    pub max_body_bytes: ByteSize,
    pub header_timeout: ConfigDuration,
    pub idle_timeout: ConfigDuration,
    pub drain_timeout: ConfigDuration,
    pub max_connections: usize,
    pub trusted_proxies: Vec<Cidr>,
    /// `[[server.tls]]`: HTTPS listeners.
    pub tls: Vec<TlsListenerConfig>,
    /// After SIGTERM, how long `/ready` says 503 while the gateway still
    /// accepts and serves, before the listeners close and the drain begins.
    pub shutdown_delay: ConfigDuration,
    /// The deployment stage (`dev`, `staging`, `prod`): logged at start, in
    /// `portcullis_build_info` and on every access line.
    pub stage: Option<Spanned<String>>,
}

impl ServerConfig {
    /// Every listener, in config order: the plain ones (`server.listen`), then
    /// the HTTPS ones (`[[server.tls]]`, with their index).
    pub fn listeners(&self) -> impl Iterator<Item = (Option<usize>, &Spanned<SocketAddr>)> {
        self.listen.iter().map(|a| (None, a)).chain(
            self.tls
                .iter()
                .enumerate()
                .map(|(i, t)| (Some(i), &t.listen)),
        )
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: 0,
            listen: vec![Spanned::new(
                0..0,
                "0.0.0.0:8080".parse().expect("literal address"),
            )],
            driver: DriverChoice::Auto,
            max_header_bytes: ByteSize(16 << 10),
            max_body_bytes: ByteSize(10 << 20),
            header_timeout: secs(10),
            idle_timeout: secs(60),
            drain_timeout: secs(30),
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
            tls: Vec::new(),
            shutdown_delay: ConfigDuration(std::time::Duration::ZERO),
            stage: None,
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    /// nginx's `combined`: `addr - user [time] "request" status bytes "referer" "agent"`.
    Combined,
}

/// `[log]`: operational log level and the access log's destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    /// `"stdout"`, `"off"`, or a file path (relative to the config file).
    pub access: String,
    /// The access line's format: `"json"` (the default) or `"combined"` (nginx's).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            access: "stdout".into(),
            format: LogFormat::Json,
        }
    }
}

/// How a request picks one of an upstream's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConn,
}

/// `[[upstream]]`: a named group of targets and how to talk to them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: Spanned<String>,
    /// `host:port`; names are resolved when the config is compiled.
    pub targets: Spanned<Vec<String>>,
    #[serde(default)]
    pub balance: Balance,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: ConfigDuration,
    #[serde(default = "default_response_timeout")]
    pub response_timeout: ConfigDuration,
    #[serde(default = "default_max_idle")]
    pub max_idle_per_core: usize,
    /// Consecutive failures after which a target is skipped for `fail_timeout`.
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout: ConfigDuration,
    /// How long an idle pooled connection may be kept before it is closed.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: ConfigDuration,
    /// Connect to the targets over TLS.
    pub tls: Option<UpstreamTlsConfig>,
}

/// `[[route]]`: which requests it takes, what guards them and where they go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub path_exact: Option<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    pub upstream: Option<Spanned<String>>,
    pub mock: Option<MockConfig>,
    pub max_body_bytes: Option<ByteSize>,
    #[serde(default)]
    pub allow_ips: Vec<Cidr>,
    #[serde(default)]
    pub deny_ips: Vec<Cidr>,
    /// An API key (usage plan) is required: 403 without a valid one.
    #[serde(default)]
    pub api_key: bool,
    pub throttle: Option<RateConfig>,
    /// A `[waf.*]` name, or `"off"` (the default).
    pub waf: Option<Spanned<String>>,
    /// An `[auth.*]` name; absent or `"none"` for none.
    pub auth: Option<Spanned<String>>,
    /// Any of these scopes (`scope` space-separated, or `scp` array) → else 403.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Claim → accepted values (any of); every listed claim must match → else 403.
    #[serde(default)]
    pub claims: BTreeMap<String, Vec<String>>,
    /// A `[cors.*]` name: preflights answered, CORS headers on every answer.
    pub cors: Option<Spanned<String>>,
    /// The route is meant to be open (no authentication): `portcullis audit`
    /// does not report it.
    #[serde(default)]
    pub public: bool,
}

/// A canned answer for a route without an upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    #[serde(default = "default_mock_status")]
    pub status: Spanned<u16>,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn secs(n: u64) -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(n))
}
fn default_connect_timeout() -> ConfigDuration {
    secs(2)
}
fn default_response_timeout() -> ConfigDuration {
    secs(30)
}
fn default_max_idle() -> usize {
    64
}
fn default_max_fails() -> u32 {
    3
}
fn default_fail_timeout() -> ConfigDuration {
    secs(10)
}
fn default_keepalive_timeout() -> ConfigDuration {
    secs(30)
}
fn default_mock_status() -> Spanned<u16> {
    Spanned::new(0..0, 200)
}
fn default_content_type() -> String {
    "application/json".into()
}

/// The text a config was read from, kept so later stages can turn spans into lines.
#[derive(Debug, Clone)]
pub struct Source {
    /// The main file.
    pub path: PathBuf,
    /// Its text, with the files it includes appended ([`include`]).
    pub text: String,
    /// Where each included file starts in `text`.
    pub parts: Vec<include::Part>,
}

impl Source {
    /// The text of one file, nothing included.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Source {
        Source {
            path: path.into(),
            text: text.into(),
            parts: Vec::new(),
        }
    }

    /// The line (1-based, of the merged text) of byte `pos`; [`Source::locate`]
    /// names its file and line there.
    pub fn line(&self, pos: usize) -> usize {
        error::line_col(&self.text, pos).0
    }

    /// The file and its line for line `line` of the merged text.
    pub fn locate(&self, line: usize) -> (&Path, usize) {
        match self.parts.iter().rev().find(|p| p.first_line <= line) {
            Some(p) => (&p.path, line - p.first_line + 1),
            None => (&self.path, line),
        }
    }

    /// An error about the value at byte span `span` of this file.
    pub fn error_at(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::at(self, span.start, Some(field.to_string()), message.into())
    }

    /// The directory relative paths in this config are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<(Config, Source), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
    let mut source = Source::new(path, text);
    include::merge(&mut source)?;
    let config = parse(&source)?;
    Ok((config, source))
}

/// Parses config text already read into `source`.
pub fn parse(source: &Source) -> Result<Config, ConfigError> {
    toml::from_str(&source.text).map_err(|e| ConfigError::from_toml(source, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::new("gw.toml", text)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(&src("[[route]]\nname = \"r\"\npath = \"/\"\nmock = {}\n")).unwrap();
        assert_eq!(c.server.max_header_bytes.0, 16384);
        assert_eq!(c.server.listen.len(), 1);
        assert_eq!(c.log.access, "stdout");
        assert_eq!(*c.routes[0].mock.as_ref().unwrap().status.get_ref(), 200);
    }

    #[test]
    fn bad_duration_names_line_and_field() {
        let text = "[server]\nworkers = 1\nheader_timeout = \"abc\"\n\n[[route]]\nname = \"r\"\npath = \"/\"\n";
        let e = parse(&src(text)).unwrap_err().to_string();
        assert!(e.starts_with("gw.toml:3:"), "{e}");
        assert!(e.contains("server.header_timeout"), "{e}");
        assert!(e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let text = "[[route]]\nname = \"a\"\npath = \"/\"\n\n[[route]]\nname = \"b\"\nbogus = 1\n";
        let e = parse(&src(text)).unwrap_err().to_string();
        assert!(e.starts_with("gw.toml:7:"), "{e}");
        assert!(e.contains("route[1].bogus"), "{e}");
    }

    #[test]
    fn inline_table_field_path() {
        let text = "[[route]]\nname = \"a\"\npath = \"/\"\nmock = { status = \"x\" }\n";
        let e = parse(&src(text)).unwrap_err().to_string();
        assert!(e.starts_with("gw.toml:4:"), "{e}");
        assert!(e.contains("route[0].mock.status"), "{e}");
    }
}
