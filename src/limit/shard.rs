//! `Limiter` (the global buckets and quota counters, shared by the cores) and
//! `Shard` (one core's allowances, which the request path spends without a lock).
//!
//! A request is checked against up to four throttle [`Level`]s and a quota in one
//! call: every level must admit it before any token is spent, so a refused request
//! takes nothing from any level. A level whose allowance is empty borrows from its
//! global bucket at once; one whose global bucket is dry remembers when a token can
//! next exist and refuses locally until then. The core's sweeper calls
//! [`Shard::sweep`] every tick: allowances idle for a few ticks go back to the
//! global buckets (and their entries are dropped), and quota holdings are reported.

use std::cell::{Cell, RefCell};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::period::unix_now;

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::quota::QuotaTable;
use super::{BoundedMap, GlobalBucket, LimitKey, Policy, QuotaKey, QuotaPolicy};

/// Global tables are split by key hash so cores borrowing for different keys
/// rarely meet on one lock.
const GLOBAL_SHARDS: usize = 16;
/// Sweeps between eviction passes over a core's allowances, and the idle time (in
/// sweeps) after which an allowance is returned.
const EVICT_EVERY: u64 = 4;
/// A busy level borrows about this many seconds of its rate at a time.
const CHUNK_SECS: f64 = 0.01;
const MIN_CHUNK: f64 = 16.0;

/// One throttle level of a request: a named policy on a key.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// The policy name the RateLimit fields report (`"account"`, `"route"`, …).
    pub name: &'static str,
    pub key: LimitKey,
    pub policy: Policy,
}

/// The RateLimit / RateLimit-Policy facts of one policy (draft-ietf-httpapi-ratelimit-headers-10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub name: &'static str,
    /// Quota units per window (`q`) and the window in seconds (`w`).
    pub quota: u64,
    pub window: u64,
    /// Units left (`r`) and seconds until the policy resets (`t`).
    pub remaining: u64,
    pub reset: u64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// True for a used-up quota ("Limit Exceeded"), false for throttling.
    pub quota: bool,
    /// Seconds until a token (throttle) or the next period (quota); at least 1.
    pub retry_after: u64,
    pub info: RateInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; with the most restrictive policy's state when it was asked for.
    Admit(Option<RateInfo>),
    Refuse(Refusal),
}

/// The state every core shares. Locked only when a core borrows, returns or
/// reports; never once per request.
pub struct Limiter {
    epoch: Instant,
    /// Microseconds set by hand instead of the clock (simulations and tests).
    manual: Option<AtomicU64>,
    /// When the running config was loaded (microseconds on this clock): a changed
    /// policy applies from then, not from the next request.
    config_since: AtomicU64,
    cores: usize,
    buckets: Box<[Mutex<BoundedMap<LimitKey, GlobalBucket>>]>,
    quotas: Mutex<QuotaTable>,
    local_cap: usize,
}

impl Limiter {
    /// `max_keys`: how many buckets (mostly client IPs) are tracked, gateway-wide and
    /// on each core; past it the least recently used are forgotten.
    pub fn new(cores: usize, max_keys: usize) -> Arc<Limiter> {
        let per_shard = max_keys.div_ceil(GLOBAL_SHARDS) + 64;
        Arc::new(Limiter {
            epoch: Instant::now(),
            manual: None,
            config_since: AtomicU64::new(0),
            cores: cores.max(1),
            buckets: (0..GLOBAL_SHARDS)
                .map(|_| Mutex::new(BoundedMap::new(per_shard)))
                .collect(),
            quotas: Mutex::new(QuotaTable::new(cores.max(1))),
            local_cap: max_keys + 64,
        })
    }

    /// A limiter whose clock moves only by [`Limiter::advance`].
    pub fn with_manual_clock(cores: usize, max_keys: usize) -> Arc<Limiter> {
        let mut l = Limiter::new(cores, max_keys);
        Arc::get_mut(&mut l).expect("new").manual = Some(AtomicU64::new(0));
        l
    }

    /// Moves a manual clock forward.
    pub fn advance(&self, secs: f64) {
        if let Some(m) = &self.manual {
            m.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        }
    }

