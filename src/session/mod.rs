//! The per-core session layer the proxy and the server both sit on: a core's
//! state ([`Core`]: its view of the current Gateway and API keys, upstream pools,
//! buffers, request ids, limiter shard and timers) and what the control thread
//! shares with the cores ([`Shared`]).

mod body;
mod client;
mod core;
mod request;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::gateway::Gateway;
use crate::guard::KeyTable;
use crate::limit::Limiter;

pub use self::core::{Core, IO_BUF};
pub use body::{pump, BodyError, BodyState};
pub use client::{ClientConn, ClientIo, ConnTls};
pub use request::{Exchange, Request, RequestId};

/// What the control thread and the cores share; written only by the control thread.
pub struct Shared {
    pub gateway: ArcSwap<Gateway>,
    pub generation: AtomicU64,
    pub shutdown: AtomicBool,
    /// The API keys, republished when the store or the config's keys change.
    pub keys: ArcSwap<KeyTable>,
    pub keys_generation: AtomicU64,
    pub limiter: Arc<Limiter>,
    /// The cores' request counters (each core writes only its own).
    pub metrics: Arc<crate::metrics::Registry>,
}
