//! The throttle stage: a request is checked against the token buckets that apply
//! to it, in AWS's order — the API key's plan, the route, the account
//! (`[throttle]`), the client IP (`[throttle].per_ip`) — and then, in the same
//! limiter call, against its plan's quota ([`quota`](super::quota)). A throttled
//! request gets 429 `{"message":"Too Many Requests"}` with `Retry-After`. With
//! `throttle.headers`, answers carry the RateLimit-Policy and RateLimit fields of
//! the most restrictive policy (draft-ietf-httpapi-ratelimit-headers-10).

use std::fmt::Write;

use super::{quota, Reason, RequestCtx, Verdict};
use crate::config::{ConfigError, RateConfig, Source};
use crate::http::reply::Reply;
use crate::limit::{Decision, Level, Policy, RateInfo};

/// A token bucket's rate and burst, checked.
pub fn compile_policy(
    source: &Source,
    rc: &RateConfig,
    field: &str,
) -> Result<Policy, ConfigError> {
    let rate = *rc.rate.get_ref();
    if !(rate.is_finite() && rate > 0.0) {
        return Err(source.error_at(
            rc.rate.span(),
            &format!("{field}.rate"),
            format!("rate must be a positive number of requests per second, not {rate}"),
        ));
    }
    let burst = match &rc.burst {
        Some(b) => {
            let v = *b.get_ref();
            if !(v.is_finite() && v >= 1.0) {
                return Err(source.error_at(
                    b.span(),
                    &format!("{field}.burst"),
                    format!("burst must be at least 1, not {v}"),
                ));
            }
            v.floor()
        }
        None => rate.max(1.0).ceil(),
    };
    Ok(Policy { rate, burst })
}

/// A route's throttle stage, compiled: its own level and the gateway-wide ones
/// (`[throttle]`) that apply to every route.
#[derive(Debug)]
pub struct Throttle {
    pub route: Option<Level>,
    pub account: Option<Level>,
    pub per_ip: Option<Policy>,
    /// `throttle.headers`: RateLimit fields on answers.
    pub headers: bool,
}

impl Throttle {
    pub fn check(&self, ctx: &mut RequestCtx<'_>) -> Verdict {
        let mut levels = [Level {
            name: "",
            key: crate::limit::LimitKey::Account,
            policy: crate::limit::Policy {
                rate: 1.0,
                burst: 1.0,
            },
        }; 4];
        let mut n = 0;
        if let Some((key, plan)) = ctx.api_key {
            if let Some(p) = plan.throttle {
                levels[n] = Level {
                    name: "api_key",
                    key: crate::limit::LimitKey::api_key(&key.hash),
                    policy: p,
                };
                n += 1;
            }
        }
        let quota = quota::of(ctx.api_key);
        if let Some(l) = self.route {
            levels[n] = l;
            n += 1;
        }
        if let Some(l) = self.account {
            levels[n] = l;
            n += 1;
        }
        if let Some(p) = self.per_ip {
            levels[n] = Level {
                name: "ip",
                key: crate::limit::LimitKey::ip(ctx.client_ip),
                policy: p,
            };
            n += 1;
        }
        if n == 0 && quota.is_none() {
            return Verdict::Continue;
        }
        match ctx.shard.check(&levels[..n], quota, self.headers) {
            Decision::Admit(info) => {
                if let Some(info) = info {
                    rate_fields(&mut ctx.additions.client, &info);
                }
                Verdict::Continue
            }
            Decision::Refuse(r) => {
                let mut reply = Reply {
                    status: 429,
                    content_type: "application/json".into(),
                    body: if r.quota {
                        quota::EXCEEDED.into()
                    } else {
                        r#"{"message":"Too Many Requests"}"#.into()
                    },
                    extra: String::new(),
                };
                let _ = write!(reply.extra, "retry-after: {}\r\n", r.retry_after);
                if self.headers {
                    rate_fields(&mut reply.extra, &r.info);
                }
                Verdict::Deny(
                    reply,
                    if r.quota {
                        Reason::QuotaExceeded
                    } else {
                        Reason::throttled_by(r.info.name)
                    },
                )
            }
        }
    }
}

/// Appends the RateLimit-Policy and RateLimit fields for `info`.
pub fn rate_fields(out: &mut String, info: &RateInfo) {
    let _ = write!(
        out,
        "ratelimit-policy: \"{}\";q={};w={}\r\nratelimit: \"{}\";r={};t={}\r\n",
        info.name, info.quota, info.window, info.name, info.remaining, info.reset
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_draft() {
        let mut s = String::new();
        rate_fields(
            &mut s,
            &RateInfo {
                name: "plan",
                quota: 1000,
                window: 2_592_000,
                remaining: 42,
                reset: 3600,
            },
        );
        assert_eq!(
            s,
            "ratelimit-policy: \"plan\";q=1000;w=2592000\r\nratelimit: \"plan\";r=42;t=3600\r\n"
        );
    }
}
