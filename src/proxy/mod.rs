//! The upstream side: per-core connection pools and balancing ([`pool`]), the
//! connection type ([`conn`]: TCP or TLS), header rewriting ([`headers`]) and
//! forwarding one request and its response ([`forward`]).

pub mod conn;
pub mod forward;
pub mod headers;
pub mod pool;

pub use forward::{forward, Exchange};
