//! The WAF stage: IP sets, rate-based blocking and the rule scan over the request's
//! normalized parts (AWS WAF's job in front of API Gateway).
//!
//! Per request: a client in `ip_allow` passes unexamined; one in `ip_deny` is
//! refused; a client over its `rate_based` limit is refused for the rest of the
//! window. Then the request is split into parts ([`parts`]: path, query names and
//! values, headers, cookies, and the body's form fields, JSON keys and strings or
//! multipart values, up to `inspect_body`). All parts are lower-cased, joined
//! and walked once by one automaton ([`lowered`]) holding the literals of every
//! chain that lower-cases and the byte sequences the other transforms rewrite:
//! for a part without such a sequence (most values of ordinary requests) that
//! walk is those chains' scan. For each other part, each transform chain of the
//! rule set ([`rules`]) whose rules look at it normalizes it once
//! ([`normalize`]) and scans it once with the chain's Aho-Corasick automaton.
//! [`Waf::scan`] is hand-written hot-path code (reused per-core buffers, no
//! allocation unless a rule matches). Only a literal hit runs the
//! rule's confirmation (`all` groups, `regex`). Scores add up
//! CRS-style; a request at or over `anomaly_threshold`, or matched by a `block`
//! rule, is refused with 403 in `mode = "block"`, and only logged and counted in
//! `mode = "count"`. Every match is written to the audit log (the access log
//! stream, `"type":"waf"` lines) off the request path.

pub mod compile;
pub mod crs;
pub mod ipset;
pub mod lowered;
pub mod normalize;
pub mod parts;
pub mod rules;
mod scan;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::ipset::IpSet;
use self::parts::{Part, Target};
use self::rules::RuleSet;
use self::scan::WafBuffers;
pub use self::scan::{Hit, Scan};
use super::{Reason, RequestCtx, Verdict};
use crate::http::reply::Reply;
use crate::http::request::{Header, HeaderRole};
use crate::limit::{BoundedMap, Decision, Level, LimitKey, Policy};

/// Parts inspected per request, at most.
const MAX_PARTS: usize = 512;
/// Bytes of a matched value quoted in the audit log.
const EXCERPT: usize = 48;
/// Client IPs remembered as blocked by the rate-based rule, per core.
const BLOCKED_ENTRIES: usize = 65_536;

/// What the WAF does with a body past `inspect_body` (or a chunked one, which
/// is not buffered), as AWS WAF's oversize handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// Inspect what was buffered (the first `inspect_body` bytes): the
    /// default, as in AWS WAF; an attack at the start of a large upload is
    /// still caught and large legitimate bodies still pass.
    Continue,
    /// Treat the request as matching: refused in `block` mode, logged in `count`.
    Match,
    /// Inspect the head only; the body's rules do not match.
    NoMatch,
}

/// A compiled `[waf.NAME]`.
#[derive(Debug)]
pub struct Waf {
    pub name: Arc<str>,
    pub block_mode: bool,
    pub threshold: u32,
    pub rules: RuleSet,
    /// `crs`: a SecLang rule set run after the native rules.
    pub crs: Option<Arc<crs::Crs>>,
    pub ip_deny: IpSet,
    pub ip_allow: IpSet,
    /// `rate_based`: the bucket per client IP, and the window a client stays blocked.
    pub rate: Option<(Policy, Duration)>,
    /// (rule id, path prefix, route name): where a rule is off.
    pub exclude: Vec<(u32, Option<String>, Option<String>)>,
    pub inspect_body: u64,
    pub oversize: Oversize,
}

/// A core's WAF state: reused buffers and the clients the rate rule blocked.
pub struct WafState {
    buf: RefCell<WafBuffers>,
    /// The text the current request's JSON parts borrow.
    json: RefCell<parts::JsonText>,
    /// The parts list's allocation, kept between requests ([`parts::recycle`]).
    parts: RefCell<Vec<Part<'static>>>,
    blocked: RefCell<BoundedMap<u128, Instant>>,
    /// Requests that matched, and those refused (block mode).
    pub matched: Cell<u64>,
    pub refused: Cell<u64>,
}

