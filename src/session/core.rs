//! `Core`: the state one worker thread owns — its view of the current Gateway, its
//! upstream pools, its buffer pool, its request-id generator and its counters.
//!
//! Everything here is core-local (`Cell`, `RefCell`, `Rc`): the request path touches
//! no lock and writes no shared atomic. The one shared read per request is the
//! reload generation, an atomic that only the control thread writes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Shared;
use crate::gateway::Gateway;
use crate::guard::KeyTable;
use crate::limit::Shard;
use crate::log::AccessSink;
use crate::time::Timers;
use crate::upstream::pool::UpstreamPools;

/// Capacity of the pooled buffers used for bodies and outgoing heads.
pub const IO_BUF: usize = 64 << 10;
const MAX_POOLED_BUFFERS: usize = 256;

pub struct Core {
    pub id: usize,
    pub shared: Arc<Shared>,
    // Rc around the Arc on purpose: a request clones the Rc (a core-local count)
    // rather than the Arc, whose count every core would write.
    #[allow(clippy::redundant_allocation)]
    gateway: RefCell<Rc<Arc<Gateway>>>,
    seen_generation: Cell<u64>,
    #[allow(clippy::redundant_allocation)]
    keys: RefCell<Rc<Arc<KeyTable>>>,
    seen_keys: Cell<u64>,
    /// This core's share of the throttle and quota buckets.
    pub shard: Shard,
    /// Verified tokens and other authentication state of this core.
    pub auth: crate::guard::auth::CoreState,
    /// Open client connections on this core.
    pub connections: Cell<usize>,
    /// Requests between head read and response end.
    pub in_flight: Cell<usize>,
    /// Set when shutdown begins: finish the current request, then close.
    pub draining: Cell<bool>,
    pub upstreams: RefCell<UpstreamPools>,
    buffers: RefCell<Vec<Vec<u8>>>,
    rng: Cell<[u64; 2]>,
    pub access: Option<AccessSink>,
    /// The coarse clock and the deadlines of this core's connections.
    pub timers: Rc<Timers>,
    /// The metric slot of each route of the current snapshot, by route index.
    route_slots: RefCell<Vec<u32>>,
    /// The metric slot of each upstream of the current snapshot, by index.
    upstream_slots: RefCell<Vec<u32>>,
    unmatched_slot: u32,
    /// This core's series counters (WAF rule matches).
    pub counters: crate::metrics::CoreCounters,
}

impl Core {
    pub fn new(id: usize, shared: Arc<Shared>, access: Option<AccessSink>) -> Core {
        let gateway = shared.gateway.load_full();
        let generation = shared.generation.load(Ordering::Acquire);
        let mut seed = [0u8; 16];
        fill_random(&mut seed);
        let s0 = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")) | 1;
        let s1 = u64::from_le_bytes(seed[8..].try_into().expect("8 bytes"))
            ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let keys = shared.keys.load_full();
        let seen_keys = shared.keys_generation.load(Ordering::Acquire);
        let shard = shared.limiter.shard(id);
        let timers = Rc::new(Timers::default());
        let counters = crate::metrics::CoreCounters::new(shared.metrics.clone(), id);
        Core {
            id,
            shared,
            gateway: RefCell::new(Rc::new(gateway)),
            seen_generation: Cell::new(generation),
            keys: RefCell::new(Rc::new(keys)),
            seen_keys: Cell::new(seen_keys),
            shard,
            auth: crate::guard::auth::CoreState::new(timers.clone()),
            connections: Cell::new(0),
            in_flight: Cell::new(0),
            draining: Cell::new(false),
            upstreams: RefCell::new(UpstreamPools::default()),
            buffers: RefCell::new(Vec::new()),
            rng: Cell::new([s0, s1]),
            access,
            timers,
            route_slots: RefCell::new(Vec::new()),
            upstream_slots: RefCell::new(Vec::new()),
            unmatched_slot: 0,
            counters,
        }
        .with_route_slots()
    }

    /// Maps the current snapshot's routes to their metric slots (at start and
    /// when a reload's snapshot is picked up: a lock per reload, not per request).
    fn with_route_slots(self) -> Core {
        self.map_route_slots();
        Core {
            unmatched_slot: self.shared.metrics.slot(crate::metrics::UNMATCHED),
            ..self
        }
    }

    fn map_route_slots(&self) {
        let gw = self.gateway.borrow();
        let slots = gw
            .routes
            .iter()
            .map(|r| self.shared.metrics.slot(&r.name))
            .collect();
        *self.route_slots.borrow_mut() = slots;
        let upstream = crate::metrics::SlotKind::Upstream;
        let slots = gw
            .upstreams
            .iter()
            .map(|u| self.shared.metrics.slot_of(upstream, &u.name))
            .collect();
        *self.upstream_slots.borrow_mut() = slots;
    }

