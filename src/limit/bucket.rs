//! `GlobalBucket`: the gateway-wide token bucket of one limit, from which cores
//! carve their local allowances. Only ever used under its shard's lock; time is
//! passed in (seconds on the limiter's monotonic clock) so the logic is testable
//! without sleeping.
//!
//! Invariant: `level + held_sum <= burst`, where `held[c]` is what core `c` was
//! last known to hold (it may have spent some since: `held` overstates, never
//! understates, so the bound is safe).

use super::Policy;

#[derive(Debug)]
pub struct GlobalBucket {
    level: f64,
    /// When `level` was last brought up to date.
    at: f64,
    policy: Policy,
    held: Box<[u32]>,
    held_sum: u64,
    pub last_used: f64,
    /// Not a client IP: never the one evicted from a full table.
    pub pinned: bool,
}

impl GlobalBucket {
    /// A full bucket.
    pub fn new(policy: Policy, cores: usize, now: f64) -> GlobalBucket {
        GlobalBucket {
            level: policy.burst,
            at: now,
            policy,
            held: vec![0; cores].into_boxed_slice(),
            held_sum: 0,
            last_used: now,
            pinned: false,
        }
    }

    /// Brings the level up to `now`. A new `policy` applies from `since` (when the
    /// config that carries it was loaded), the old one until then.
    fn refill(&mut self, now: f64, policy: Policy, since: f64) {
        if policy != self.policy {
            let switch = since.clamp(self.at, now.max(self.at));
            self.level += (switch - self.at) * self.policy.rate;
            self.at = switch;
            self.policy = policy;
        }
        if now > self.at {
            self.level += (now - self.at) * self.policy.rate;
            self.at = now;
        }
        let cap = (policy.burst - self.held_sum as f64).max(0.0);
        if self.level > cap {
            self.level = cap;
        }
    }

    /// Core `core`, which has spent all it held, asks for up to `want` tokens.
    /// Returns how many it gets; 0 means the bucket is dry (see [`Self::next_token_at`]).
    pub fn acquire(&mut self, core: usize, want: u32, now: f64, policy: Policy, since: f64) -> u32 {
        // Refill first, still counting what this core held: it was spent at some
        // moment up to now, and until then it filled part of the bucket, so time
        // that would have overfilled it is not credited (a bucket holding B
        // tokens in all cannot have earned more). Then what it held is spent.
        self.refill(now, policy, since);
        self.set_held(core, 0);
        self.last_used = now;
        let whole = self.level.floor();
        let n = if whole >= f64::from(want) {
            want
        } else {
            whole as u32
        };
        self.level -= f64::from(n);
        self.set_held(core, n);
        n
    }

    /// Core `core` gives back the `local` tokens it still holds and forgets it held any.
    pub fn release(&mut self, core: usize, local: u32, now: f64) {
        self.refill(now, self.policy, now);
        self.set_held(core, 0);
        self.level += f64::from(local);
        let cap = (self.policy.burst - self.held_sum as f64).max(0.0);
        if self.level > cap {
            self.level = cap;
        }
    }

    fn set_held(&mut self, core: usize, n: u32) {
        self.held_sum = self.held_sum - u64::from(self.held[core]) + u64::from(n);
        self.held[core] = n;
    }

    /// When the level will hold a whole token if no core takes one first.
    pub fn next_token_at(&self) -> f64 {
        if self.level >= 1.0 {
            self.at
        } else {
            self.at + (1.0 - self.level) / self.policy.rate
        }
    }

    /// The level as of the last update (what headers report as remaining).
    pub fn level(&self) -> f64 {
        self.level
    }

    /// True when forgetting this bucket changes nothing: no core holds any of its
    /// tokens and it would be full by `now` (a new bucket starts full).
    pub fn is_idle(&self, now: f64) -> bool {
        self.held_sum == 0
            && self.level + (now - self.at).max(0.0) * self.policy.rate >= self.policy.burst
    }

    /// Whether any core holds tokens of this bucket.
    pub fn is_held(&self) -> bool {
        self.held_sum > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        rate: 10.0,
        burst: 5.0,
    };

    #[test]
    fn starts_full_and_refills_at_rate() {
        let mut b = GlobalBucket::new(P, 2, 0.0);
        assert_eq!(b.acquire(0, 100, 0.0, P, 0.0), 5);
        assert_eq!(b.acquire(1, 100, 0.0, P, 0.0), 0);
        assert!((b.next_token_at() - 0.1).abs() < 1e-9);
        // Core 0 may still hold its 5: refill stops at burst - held = 0. Holding
        // back is the price of the bound: nothing is admitted twice.
        assert_eq!(b.acquire(1, 100, 1.0, P, 0.0), 0);
        // Core 0 asks again, so it spent them; the bucket refills from now.
        assert_eq!(b.acquire(0, 100, 1.0, P, 0.0), 0);
        assert_eq!(b.acquire(1, 100, 1.3, P, 0.0), 3);
        assert_eq!(b.acquire(0, 100, 10.0, P, 0.0), 2);
    }

    #[test]
    fn release_returns_tokens() {
        let mut b = GlobalBucket::new(P, 2, 0.0);
        assert_eq!(b.acquire(0, 3, 0.0, P, 0.0), 3);
        b.release(0, 2, 0.0);
        assert!(!b.is_held());
        assert_eq!(b.acquire(1, 100, 0.0, P, 0.0), 4);
    }

    #[test]
    fn policy_change_takes_effect_at_once() {
        let mut b = GlobalBucket::new(P, 1, 0.0);
        assert_eq!(b.acquire(0, 5, 0.0, P, 0.0), 5);
        let faster = Policy {
            rate: 100.0,
            burst: 50.0,
        };
        // Loaded at 0.25 s: 0.25 s at the old rate gives 2.5 tokens, then 0.25 s at
        // the new rate 25 more, though nobody asked in between.
        assert_eq!(b.acquire(0, 100, 0.5, faster, 0.25), 27);
        // The half token left and 0.25 s at the new rate would be 25.5, but the core
        // held 27 until it asked again: the bucket (50) had room for 23 more.
        assert_eq!(b.acquire(0, 100, 0.75, faster, 0.25), 23);
        let smaller = Policy {
            rate: 100.0,
            burst: 2.0,
        };
        // The core still counted as holding 23 when the bucket shrank to 2: nothing
        // until it asks again; then the new, smaller bucket.
        assert_eq!(b.acquire(0, 100, 10.0, smaller, 0.0), 0);
        assert_eq!(b.acquire(0, 100, 10.5, smaller, 0.0), 2);
    }

    #[test]
    fn idle_when_full_and_unheld() {
        let mut b = GlobalBucket::new(P, 1, 0.0);
        assert!(b.is_idle(0.0));
        b.acquire(0, 1, 0.0, P, 0.0);
        assert!(!b.is_idle(10.0));
        b.release(0, 0, 0.0);
        assert!(!b.is_idle(0.0));
        assert!(b.is_idle(0.1));
    }
}
