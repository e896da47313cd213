//! Per-core upstream state: idle keep-alive connections, in-flight counts for
//! least-connections, round-robin cursors and passive health.
//!
//! Keyed by target address, so pools and health survive a reload that keeps the
//! target. Core-local: each core learns health on its own and no state is shared.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::Instant;

use super::conn::UpstreamConn;
use super::Upstream;
use crate::config::Balance;

#[derive(Default)]
struct TargetState {
    /// Idle connections with the time each went idle; newest at the back.
    idle: VecDeque<(UpstreamConn, Instant)>,
    active: u32,
    fails: u32,
    down_until: Option<Instant>,
}

/// FxHash (rustc's hasher): the keys are a core's own addresses and upstream names,
/// not attacker-chosen, so a fast non-keyed hash is safe here.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default)]
pub struct UpstreamPools {
    targets: FxMap<SocketAddr, TargetState>,
    /// Round-robin cursor per upstream name.
    cursors: FxMap<std::sync::Arc<str>, usize>,
}

impl UpstreamPools {
    /// Picks a target of `up`, skipping `exclude` and targets marked down — unless
    /// every target is down, then the least recently failed is tried anyway.
    pub fn pick(
        &mut self,
        up: &Upstream,
        exclude: Option<SocketAddr>,
        now: Instant,
    ) -> Option<SocketAddr> {
        let n = up.targets.len();
        let usable =
            |s: Option<&TargetState>| s.is_none_or(|s| s.down_until.is_none_or(|t| t <= now));
        match up.balance {
            Balance::RoundRobin => {
                let start = match self.cursors.get_mut(&up.name) {
                    Some(c) => {
                        *c = c.wrapping_add(1);
                        *c
                    }
                    None => {
                        self.cursors.insert(up.name.clone(), 0);
                        0
                    }
                };
                for i in 0..n {
                    let t = up.targets[(start + i) % n];
                    if Some(t) != exclude && usable(self.targets.get(&t)) {
                        return Some(t);
                    }
                }
            }
            Balance::LeastConn => {
                let best = up
                    .targets
                    .iter()
                    .filter(|t| Some(**t) != exclude && usable(self.targets.get(t)))
                    .min_by_key(|t| self.targets.get(t).map_or(0, |s| s.active));
                if let Some(t) = best {
                    return Some(*t);
                }
            }
        }
        up.targets
            .iter()
            .filter(|t| Some(**t) != exclude)
            .min_by_key(|t| self.targets.get(t).and_then(|s| s.down_until))
            .copied()
    }

    /// An idle connection to `addr` younger than `max_age`, made for the same TLS
    /// settings (or plain), that has nothing waiting to be read, if any.
    pub fn take_idle(
        &mut self,
        addr: SocketAddr,
        tls: Option<&crate::tls::UpstreamTls>,
        max_age: std::time::Duration,
        now: Instant,
    ) -> Option<UpstreamConn> {
        let s = self.targets.get_mut(&addr)?;
        // Oldest first at the front: expired ones go.
        while s
            .idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= max_age)
        {
            s.idle.pop_front();
        }
        // The newest made for these settings; others (another upstream's TLS
        // settings on the same address) stay for their own upstream.
        while let Some(i) = s.idle.iter().rposition(|(c, _)| c.made_for(tls)) {
            let (mut conn, _) = s.idle.remove(i).expect("index from rposition");
            if conn.is_quiet() {
                return Some(conn);
            }
            // Closed by the upstream, or bytes nobody asked for: drop it.
        }
        None
    }

    /// Returns a connection for reuse; beyond `max_idle` the oldest are closed.
    pub fn put_idle(
        &mut self,
        addr: SocketAddr,
        conn: UpstreamConn,
        max_idle: usize,
        now: Instant,
    ) {
        if max_idle == 0 {
            return;
        }
        let s = self.targets.entry(addr).or_default();
        s.idle.push_back((conn, now));
        while s.idle.len() > max_idle {
            s.idle.pop_front();
        }
    }

    pub fn started(&mut self, addr: SocketAddr) {
        self.targets.entry(addr).or_default().active += 1;
    }

    pub fn finished(&mut self, addr: SocketAddr) {
        if let Some(s) = self.targets.get_mut(&addr) {
            s.active = s.active.saturating_sub(1);
        }
    }

    /// A connect failure or timeout; after `up.max_fails` in a row the target
    /// rests (for `up.fail_timeout`, returned then).
    pub fn failed(
        &mut self,
        addr: SocketAddr,
        up: &Upstream,
        now: Instant,
    ) -> Option<std::time::Duration> {
        let s = self.targets.entry(addr).or_default();
        s.fails += 1;
        s.idle.clear();
        if s.fails >= up.max_fails {
            if s.down_until.is_none_or(|t| t <= now) {
                tracing::warn!(upstream = %up.name, target = %addr, "target failed {} times; skipped for {:?}", s.fails, up.fail_timeout);
            }
            s.down_until = Some(now + up.fail_timeout);
            return Some(up.fail_timeout);
        }
        None
    }

    /// An answer: the target's failures are forgotten. Returns whether it had
    /// any (its health changed).
    pub fn succeeded(&mut self, addr: SocketAddr) -> bool {
        match self.targets.get_mut(&addr) {
            Some(s) if s.fails != 0 => {
                s.fails = 0;
                s.down_until = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn upstream(balance: Balance) -> Upstream {
        Upstream {
            name: "u".into(),
            targets: vec![
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ],
            balance,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_idle_per_core: 4,
            max_fails: 2,
            fail_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            tls: None,
            index: 0,
        }
    }

    #[test]
    fn round_robin_and_health() {
        let up = upstream(Balance::RoundRobin);
        let mut p = UpstreamPools::default();
        let now = Instant::now();
        let a = p.pick(&up, None, now).unwrap();
        let b = p.pick(&up, None, now).unwrap();
        assert_ne!(a, b);
        p.failed(a, &up, now);
        p.failed(a, &up, now);
        for _ in 0..4 {
            assert_eq!(p.pick(&up, None, now), Some(b));
        }
        // After the rest period it is tried again.
        let later = now + Duration::from_secs(11);
        let picks: Vec<_> = (0..2).map(|_| p.pick(&up, None, later).unwrap()).collect();
        assert!(picks.contains(&a));
        // Excluding the only healthy one falls back to the resting one.
        assert_eq!(p.pick(&up, Some(b), now), Some(a));
    }

    #[test]
    fn least_conn() {
        let up = upstream(Balance::LeastConn);
        let mut p = UpstreamPools::default();
        let now = Instant::now();
        p.started(up.targets[0]);
        assert_eq!(p.pick(&up, None, now), Some(up.targets[1]));
        p.started(up.targets[1]);
        p.started(up.targets[1]);
        assert_eq!(p.pick(&up, None, now), Some(up.targets[0]));
    }
}
