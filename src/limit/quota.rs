//! Quotas: a usage plan's allowance per API key per calendar period (UTC day, week
//! from Monday, month), kept like a token bucket that never refills and resets at
//! the period's end.
//!
//! `GlobalQuota` counts what was handed out to cores (`handed`) and what each core
//! was last known to hold unspent (`held`); `handed - held` is the usage that is
//! persisted. Cores report what they hold every tick while they are busy, so a kill
//! loses at most a flush interval plus a tick of usage. Handing out never exceeds
//! the limit, so a quota is never overrun.

use rustc_hash::FxHashMap;

use super::period::Period;
use crate::store::{KeyHash, QuotaId};

/// Whose quota, over which kind of period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaKey {
    pub key: KeyHash,
    pub period: Period,
}

/// A plan's `quota = { limit, period }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPolicy {
    pub limit: u64,
    pub period: Period,
}

#[derive(Debug)]
pub struct GlobalQuota {
    pub start: u64,
    pub end: u64,
    handed: u64,
    held: Box<[u32]>,
    held_sum: u64,
    /// Changed since the last flush.
    dirty: bool,
}

impl GlobalQuota {
    fn new(start: u64, end: u64, used: u64, cores: usize) -> GlobalQuota {
        GlobalQuota {
            start,
            end,
            handed: used,
            held: vec![0; cores].into_boxed_slice(),
            held_sum: 0,
            dirty: false,
        }
    }

    /// Requests counted against the quota so far (as far as is known).
    pub fn used(&self) -> u64 {
        self.handed - self.held_sum
    }

    fn set_held(&mut self, core: usize, n: u32) {
        self.held_sum = self.held_sum - u64::from(self.held[core]) + u64::from(n);
        self.held[core] = n;
        self.dirty = true;
    }
}

/// Every key's quota counters, and the usage loaded from the store at start.
pub struct QuotaTable {
    cores: usize,
    map: FxHashMap<QuotaKey, GlobalQuota>,
    /// Persisted usage not yet claimed by a live counter.
    loaded: FxHashMap<QuotaId, u64>,
}

/// What a core gets when it asks for quota.
pub struct Grant {
    pub n: u32,
    pub start: u64,
    pub end: u64,
    /// Unhanded remainder after this grant.
    pub left: u64,
}

impl QuotaTable {
    pub fn new(cores: usize) -> QuotaTable {
        QuotaTable {
            cores,
            map: FxHashMap::default(),
            loaded: FxHashMap::default(),
        }
    }

    /// Usage read from the store at start; claimed when the key's counter is made.
    pub fn seed(&mut self, counts: impl IntoIterator<Item = (QuotaId, u64)>) {
        self.loaded.extend(counts);
    }

    fn entry(&mut self, key: QuotaKey, now: u64) -> &mut GlobalQuota {
        let (start, end) = key.period.bounds(now);
        let cores = self.cores;
        let loaded = &mut self.loaded;
        let q = self.map.entry(key).or_insert_with(|| {
            let used = loaded
                .remove(&QuotaId {
                    key: key.key,
                    period_start: start,
                })
                .unwrap_or(0);
            GlobalQuota::new(start, end, used, cores)
        });
        if now >= q.end {
            // A new period: cores holding tokens of the old one drop them when they
            // see the new end.
            *q = GlobalQuota::new(start, end, 0, cores);
            q.dirty = true;
        }
        q
    }

    /// Core `core`, which has spent what it held, asks for up to `want` of `limit`.
    pub fn acquire(
        &mut self,
        key: QuotaKey,
        limit: u64,
        core: usize,
        want: u32,
        now: u64,
    ) -> Grant {
        let q = self.entry(key, now);
        let left = limit.saturating_sub(q.handed);
        let n = left.min(u64::from(want)) as u32;
        q.handed += u64::from(n);
        q.set_held(core, n);
        Grant {
            n,
            start: q.start,
            end: q.end,
            left: left - u64::from(n),
        }
    }

    /// Core `core` now holds `local` unspent tokens of the period ending `end`.
    pub fn sync(&mut self, key: &QuotaKey, core: usize, local: u32, end: u64) {
        if let Some(q) = self.map.get_mut(key) {
            if q.end == end && q.held[core] != local {
                q.set_held(core, local);
            }
        }
    }

