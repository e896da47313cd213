//! The per-request cost of throttling: `Shard::check` against one to four levels
//! and a quota, on one core, with budgets large enough that nothing is refused (the
//! steady state of a busy gateway: allowances spent locally, a borrow per chunk).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis::limit::{
    Decision, Level, LimitKey, Limiter, Period, Policy, QuotaKey, QuotaPolicy,
};

fn bench_check(c: &mut Criterion) {
    let limiter = Limiter::new(2, 100_000);
    let shard = limiter.shard(0);
    let big = Policy {
        rate: 1e9,
        burst: 1e9,
    };
    let levels = [
        Level {
            name: "api_key",
            key: LimitKey::api_key(&[7; 32]),
            policy: big,
        },
        Level {
            name: "route",
            key: LimitKey::route("orders"),
            policy: big,
        },
        Level {
            name: "account",
            key: LimitKey::Account,
            policy: big,
        },
        Level {
            name: "ip",
            key: LimitKey::ip("203.0.113.9".parse().unwrap()),
            policy: big,
        },
    ];
    let quota = (
        QuotaKey {
            key: [7; 32],
            period: Period::Month,
        },
        QuotaPolicy {
            limit: u64::MAX / 2,
            period: Period::Month,
        },
    );
    let mut g = c.benchmark_group("throttle_check");
    g.bench_function("account", |b| {
        b.iter(|| {
            matches!(
                shard.check(black_box(&levels[2..3]), None, false),
                Decision::Admit(_)
            )
        })
    });
    g.bench_function("four_levels", |b| {
        b.iter(|| {
            matches!(
                shard.check(black_box(&levels), None, false),
                Decision::Admit(_)
            )
        })
    });
    g.bench_function("four_levels_quota", |b| {
        b.iter(|| {
            matches!(
                shard.check(black_box(&levels), Some(quota), false),
                Decision::Admit(_)
            )
        })
    });
    g.bench_function("four_levels_quota_headers", |b| {
        b.iter(|| {
            matches!(
                shard.check(black_box(&levels), Some(quota), true),
                Decision::Admit(_)
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
