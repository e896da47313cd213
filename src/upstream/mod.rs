//! Connections to upstreams: the connection type ([`conn`]: TCP or TLS, with its
//! connect deadline and staleness probe) and the per-core idle pools with
//! balancing ([`pool`]). Below the proxy and the per-core session, which holds a
//! core's pools.

pub mod conn;
pub mod pool;
