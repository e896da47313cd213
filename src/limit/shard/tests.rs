//! Unit tests of `shard`.

use super::*;
use proptest::prelude::*;

fn level(key: LimitKey, rate: f64, burst: f64) -> Level {
    Level {
        name: "t",
        key,
        policy: Policy { rate, burst },
    }
}

/// Runs `events` (core, seconds since the previous event) against one level on
/// `cores` simulated cores; returns the admission times.
fn simulate(cores: usize, lv: Level, events: &[(usize, f64)]) -> Vec<f64> {
    let limiter = Limiter::with_manual_clock(cores, 1000);
    let shards: Vec<Shard> = (0..cores).map(|c| limiter.shard(c)).collect();
    let mut admitted = Vec::new();
    let mut next_tick = 0.05;
    let mut tick = 0;
    for &(core, dt) in events {
        limiter.advance(dt);
        let now = limiter.now();
        while now >= next_tick {
            tick += 1;
            next_tick += 0.05;
            for s in &shards {
                s.sweep(tick);
            }
        }
        if let Decision::Admit(_) = shards[core % cores].check(&[lv], None, false) {
            admitted.push(now);
        }
    }
    admitted
}

/// The largest excess over R·T + B of admissions in any window.
fn worst_excess(admitted: &[f64], rate: f64, burst: f64) -> f64 {
    let mut worst = f64::MIN;
    let mut at = (0, 0);
    for i in 0..admitted.len() {
        for j in i..admitted.len() {
            let count = (j - i + 1) as f64;
            let allowed = rate * (admitted[j] - admitted[i]) + burst;
            if count - allowed > worst {
                worst = count - allowed;
                at = (i, j);
            }
        }
    }
    if worst > 1e-6 {
        eprintln!(
            "worst window: admissions {}..={} at {} s..{} s",
            at.0, at.1, admitted[at.0], admitted[at.1]
        );
    }
    worst
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn no_window_admits_more_than_rate_times_t_plus_burst(
        cores in 1usize..4,
        rate in 1.0f64..500.0,
        burst in 1.0f64..100.0,
        events in prop::collection::vec((0usize..4, 0.0f64..0.02), 1..600),
    ) {
        let burst = burst.floor();
        let admitted = simulate(cores, level(LimitKey::Account, rate, burst), &events);
        let excess = worst_excess(&admitted, rate, burst);
        prop_assert!(excess <= 1e-6, "excess {excess} over R·T+B");
    }
}

#[test]
fn one_core_gets_the_whole_rate() {
    // 200/s for 5 s, one request per ms on one core.
    let events: Vec<(usize, f64)> = (0..5000).map(|_| (0, 0.001)).collect();
    let admitted = simulate(2, level(LimitKey::Account, 200.0, 200.0), &events);
    // 200 of burst plus 5 s of rate, less what the last tick holds back.
    assert!(
        admitted.len() as f64 >= 0.98 * 1000.0 + 200.0,
        "{}",
        admitted.len()
    );
    assert!(admitted.len() <= 1200, "{}", admitted.len());
}

#[test]
fn many_cores_get_the_whole_rate_in_aggregate() {
    let events: Vec<(usize, f64)> = (0..10_000).map(|i| (i % 3, 0.0005)).collect();
    let admitted = simulate(3, level(LimitKey::Account, 200.0, 50.0), &events);
    assert!(
        admitted.len() as f64 >= 0.98 * 1000.0 + 50.0,
        "{}",
        admitted.len()
    );
    assert!(admitted.len() <= 1050, "{}", admitted.len());
}

#[test]
fn refused_requests_take_no_tokens() {
    let limiter = Limiter::with_manual_clock(1, 100);
    let shard = limiter.shard(0);
    let wide = level(LimitKey::Account, 0.001, 5.0);
    let narrow = level(LimitKey::Ip(1), 0.001, 3.0);
    let admitted = (0..10)
        .filter(|_| {
            matches!(
                shard.check(&[wide, narrow], None, false),
                Decision::Admit(_)
            )
        })
        .count();
    assert_eq!(admitted, 3);
    // The seven refused by the narrow level left the wide one its other two.
    let more = (0..10)
        .filter(|_| matches!(shard.check(&[wide], None, false), Decision::Admit(_)))
        .count();
    assert_eq!(more, 2);
}