    /// Core `core` gives back its `local` unspent tokens of the period ending `end`.
    pub fn release(&mut self, key: &QuotaKey, core: usize, local: u32, end: u64) {
        if let Some(q) = self.map.get_mut(key) {
            if q.end == end {
                q.handed -= u64::from(local.min(q.held[core]));
                q.set_held(core, 0);
            }
        }
    }

    /// Usage of every counter changed since the last call, for the store; marks
    /// them clean (see [`QuotaTable::mark_dirty`] when the write fails). Counters
    /// of past periods are dropped once reported clean.
    pub fn take_dirty(&mut self, now: u64) -> Vec<(QuotaKey, QuotaId, u64)> {
        let mut out = Vec::new();
        for (k, q) in self.map.iter_mut() {
            if q.dirty {
                q.dirty = false;
                out.push((
                    *k,
                    QuotaId {
                        key: k.key,
                        period_start: q.start,
                    },
                    q.used(),
                ));
            }
        }
        self.map
            .retain(|_, q| q.dirty || q.end > now || q.held_sum > 0);
        out
    }

    /// Marks counters dirty again (their flush failed), so the next flush retries.
    pub fn mark_dirty(&mut self, keys: impl IntoIterator<Item = (QuotaKey, u64)>) {
        for (k, start) in keys {
            if let Some(q) = self.map.get_mut(&k) {
                if q.start == start {
                    q.dirty = true;
                }
            }
        }
    }

    /// The usage of `key` in the period containing `now`, as far as is known.
    pub fn used(&self, key: &QuotaKey, now: u64) -> u64 {
        match self.map.get(key) {
            Some(q) if now < q.end => q.used(),
            Some(_) => 0,
            None => {
                let (start, _) = key.period.bounds(now);
                self.loaded
                    .get(&QuotaId {
                        key: key.key,
                        period_start: start,
                    })
                    .copied()
                    .unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> QuotaKey {
        QuotaKey {
            key: [7; 32],
            period: Period::Day,
        }
    }

    #[test]
    fn never_hands_out_past_the_limit() {
        let mut t = QuotaTable::new(2);
        let now = 1_800_000_000;
        let end = t.acquire(key(), 5, 0, 3, now).end;
        assert_eq!(t.acquire(key(), 5, 1, 3, now).n, 2);
        assert_eq!(t.acquire(key(), 5, 1, 3, now).n, 0);
        // Core 0 spent one of its three and returns two.
        t.release(&key(), 0, 2, end);
        let g = t.acquire(key(), 5, 1, 5, now);
        assert_eq!(g.n, 2);
        assert_eq!(g.left, 0);
        // Core 1 asked while dry (it spent its 2), core 0 spent 1.
        assert_eq!(t.used(&key(), now), 3);
    }

    #[test]
    fn usage_is_handed_minus_held_and_resets_with_the_period() {
        let mut t = QuotaTable::new(1);
        let now = 1_800_000_000;
        let g = t.acquire(key(), 100, 0, 10, now);
        assert_eq!(t.used(&key(), now), 0);
        t.sync(&key(), 0, 4, g.end);
        assert_eq!(t.used(&key(), now), 6);
        let dirty = t.take_dirty(now);
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].2, 6);
        t.mark_dirty([(dirty[0].0, dirty[0].1.period_start)]);
        assert_eq!(t.take_dirty(now).len(), 1);
        assert!(t.take_dirty(now).is_empty());
        let g2 = t.acquire(key(), 100, 0, 1, g.end);
        assert_eq!(g2.n, 1);
        assert_eq!(g2.start, g.end);
        assert_eq!(t.used(&key(), g.end), 0);
    }

    #[test]
    fn seeded_usage_is_claimed_by_the_matching_period_only() {
        let mut t = QuotaTable::new(1);
        let now = 1_800_000_000;
        let (start, _) = Period::Day.bounds(now);
        t.seed([
            (
                QuotaId {
                    key: [7; 32],
                    period_start: start,
                },
                98,
            ),
            (
                QuotaId {
                    key: [7; 32],
                    period_start: start - 86_400,
                },
                50,
            ),
        ]);
        assert_eq!(t.used(&key(), now), 98);
        assert_eq!(t.acquire(key(), 100, 0, 10, now).n, 2);
    }
}