    /// Notes that a new config is serving from now on.
    pub fn config_changed(&self) {
        self.config_since
            .store((self.now() * 1e6) as u64, Ordering::Release);
    }

    fn config_since(&self) -> f64 {
        self.config_since.load(Ordering::Acquire) as f64 / 1e6
    }

    /// Seconds on the limiter's monotonic clock.
    pub fn now(&self) -> f64 {
        match &self.manual {
            Some(m) => m.load(Ordering::Relaxed) as f64 / 1e6,
            None => self.epoch.elapsed().as_secs_f64(),
        }
    }

    fn bucket_shard(&self, key: &LimitKey) -> MutexGuard<'_, BoundedMap<LimitKey, GlobalBucket>> {
        let h = FxBuildHasher.hash_one(key);
        lock(&self.buckets[(h >> 59) as usize % GLOBAL_SHARDS])
    }

    /// The quota counters (to seed from and flush to the store).
    pub fn quotas(&self) -> MutexGuard<'_, QuotaTable> {
        lock(&self.quotas)
    }

    /// Forgets global buckets that are full and held by no core; returns how many
    /// are still tracked.
    pub fn evict_idle(&self) -> usize {
        let now = self.now();
        let mut left = 0;
        for shard in self.buckets.iter() {
            let mut m = lock(shard);
            m.retain(|_, b| !b.is_idle(now), |_, _| {});
            left += m.len();
        }
        left
    }

    /// Core `core`'s shard.
    pub fn shard(self: &Arc<Self>, core: usize) -> Shard {
        Shard {
            limiter: self.clone(),
            core: core % self.cores,
            local: RefCell::new(BoundedMap::new(self.local_cap)),
            quotas: RefCell::new(FxHashMap::default()),
            tick: Cell::new(0),
            unix: Cell::new(unix_now()),
            seq: Cell::new(0),
        }
    }

    fn max_chunk(&self, p: Policy) -> u32 {
        // About 10 ms of the rate, but at least 16 so slow limits don't take the
        // lock per request; never more than a share of the burst.
        (p.rate * CHUNK_SECS)
            .max(MIN_CHUNK)
            .min(p.burst / (2 * self.cores) as f64)
            .clamp(1.0, f64::from(u32::MAX / 2)) as u32
    }

    fn max_quota_chunk(&self, limit: u64) -> u32 {
        (limit / (100 * self.cores as u64)).clamp(1, 256) as u32
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a limiter lock leaves plain counters behind: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A core's allowance of one throttle level.
#[derive(Debug)]
struct LocalBucket {
    tokens: u32,
    /// How many tokens the next borrow asks for; doubles while busy.
    chunk: u32,
    /// While dry: no token can exist globally before this time.
    dry_until: f64,
    /// The global level after this core's last borrow (for RateLimit fields).
    seen: f64,
    policy: Policy,
    used_tick: u64,
    /// The request that last touched it; an entry in use is never evicted.
    stamp: u64,
    /// Not a client IP: kept when the table is full.
    pinned: bool,
}

/// A core's allowance of one key's quota.
#[derive(Debug, Default)]
struct LocalQuota {
    tokens: u32,
    chunk: u32,
    start: u64,
    end: u64,
    limit: u64,
    /// The global remainder after this core's last borrow.
    left: u64,
    exhausted: bool,
    /// Spent since the last report to the global counter.
    spent: bool,
    used_tick: u64,
}

/// One core's limiter state. Not `Send`: it lives and dies on its core.
pub struct Shard {
    limiter: Arc<Limiter>,
    core: usize,
    local: RefCell<BoundedMap<LimitKey, LocalBucket>>,
    quotas: RefCell<FxHashMap<QuotaKey, LocalQuota>>,
    tick: Cell<u64>,
    /// Wall-clock seconds as of the last sweep (quota periods are coarse).
    unix: Cell<u64>,
    seq: Cell<u64>,
}

impl Shard {
    /// Checks a request against `levels` (at most four, in order) and then `quota`;
    /// spends one token of each only if all admit it. With `info`, also reports the
    /// most restrictive policy's state for the RateLimit fields.
    pub fn check(
        &self,
        levels: &[Level],
        quota: Option<(QuotaKey, QuotaPolicy)>,
        info: bool,
    ) -> Decision {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        let mut slots = [0usize; 4];
        let mut now: Option<f64> = None;
        let mut local = self.local.borrow_mut();
        for (i, lv) in levels.iter().enumerate().take(4) {
            let slot = match local.slot_of(&lv.key) {
                Some(s) => s,
                None => {
                    let fresh = LocalBucket {
                        tokens: 0,
                        chunk: 1,
                        dry_until: 0.0,
                        seen: lv.policy.burst,
                        policy: lv.policy,
                        used_tick: self.tick.get(),
                        stamp: seq,
                        pinned: !matches!(lv.key, LimitKey::Ip(_)),
                    };
                    // Client IPs are what floods the table: evict those, keep the
                    // few account, route and key entries (and this request's).
                    let (s, evicted) = local.insert(lv.key, fresh, |b| {
                        if b.stamp == seq || b.pinned {
                            u64::MAX
                        } else {
                            b.used_tick
                        }
                    });
                    if let Some((k, b)) = evicted {
                        self.give_back(k, b.tokens);
                    }
                    s
                }
            };
            let b = local.at(slot);
            b.stamp = seq;
            if b.policy != lv.policy {
                // A reload changed the limit: what this core holds was sized for
                // the old one, so it goes back and is borrowed again under the new.
                if b.tokens > 0 {
                    self.give_back(lv.key, b.tokens);
                    b.tokens = 0;
                }
                b.policy = lv.policy;
                b.dry_until = 0.0;
                b.chunk = 1;
            }
            if b.tokens == 0 {
                let t = *now.get_or_insert_with(|| self.limiter.now());
                if t < b.dry_until {
                    return refuse_throttle(lv, b.dry_until - t);
                }
                let mut shard = self.limiter.bucket_shard(&lv.key);
                let gslot = match shard.slot_of(&lv.key) {
                    Some(s) => s,
                    None => {
                        let mut g = GlobalBucket::new(lv.policy, self.limiter.cores, t);
                        g.pinned = !matches!(lv.key, LimitKey::Ip(_));
                        shard
                            .insert(lv.key, g, |g| {
                                let age = (g.last_used * 1000.0) as u64;
                                if g.pinned {
                                    u64::MAX
                                } else if g.is_held() {
                                    age | (1 << 62)
                                } else {
                                    age
                                }
                            })
                            .0
                    }
                };
                let g = shard.at(gslot);
                let n = g.acquire(
                    self.core,
                    b.chunk,
                    t,
                    lv.policy,
                    self.limiter.config_since(),
                );
                b.seen = g.level();
                if n == 0 {
                    b.dry_until = g.next_token_at();
                    let wait = b.dry_until - t;
                    return refuse_throttle(lv, wait);
                }
                b.tokens = n;
                b.chunk = (b.chunk * 2).min(self.limiter.max_chunk(lv.policy));
                b.dry_until = 0.0;
            }
            slots[i] = slot;
        }

        let mut quotas = self.quotas.borrow_mut();
        let unix = self.unix.get();
        let q = match quota {
            None => None,
            Some((qk, qp)) => {
                let q = quotas.entry(qk).or_insert_with(|| LocalQuota {
                    chunk: 1,
                    ..LocalQuota::default()
                });
                if unix >= q.end || q.limit != qp.limit {
                    // A new period (the old one's tokens die with it) or a new limit.
                    q.tokens = if unix >= q.end { 0 } else { q.tokens };
                    q.exhausted = false;
                    q.limit = qp.limit;
                }
                if q.tokens == 0 {
                    if q.exhausted {
                        return refuse_quota(q, qp, unix);
                    }
                    let g = self
                        .limiter
                        .quotas()
                        .acquire(qk, qp.limit, self.core, q.chunk, unix);
                    q.start = g.start;
                    q.end = g.end;
                    q.left = g.left;
                    if g.n == 0 {
                        q.exhausted = true;
                        return refuse_quota(q, qp, unix);
                    }
                    q.tokens = g.n;
                    q.chunk = (q.chunk * 2).min(self.limiter.max_quota_chunk(qp.limit));
                }
                q.tokens -= 1;
                q.spent = true;
                q.used_tick = self.tick.get();
                Some(&*q)
            }
        };

        let tick = self.tick.get();
        let mut best: Option<RateInfo> = None;
        for (lv, &slot) in levels.iter().zip(&slots) {
            let b = local.at(slot);
            b.tokens -= 1;
            b.used_tick = tick;
            if info {
                let remaining = (f64::from(b.tokens) + b.seen).floor().max(0.0);
                let missing = (lv.policy.burst - remaining).max(0.0);
                consider(
                    &mut best,
                    RateInfo {
                        name: lv.name,
                        quota: lv.policy.burst as u64,
                        window: lv.policy.window_secs(),
                        remaining: remaining as u64,
                        reset: (missing / lv.policy.rate).ceil() as u64,
                    },
                );
            }
        }
        if let (true, Some(q), Some((_, qp))) = (info, q, quota) {
            consider(
                &mut best,
                RateInfo {
                    name: "plan",
                    quota: qp.limit,
                    window: q.end - q.start,
                    remaining: u64::from(q.tokens) + q.left,
                    reset: q.end.saturating_sub(unix),
                },
            );
        }
        Decision::Admit(best)
    }

    /// Returns `tokens` of `key` to its global bucket.
    fn give_back(&self, key: LimitKey, tokens: u32) {
        let now = self.limiter.now();
        if let Some(g) = self.limiter.bucket_shard(&key).get_mut(&key) {
            g.release(self.core, tokens, now);
        }
    }

    /// Called by the core's sweeper once per tick.
    pub fn sweep(&self, tick: u64) {
        self.tick.set(tick);
        self.unix.set(unix_now());
        let mut quotas = self.quotas.borrow_mut();
        if quotas.values().any(|q| q.spent) {
            let mut table = self.limiter.quotas();
            for (k, q) in quotas.iter_mut().filter(|(_, q)| q.spent) {
                q.spent = false;
                table.sync(k, self.core, q.tokens, q.end);
            }
        }
        if tick % EVICT_EVERY != 0 {
            return;
        }
        let idle = |used: u64| used + EVICT_EVERY < tick;
        let mut gone = Vec::new();
        self.local
            .borrow_mut()
            .retain(|_, b| !idle(b.used_tick), |k, b| gone.push((k, b.tokens)));
        for (k, tokens) in gone {
            self.give_back(k, tokens);
        }
        if quotas.values().any(|q| idle(q.used_tick)) {
            let mut table = self.limiter.quotas();
            quotas.retain(|k, q| {
                if idle(q.used_tick) {
                    table.release(k, self.core, q.tokens, q.end);
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Returns every allowance this core holds (at shutdown, before the last flush).
    pub fn release_all(&self) {
        let mut gone = Vec::new();
        self.local
            .borrow_mut()
            .retain(|_, _| false, |k, b| gone.push((k, b.tokens)));
        for (k, tokens) in gone {
            self.give_back(k, tokens);
        }
        let mut table = self.limiter.quotas();
        for (k, q) in self.quotas.borrow_mut().drain() {
            table.release(&k, self.core, q.tokens, q.end);
        }
    }

    /// Wall-clock unix seconds as of the last sweep.
    pub fn unix_now(&self) -> u64 {
        self.unix.get()
    }

    /// Tracked allowances on this core (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.local.borrow().len()
    }
}

fn consider(best: &mut Option<RateInfo>, info: RateInfo) {
    if best.is_none_or(|b| info.remaining < b.remaining) {
        *best = Some(info);
    }
}

fn refuse_throttle(lv: &Level, wait: f64) -> Decision {
    let retry_after = (wait.ceil() as u64).max(1);
    Decision::Refuse(Refusal {
        quota: false,
        retry_after,
        info: RateInfo {
            name: lv.name,
            quota: lv.policy.burst as u64,
            window: lv.policy.window_secs(),
            remaining: 0,
            reset: retry_after,
        },
    })
}

fn refuse_quota(q: &LocalQuota, qp: QuotaPolicy, unix: u64) -> Decision {
    let retry_after = q.end.saturating_sub(unix).max(1);
    Decision::Refuse(Refusal {
        quota: true,
        retry_after,
        info: RateInfo {
            name: "plan",
            quota: qp.limit,
            window: q.end - q.start,
            remaining: 0,
            reset: retry_after,
        },
    })
}

#[cfg(test)]
mod tests;