impl Default for WafState {
    fn default() -> Self {
        WafState {
            buf: RefCell::new(WafBuffers::default()),
            json: RefCell::new(parts::JsonText::default()),
            parts: RefCell::new(Vec::with_capacity(64)),
            blocked: RefCell::new(BoundedMap::new(BLOCKED_ENTRIES)),
            matched: Cell::new(0),
            refused: Cell::new(0),
        }
    }
}

impl Waf {
    /// A WAF of `rules` in block mode, anomaly threshold 5, inspecting 64 KiB
    /// of a body, with nothing else set (no IP sets, rate rule or exclusions):
    /// for tests and benches.
    pub fn blocking(name: &str, rules: RuleSet) -> Waf {
        Waf {
            name: Arc::from(name),
            block_mode: true,
            threshold: 5,
            rules,
            crs: None,
            ip_deny: IpSet::new(&[]),
            ip_allow: IpSet::new(&[]),
            rate: None,
            exclude: Vec::new(),
            inspect_body: 64 << 10,
            oversize: Oversize::Continue,
        }
    }

    fn excluded(&self, id: u32, ctx: &RequestCtx<'_>) -> bool {
        self.exclude.iter().any(|(rule, path, route)| {
            *rule == id
                && path
                    .as_ref()
                    .is_none_or(|p| ctx.path.starts_with(p.as_bytes()))
                && route
                    .as_ref()
                    .is_none_or(|r| ctx.route.is_some_and(|n| n == r.as_str()))
        })
    }

    fn refuse(&self, state: &WafState, reason: Reason) -> Verdict {
        state.refused.set(state.refused.get() + 1);
        Verdict::Deny(Reply::error(403), reason)
    }

    pub fn check(&self, ctx: &mut RequestCtx<'_>) -> Verdict {
        let state = &ctx.auth.waf;
        if self.ip_allow.contains(ctx.client_ip) {
            return Verdict::Continue;
        }
        if self.ip_deny.contains(ctx.client_ip) {
            self.audit(ctx, &[], 0, None, "ip_deny");
            return if self.block_mode {
                self.refuse(state, Reason::WafIpSet)
            } else {
                Verdict::Continue
            };
        }
        if let Some((policy, window)) = self.rate {
            if let refused @ Verdict::Deny(..) = self.rate_check(ctx, policy, window) {
                return refused;
            }
        }
        // Bodies past the inspection limit (or not buffered: chunked).
        let mut body = ctx.body;
        if ctx.has_body && !ctx.body_complete {
            match self.oversize {
                Oversize::Continue => {}
                Oversize::Match => {
                    self.audit(ctx, &[], 0, None, "oversize");
                    if self.block_mode {
                        return self.refuse(state, Reason::WafOversize);
                    }
                }
                Oversize::NoMatch => body = None,
            }
        }

        let mut json = state.json.borrow_mut();
        json.clear();
        let mut parts = parts::recycle(state.parts.take());
        let content_type = collect_parts(
            ctx.raw_path,
            ctx.query,
            ctx.head,
            ctx.headers,
            body,
            &mut json,
            &mut parts,
        );
        let scan = self.scan(&parts, state, |id| self.excluded(id, ctx));
        let (mut hits, score, block) = (scan.hits, scan.score, scan.block);
        if !hits.is_empty() {
            name_json_hits(&mut hits, &parts, content_type, body);
        }
        state.parts.replace(parts::recycle(parts));
        drop(json);
        let crs = self.crs.as_ref().map(|c| self.run_crs(c, ctx, body));
        let crs_matched = crs.as_ref().is_some_and(|o| !o.matches.is_empty());
        if hits.is_empty() && !crs_matched {
            return Verdict::Continue;
        }
        state.matched.set(state.matched.get() + 1);
        let native_refuses = !hits.is_empty() && (block || score >= self.threshold);
        let crs_refuses = crs
            .as_ref()
            .is_some_and(|o| o.denied.is_some() && !o.detection_only);
        let refuse = native_refuses || crs_refuses;
        let action = match (refuse, self.block_mode) {
            (true, true) => "block",
            (true, false) => "count",
            (false, _) => "pass",
        };
        self.audit(ctx, &hits, score, crs.as_ref(), action);
        self.count_matches(ctx, &hits, crs.as_ref(), refuse && self.block_mode);
        if refuse && self.block_mode {
            self.refuse(state, Reason::WafRule)
        } else {
            Verdict::Continue
        }
    }

