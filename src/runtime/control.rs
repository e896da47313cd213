//! The control thread's periodic work besides signals: keeping the API key table in
//! step with the store (keys created or revoked by `portcullis keys` take effect on
//! every core within about half a second, no reload needed), flushing quota
//! counters to the store every `store.flush_interval` and at shutdown, and
//! forgetting idle global buckets.
//!
//! Nothing here runs on a core. The store is opened only for each operation, so a
//! `portcullis keys` command can use the same file while the gateway runs; a busy
//! store delays a flush to the next interval and never blocks a request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::gateway::Gateway;
use crate::guard::KeyTable;
use crate::limit::period::unix_now;
use crate::store::{Store, StoredKey};

/// How often the store is asked whether the keys changed.
const KEYS_POLL: Duration = Duration::from_millis(500);
/// How long the control thread waits for a store another process holds, per attempt.
const STORE_WAIT: Duration = Duration::from_millis(250);
/// Quota counters of periods that ended this long ago are dropped from the store.
const KEEP_PAST_PERIODS: u64 = 40 * 86_400;

pub struct Housekeeper {
    store: Option<Store>,
    keys_version: u64,
    stored_keys: Vec<StoredKey>,
    next_keys_poll: Instant,
    next_flush: Instant,
    store_failing: bool,
    keys_failing: bool,
    /// Failed flushes, for `portcullis_store_flush_errors_total`.
    pub flush_errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Housekeeper {
    /// Opens the store if `gateway` needs one, seeds the quota counters from it and
    /// builds the first key table. A store that cannot be read fails the start: a
    /// gateway that forgot a month's usage would be worse than one that did not start.
    pub fn start(
        gateway: &Gateway,
        shared_limiter: &crate::limit::Limiter,
    ) -> Result<(Housekeeper, KeyTable), String> {
        let mut h = Housekeeper {
            store: None,
            keys_version: u64::MAX,
            stored_keys: Vec::new(),
            next_keys_poll: Instant::now() + KEYS_POLL,
            next_flush: Instant::now() + gateway.store.flush_interval,
            store_failing: false,
            keys_failing: false,
            flush_errors: Default::default(),
        };
        if gateway.store.needed {
            let store = Store::new(&gateway.store.path).map_err(|e| e.to_string())?;
            let counts = store.load_quotas().map_err(|e| e.to_string())?;
            tracing::info!(
                store = %store.path().display(),
                counters = counts.len(),
                "store opened; quota counters loaded"
            );
            shared_limiter.quotas().seed(counts);
            if let Some((v, keys)) = store.keys_if_changed(u64::MAX).map_err(|e| e.to_string())? {
                h.keys_version = v;
                h.stored_keys = keys;
            }
            h.store = Some(store.with_wait(STORE_WAIT));
        }
        let table = KeyTable::build(&gateway.declared_keys, &h.stored_keys);
        Ok((h, table))
    }

    /// After a reload: the declared keys may have changed, and the store may now be
    /// needed (or be another file).
    pub fn reloaded(&mut self, shared: &Shared) {
        let gw = shared.gateway.load();
        let path_changed = self
            .store
            .as_ref()
            .is_some_and(|s| s.path() != gw.store.path);
        if gw.store.needed && (self.store.is_none() || path_changed) {
            match Store::new(&gw.store.path).and_then(|s| {
                let counts = s.load_quotas()?;
                Ok((s, counts))
            }) {
                Ok((store, counts)) => {
                    // Flush what the old store is owed before switching.
                    self.flush(shared, true);
                    shared.limiter.quotas().seed(counts);
                    self.store = Some(store.with_wait(STORE_WAIT));
                    self.keys_version = u64::MAX;
                    self.stored_keys.clear();
                }
                Err(e) => tracing::error!("reload: store: {e}; keeping the previous store"),
            }
        }
        self.poll_keys();
        publish_keys(
            shared,
            KeyTable::build(&gw.declared_keys, &self.stored_keys),
        );
    }

    /// Runs whatever is due.
    pub fn tick(&mut self, shared: &Shared) {
        let now = Instant::now();
        if now >= self.next_keys_poll {
            self.next_keys_poll = now + KEYS_POLL;
            if self.poll_keys() {
                let gw = shared.gateway.load();
                publish_keys(
                    shared,
                    KeyTable::build(&gw.declared_keys, &self.stored_keys),
                );
            }
        }
        if now >= self.next_flush {
            self.next_flush = now + shared.gateway.load().store.flush_interval;
            self.flush(shared, false);
            let tracked = shared.limiter.evict_idle();
            tracing::trace!(tracked, "idle buckets evicted");
        }
    }

    /// Reads the store's keys if they changed; true when they did.
    fn poll_keys(&mut self) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        match store.keys_if_changed(self.keys_version) {
            Ok(Some((v, keys))) => {
                tracing::info!(
                    keys = keys.len(),
                    version = v,
                    "api keys changed in the store"
                );
                self.keys_version = v;
                self.stored_keys = keys;
                true
            }
            Ok(None) => {
                if self.keys_failing {
                    tracing::info!("store: api keys readable again");
                    self.keys_failing = false;
                }
                false
            }
            Err(e) => {
                // Busy for a moment is normal (a `keys` command holds the file);
                // say so once, at warn, so a store that stays unreadable is seen.
                if !self.keys_failing {
                    tracing::warn!("store: api keys not polled, will retry: {e}");
                    self.keys_failing = true;
                }
                false
            }
        }
    }

    /// Writes changed quota counters. At shutdown (`last`) waits longer for the store.
    pub fn flush(&mut self, shared: &Shared, last: bool) {
        let Some(store) = &self.store else {
            return;
        };
        let now = unix_now();
        let taken = shared.limiter.quotas().take_dirty(now);
        if taken.is_empty() {
            return;
        }
        let dirty: Vec<_> = taken.iter().map(|(_, id, used)| (*id, *used)).collect();
        let result = if last {
            Store::new(store.path())
                .map(|s| s.with_wait(Duration::from_secs(5)))
                .and_then(|s| s.save_quotas(&dirty, now.saturating_sub(KEEP_PAST_PERIODS)))
        } else {
            store.save_quotas(&dirty, now.saturating_sub(KEEP_PAST_PERIODS))
        };
        match result {
            Ok(()) => {
                if self.store_failing {
                    tracing::info!("store: quota counters flushed again");
                    self.store_failing = false;
                }
            }
            Err(e) => {
                self.flush_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if !self.store_failing {
                    tracing::warn!("store: quota counters not flushed, will retry: {e}");
                    self.store_failing = true;
                }
                // Keep them for the next attempt.
                shared
                    .limiter
                    .quotas()
                    .mark_dirty(taken.iter().map(|(k, id, _)| (*k, id.period_start)));
            }
        }
    }
}

fn publish_keys(shared: &Shared, table: KeyTable) {
    shared.keys.store(Arc::new(table));
    shared.keys_generation.fetch_add(1, Ordering::AcqRel);
}
