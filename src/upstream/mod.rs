//! Connections to upstreams: the compiled `[[upstream]]` ([`Upstream`]), the
//! connection type ([`conn`]: TCP or TLS, with its connect deadline and staleness
//! probe) and the per-core idle pools with balancing ([`pool`]). It depends on
//! nothing above config and TLS, so the proxy and the external authorizer share it.

pub mod conn;
pub mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Balance;

/// A compiled `[[upstream]]`.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<SocketAddr>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle_per_core: usize,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// Talk TLS to the targets.
    pub tls: Option<crate::tls::UpstreamTls>,
    /// Its position in the snapshot's upstream list (its metric slot's key).
    pub index: usize,
}