    /// The CRS over this request: its collections built from the head and the
    /// buffered body, both request phases run.
    fn run_crs(&self, crs: &crs::Crs, ctx: &RequestCtx<'_>, body: Option<&[u8]>) -> crs::Outcome {
        let headers = ctx
            .headers
            .iter()
            .map(|h| (h.name.get(ctx.head), h.value.get(ctx.head)))
            .collect();
        let req = crs::Request::new(
            ctx.head,
            headers,
            body,
            ctx.client_ip.to_string(),
            ctx.request_id,
        );
        crs.evaluate(&req, &|id| self.excluded(id, ctx))
    }

    /// The rate-based rule: a token bucket per client IP on the shared limiter; a
    /// client that runs it dry stays refused for the rest of the window.
    fn rate_check(&self, ctx: &RequestCtx<'_>, policy: Policy, window: Duration) -> Verdict {
        let state = &ctx.auth.waf;
        let ip = match LimitKey::ip(ctx.client_ip) {
            LimitKey::Ip(v) => v,
            _ => 0,
        };
        let now = Instant::now();
        {
            let mut blocked = state.blocked.borrow_mut();
            if let Some(until) = blocked.get_mut(&ip) {
                if now < *until {
                    return if self.block_mode {
                        self.refuse(state, Reason::WafRate)
                    } else {
                        Verdict::Continue
                    };
                }
            }
        }
        let level = Level {
            name: "waf",
            key: LimitKey::Waf(waf_key(&self.name, ip)),
            policy,
        };
        if let Decision::Refuse(_) = ctx.shard.check(&[level], None, false) {
            let mut blocked = state.blocked.borrow_mut();
            match blocked.get_mut(&ip) {
                Some(until) => *until = now + window,
                None => {
                    blocked.insert(ip, now + window, |_| 0);
                }
            }
            self.audit(ctx, &[], 0, None, "rate_based");
            if self.block_mode {
                return self.refuse(state, Reason::WafRate);
            }
        }
        Verdict::Continue
    }

    /// `portcullis_waf_matches_total{waf,rule,action}`: each matched rule
    /// (native and CRS) once, `action` `block` when the request was refused,
    /// `count` when it went on.
    fn count_matches(
        &self,
        ctx: &mut RequestCtx<'_>,
        hits: &[Hit],
        crs: Option<&crs::Outcome>,
        blocked: bool,
    ) {
        let action = if blocked { "block" } else { "count" };
        let ids = hits
            .iter()
            .map(|h| self.rules.rules[h.rule].id)
            .chain(crs.into_iter().flat_map(|o| o.matches.iter().map(|m| m.id)));
        if ctx.audit.is_some() {
            let list = ctx.waf_rules.get_or_insert_with(String::new);
            for id in ids.clone() {
                if !list.is_empty() {
                    list.push(',');
                }
                list.push_str(itoa::Buffer::new().format(id));
            }
        }
        for id in ids {
            let mut rule = itoa::Buffer::new();
            ctx.counters.bump(
                "portcullis_waf_matches_total",
                &[
                    ("waf", &self.name),
                    ("rule", rule.format(id)),
                    ("action", action),
                ],
            );
        }
    }