#[test]
fn quota_is_exact_and_refusal_says_so() {
    let limiter = Limiter::with_manual_clock(2, 100);
    let a = limiter.shard(0);
    let b = limiter.shard(1);
    let qk = QuotaKey {
        key: [1; 32],
        period: super::super::Period::Month,
    };
    let qp = QuotaPolicy {
        limit: 7,
        period: super::super::Period::Month,
    };
    let mut admitted = 0;
    let mut refusal = None;
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        match s.check(&[], Some((qk, qp)), true) {
            Decision::Admit(info) => {
                admitted += 1;
                assert_eq!(info.unwrap().name, "plan");
            }
            Decision::Refuse(r) => refusal = Some(r),
        }
    }
    assert_eq!(admitted, 7);
    let r = refusal.unwrap();
    assert!(r.quota);
    assert!(r.retry_after >= 1 && r.retry_after <= 31 * 86_400);
    assert_eq!(r.info.remaining, 0);
}

#[test]
fn a_dry_core_refuses_without_the_lock_until_a_token_can_exist() {
    let limiter = Limiter::with_manual_clock(1, 100);
    let shard = limiter.shard(0);
    let lv = level(LimitKey::Account, 10.0, 1.0);
    assert!(matches!(
        shard.check(&[lv], None, false),
        Decision::Admit(_)
    ));
    match shard.check(&[lv], None, false) {
        Decision::Refuse(r) => {
            assert!(!r.quota);
            assert_eq!(r.retry_after, 1);
        }
        d => panic!("{d:?}"),
    }
    // Hold the global lock: a refusal before dry_until must not need it.
    let guard = limiter.bucket_shard(&lv.key);
    limiter.advance(0.05);
    assert!(matches!(
        shard.check(&[lv], None, false),
        Decision::Refuse(_)
    ));
    drop(guard);
    limiter.advance(0.06);
    assert!(matches!(
        shard.check(&[lv], None, false),
        Decision::Admit(_)
    ));
}

#[test]
fn remaining_counts_down_on_one_core() {
    let limiter = Limiter::with_manual_clock(2, 100);
    let shard = limiter.shard(0);
    let lv = level(LimitKey::Account, 0.0001, 3.0);
    let r: Vec<u64> = (0..3)
        .map(|_| match shard.check(&[lv], None, true) {
            Decision::Admit(Some(i)) => i.remaining,
            d => panic!("{d:?}"),
        })
        .collect();
    assert_eq!(r, vec![2, 1, 0]);
}

#[test]
fn idle_allowances_go_back_and_ip_state_is_bounded() {
    let limiter = Limiter::with_manual_clock(2, 1024);
    let a = limiter.shard(0);
    let b = limiter.shard(1);
    let lv = level(LimitKey::Account, 0.0001, 4.0);
    assert!(matches!(a.check(&[lv], None, false), Decision::Admit(_)));
    // a holds what it borrowed; once idle, the sweep hands it back to b.
    for tick in 1..=12 {
        a.sweep(tick);
    }
    assert_eq!(a.tracked(), 0);
    let got = (0..10)
        .filter(|_| matches!(b.check(&[lv], None, false), Decision::Admit(_)))
        .count();
    assert_eq!(got, 3);
    for i in 0..50_000u128 {
        let _ = a.check(&[level(LimitKey::Ip(i), 10.0, 10.0)], None, false);
    }
    assert!(a.tracked() <= 1024 + 64, "{}", a.tracked());
    limiter.advance(10.0);
    assert!(limiter.evict_idle() <= 2 * 16 * (1024 / 16 + 64));
}
