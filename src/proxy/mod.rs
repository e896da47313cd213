//! The upstream side of one exchange: header rewriting ([`headers`]) and
//! forwarding one request and its response ([`forward`]), over the connections
//! of [`crate::upstream`].

pub mod forward;
pub mod headers;

pub use forward::forward;