    /// One audit line per matched request, into the access log stream.
    fn audit(
        &self,
        ctx: &RequestCtx<'_>,
        hits: &[Hit],
        score: u32,
        crs: Option<&crs::Outcome>,
        action: &str,
    ) {
        let Some(sink) = ctx.audit else {
            return;
        };
        use crate::log::json_str;
        let mut s = String::with_capacity(256);
        s.push_str(",\"type\":\"waf\",\"waf\":");
        json_str(&mut s, self.name.as_bytes());
        s.push_str(",\"request_id\":");
        json_str(&mut s, ctx.request_id);
        s.push_str(",\"client_ip\":\"");
        s.push_str(&ctx.client_ip.to_string());
        s.push_str("\",\"action\":\"");
        s.push_str(action);
        s.push_str("\",\"score\":");
        s.push_str(itoa::Buffer::new().format(score));
        s.push_str(",\"matches\":[");
        for (i, h) in hits.iter().enumerate() {
            let rule = &self.rules.rules[h.rule];
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"rule\":");
            s.push_str(itoa::Buffer::new().format(rule.id));
            s.push_str(",\"category\":");
            json_str(&mut s, rule.category.as_bytes());
            s.push_str(",\"target\":\"");
            s.push_str(target_name(h.target));
            s.push_str("\",\"name\":");
            json_str(&mut s, &h.name);
            s.push_str(",\"excerpt\":");
            json_str(&mut s, &h.excerpt);
            s.push('}');
        }
        for (i, m) in crs.map_or(&[][..], |o| &o.matches[..]).iter().enumerate() {
            if i > 0 || !hits.is_empty() {
                s.push(',');
            }
            s.push_str("{\"rule\":");
            s.push_str(itoa::Buffer::new().format(m.id));
            s.push_str(",\"category\":");
            json_str(&mut s, m.category.as_bytes());
            s.push_str(",\"msg\":");
            json_str(&mut s, m.msg.as_bytes());
            s.push_str(",\"target\":");
            json_str(&mut s, m.var.as_bytes());
            s.push_str(",\"excerpt\":");
            json_str(&mut s, &m.value);
            if !m.data.is_empty() {
                s.push_str(",\"data\":");
                json_str(&mut s, m.data.as_bytes());
            }
            s.push('}');
        }
        s.push(']');
        if let Some(o) = crs {
            s.push_str(",\"crs_score\":");
            s.push_str(itoa::Buffer::new().format(o.score));
        }
        sink.line(&s);
    }
}

/// The parts of a request the rules can target: the path as sent, query names
/// and values, every header (by its name as sent: rules compare header names
/// ignoring case), cookies, and the body's fields. `json` (cleared by the
/// caller, reused between requests) holds the text JSON parts borrow. Returns
/// the Content-Type the body was split by (the last one sent).
pub fn collect_parts<'a>(
    raw_path: &'a [u8],
    query: &'a [u8],
    head: &'a [u8],
    headers: &[Header],
    body: Option<&'a [u8]>,
    json: &'a mut parts::JsonText,
    parts: &mut Vec<Part<'a>>,
) -> Option<&'a [u8]> {
    parts::push_with(parts, MAX_PARTS, || Part {
        target: Target::Path,
        name: std::borrow::Cow::Borrowed(b""),
        value: std::borrow::Cow::Borrowed(raw_path),
    });
    parts::query_parts(query, MAX_PARTS, parts);
    let mut content_type = None;
    for h in headers {
        if h.role == HeaderRole::HopByHop {
            continue;
        }
        let name = h.name.get(head);
        let value = h.value.get(head);
        if name.eq_ignore_ascii_case(b"cookie") {
            parts::cookie_parts(value, MAX_PARTS, parts);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            content_type = Some(value);
        }
        parts::push_with(parts, MAX_PARTS, || Part {
            target: Target::Headers,
            name: std::borrow::Cow::Borrowed(name),
            value: std::borrow::Cow::Borrowed(value),
        });
    }
    if let Some(body) = body {
        parts::body_parts(content_type, body, json, MAX_PARTS, parts);
    }
    content_type
}

/// Gives the hits in JSON body parts their key paths, which collecting the
/// parts leaves out (see [`parts::json_part_names`]): one naming walk of the
/// body for all of them. `content_type` is the one [`collect_parts`] went by.
fn name_json_hits(
    hits: &mut [Hit],
    parts: &[Part<'_>],
    content_type: Option<&[u8]>,
    body: Option<&[u8]>,
) {
    let (Some(body), Some(first)) = (body, parts.iter().position(|p| p.target == Target::Body))
    else {
        return;
    };
    // Body parts come last, so each is at `first` or past it.
    let Some(count) = hits
        .iter()
        .filter(|h| h.target == Target::Body)
        .map(|h| h.part - first + 1)
        .max()
    else {
        return;
    };
    let Some(names) = parts::json_part_names(content_type, body, count) else {
        return;
    };
    for hit in hits.iter_mut().filter(|h| h.target == Target::Body) {
        if let Some(name) = names.get(hit.part - first) {
            hit.name.clone_from(name);
        }
    }
}

fn target_name(t: Target) -> &'static str {
    match t {
        Target::Path => "path",
        Target::Query => "query",
        Target::QueryNames => "query_names",
        Target::Headers => "headers",
        Target::Cookies => "cookies",
        Target::Body => "body",
    }
}

fn waf_key(name: &str, ip: u128) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one((name, ip))
}

#[cfg(test)]
mod tests;
