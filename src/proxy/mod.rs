//! The upstream side: per-core connection pools and balancing ([`pool`]), header
//! rewriting ([`headers`]) and forwarding one request and its response
//! ([`forward`]).

pub mod forward;
pub mod headers;
pub mod pool;

pub use forward::{forward, Exchange};