    /// Counts a finished request: its route (None: no route matched), status
    /// and duration, and `denied`, the refusal's [`crate::guard::Reason::index`],
    /// in this core's own counters.
    pub fn count_request(
        &self,
        route: Option<usize>,
        status: u16,
        took: std::time::Duration,
        denied: Option<usize>,
    ) {
        let slot = match route {
            Some(i) => self
                .route_slots
                .borrow()
                .get(i)
                .copied()
                .unwrap_or(u32::MAX),
            None => self.unmatched_slot,
        };
        self.shared
            .metrics
            .core(self.id)
            .record(slot, status, took, denied);
    }

    /// Counts one exchange with upstream `index` of the current snapshot: the
    /// status it answered (502/504 when it failed) and how long it took.
    pub fn count_upstream(&self, index: usize, status: u16, took: std::time::Duration) {
        let slot = self
            .upstream_slots
            .borrow()
            .get(index)
            .copied()
            .unwrap_or(u32::MAX);
        self.shared
            .metrics
            .core(self.id)
            .record(slot, status, took, None);
    }

    /// Counts a failed exchange with `upstream` by kind (`connect`, `timeout`,
    /// `reset`, `malformed`).
    pub fn count_upstream_error(&self, upstream: &str, kind: &'static str) {
        self.counters.bump(
            "portcullis_upstream_errors_total",
            &[("upstream", upstream), ("kind", kind)],
        );
    }

    /// Records a target's passive health for `portcullis_upstream_target_up`:
    /// resting for `rest` (after `max_fails`), or answering again (None).
    pub fn note_target(
        &self,
        up: &crate::upstream::Upstream,
        target: std::net::SocketAddr,
        rest: Option<std::time::Duration>,
    ) {
        let target = target.to_string();
        let labels = [("upstream", &*up.name), ("target", target.as_str())];
        let family = crate::metrics::TARGET_REST;
        if rest.is_none() && !self.counters.has(family, &labels) {
            return;
        }
        let until = rest.map_or(0, |d| crate::limit::period::unix_now() + d.as_secs().max(1));
        self.counters.set(family, &labels, until);
    }

    /// The Gateway snapshot to serve the next request with.
    #[allow(clippy::redundant_allocation)]
    pub fn gateway(&self) -> Rc<Arc<Gateway>> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.seen_generation.get() {
            *self.gateway.borrow_mut() = Rc::new(self.shared.gateway.load_full());
            self.seen_generation.set(generation);
            self.map_route_slots();
        }
        self.gateway.borrow().clone()
    }

    /// The API keys to check the next request with.
    #[allow(clippy::redundant_allocation)]
    pub fn keys(&self) -> Rc<Arc<KeyTable>> {
        let generation = self.shared.keys_generation.load(Ordering::Acquire);
        if generation != self.seen_keys.get() {
            *self.keys.borrow_mut() = Rc::new(self.shared.keys.load_full());
            self.seen_keys.set(generation);
        }
        self.keys.borrow().clone()
    }

    /// An empty buffer of capacity [`IO_BUF`].
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(IO_BUF))
    }

    pub fn give_buffer(&self, mut buf: Vec<u8>) {
        let mut pool = self.buffers.borrow_mut();
        if buf.capacity() == IO_BUF && pool.len() < MAX_POOLED_BUFFERS {
            buf.clear();
            pool.push(buf);
        }
    }

    fn next_random(&self) -> u64 {
        // xorshift128+: fast, core-local; request ids need uniqueness, not secrecy.
        let [mut s1, s0] = self.rng.get();
        let result = s0.wrapping_add(s1);
        s1 ^= s1 << 23;
        s1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        self.rng.set([s0, s1]);
        result
    }

    /// A new UUID v4 in text form.
    pub fn new_request_id(&self) -> [u8; 36] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_random().to_le_bytes());
        b[8..].copy_from_slice(&self.next_random().to_le_bytes());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut o = 0;
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                o += 1;
            }
            out[o] = HEX[usize::from(byte >> 4)];
            out[o + 1] = HEX[usize::from(byte & 0xf)];
            o += 2;
        }
        out
    }
}

/// Random bytes for the request-id generator's seed; if the kernel cannot give
/// them, the clock is mixed in instead (ids need uniqueness, not secrecy).
fn fill_random(buf: &mut [u8]) {
    if crate::random::fill(buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= (t >> ((i % 16) * 8)) as u8;
        }
    }
}
