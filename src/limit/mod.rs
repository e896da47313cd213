//! Throttling and quotas: token buckets shared by the whole gateway, spent per core.
//!
//! A limit is a [`Policy`] (R tokens per second, a bucket of B) applied to a
//! [`LimitKey`] (the account, a route, an API key, a client IP). Its tokens live in
//! a [`GlobalBucket`] that every core can reach; each core spends from a small local
//! allowance carved out of it ([`Shard`]). The request path reads and writes only
//! its core's shard: the global bucket is locked when a core's allowance runs dry
//! (it borrows at once, not at the next tick), and when an idle core returns what it
//! holds. Chunks are sized so that a busy key costs a lock every ~10 ms of its rate,
//! never one per request; a dry core remembers when the global bucket can next have
//! a token and refuses locally until then, so a flood of rejected requests does not
//! reach the lock either.
//!
//! Safety (over any window T the gateway admits at most R·T + B) follows from one
//! invariant kept under the global lock: the global level plus every core's
//! allowance never exceeds B. Allowances are carved from the level, and refill stops
//! at B minus what cores hold. Rejected requests take nothing: a request first
//! checks every level, and spends one token from each only if all admit it.
//!
//! Quotas (a plan's day/week/month allowance) use the same scheme with a level that
//! does not refill but resets at the period boundary; see [`quota`].
//!
//! Hand-written because it is on the request path and core-local by design.

mod bounded;
mod bucket;
pub mod period;
pub mod quota;
mod shard;

pub use bounded::BoundedMap;
pub use bucket::GlobalBucket;
pub use period::Period;
pub use quota::{QuotaKey, QuotaPolicy};
pub use shard::{Decision, Level, Limiter, RateInfo, Refusal, Shard};

use std::net::IpAddr;

/// A token bucket's shape: `rate` tokens per second (may be fractional) into a
/// bucket of `burst` tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub rate: f64,
    pub burst: f64,
}

impl Policy {
    /// The window (seconds) the RateLimit-Policy field advertises: the time an empty
    /// bucket takes to fill.
    pub fn window_secs(&self) -> u64 {
        ((self.burst / self.rate).ceil() as u64).max(1)
    }
}

/// Which bucket a level draws from. The identity survives a reload when the thing
/// it names does (a route's name, a key's hash), so levels are kept; the policy is
/// passed with each check, so a changed rate takes effect at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// `[throttle]`: the whole gateway.
    Account,
    /// A route's `throttle`, by a hash of the route's name.
    Route(u64),
    /// A usage plan's throttle, per API key (the first 8 bytes of its SHA-256).
    ApiKey(u64),
    /// A WAF's rate-based rule, by a hash of the WAF's name and the client.
    Waf(u64),
    /// `[throttle].per_ip`, by client address: IPv4 addresses one by one (as
    /// mapped IPv6), IPv6 by /64 — one subscriber's allocation, which a single
    /// client can otherwise rotate through at will.
    Ip(u128),
}

impl LimitKey {
    pub fn ip(ip: IpAddr) -> LimitKey {
        match ip {
            IpAddr::V4(v4) => LimitKey::Ip(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => LimitKey::Ip(u128::from(v4.to_ipv6_mapped())),
                None => LimitKey::Ip(u128::from(v6) & !u128::from(u64::MAX)),
            },
        }
    }

    /// The route key for a route name: a stable 64-bit hash (FNV-1a).
    pub fn route(name: &str) -> LimitKey {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        LimitKey::Route(h)
    }

    pub fn api_key(hash: &[u8; 32]) -> LimitKey {
        LimitKey::ApiKey(u64::from_le_bytes(hash[..8].try_into().expect("8 bytes")))
    }
}
