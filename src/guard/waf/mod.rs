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
pub mod ipset;
pub mod lowered;
pub mod normalize;
pub mod parts;
pub mod rules;

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use self::ipset::IpSet;
use self::parts::{Part, Target};
use self::rules::RuleSet;
use super::{RequestCtx, Verdict};
use crate::http::reply::Reply;
use crate::http::request::{Header, HeaderRole};
use crate::limit::{BoundedMap, Decision, Level, LimitKey, Policy};

/// Parts inspected per request, at most.
const MAX_PARTS: usize = 512;
/// Bytes of a matched value quoted in the audit log.
const EXCERPT: usize = 48;
/// Client IPs remembered as blocked by the rate-based rule, per core.
const BLOCKED_ENTRIES: usize = 65_536;

/// A compiled `[waf.NAME]`.
#[derive(Debug)]
pub struct Waf {
    pub name: Arc<str>,
    pub block_mode: bool,
    pub threshold: u32,
    pub rules: RuleSet,
    pub ip_deny: IpSet,
    pub ip_allow: IpSet,
    /// `rate_based`: the bucket per client IP, and the window a client stays blocked.
    pub rate: Option<(Policy, Duration)>,
    /// (rule id, path prefix, route name): where a rule is off.
    pub exclude: Vec<(u32, Option<String>, Option<String>)>,
    pub inspect_body: u64,
    pub oversize_block: bool,
}

/// A core's WAF state: reused buffers and the clients the rate rule blocked.
/// Per-chain outputs for the current part, and a scratch buffer.
#[derive(Default)]
struct WafBuffers {
    outs: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    /// Which chains' outputs hold the current part.
    done: Vec<bool>,
    /// Which rules matched this request (each counts once).
    matched: Vec<bool>,
    /// The request's parts joined by [`lowered::SEPARATOR`]; a part is
    /// lower-cased in place when a literal found in it is confirmed.
    joined: Vec<u8>,
    /// Where each part ends in `joined`.
    ends: Vec<usize>,
    /// Per part: whether it needs the full transforms (it holds a sequence
    /// some transform but `lowercase` rewrites).
    full: Vec<bool>,
    /// (rule, offset in `joined`) per literal the fast path found.
    literals: Vec<(usize, usize)>,
    /// This request's regex results so far, so rules that share a regex run
    /// it once per value (a map, as a request can hold many literal hits;
    /// with Fx hashing, SipHash's cost showed in the scan).
    regex_results: FxHashMap<RegexRun, bool>,
}

/// Regex `regex_id` (see [`rules::Rule::regex_id`]) run on part `part` as
/// transformed by chain `chain` ([`LOWERED`] for the fast path, where every
/// lower-casing chain's output is the part in lower case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct RegexRun {
    regex_id: usize,
    part: usize,
    chain: usize,
}

/// The chain of [`RegexRun`]s from the fast path.
const LOWERED: usize = usize::MAX;

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

/// What a scan found.
pub struct Scan {
    pub hits: Vec<Hit>,
    pub score: u32,
    /// A matched rule blocks on its own.
    pub block: bool,
}

/// One confirmed rule match.
pub struct Hit {
    rule: usize,
    /// The part's index in the scanned parts.
    part: usize,
    target: Target,
    name: Vec<u8>,
    excerpt: Vec<u8>,
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
            ip_deny: IpSet::new(&[]),
            ip_allow: IpSet::new(&[]),
            rate: None,
            exclude: Vec::new(),
            inspect_body: 64 << 10,
            oversize_block: false,
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

    fn refuse(&self, state: &WafState) -> Verdict {
        state.refused.set(state.refused.get() + 1);
        Verdict::Respond(Reply::error(403))
    }

    /// Scans `parts` with every chain. All parts, joined, go through one
    /// automaton (reading upper case as lower case) ([`lowered::Lowered`]) holding the literals of the
    /// chains that lower-case and the byte sequences other transforms rewrite.
    /// On a part without such a sequence (most values of ordinary requests)
    /// those chains' outputs are the part in lower case, so that pass is their
    /// scan. Every other (part, chain) is normalized once and run through the
    /// chain's automaton once. Literal hits are confirmed per rule.
    /// `excluded(id)`: rules turned off for this request.
    pub fn scan(
        &self,
        parts: &[Part<'_>],
        state: &WafState,
        excluded: impl Fn(u32) -> bool,
    ) -> Scan {
        let rules = &self.rules.rules;
        let chains = &self.rules.chains;
        let lowered = self.rules.lowered.as_ref();
        let mut scan = Scan {
            hits: Vec::new(),
            score: 0,
            block: false,
        };
        let mut bufs = state.buf.borrow_mut();
        let WafBuffers {
            outs,
            scratch,
            done,
            matched,
            joined,
            ends,
            full,
            literals,
            regex_results,
        } = &mut *bufs;
        regex_results.clear();
        matched.clear();
        matched.resize(rules.len(), false);
        if outs.len() < chains.len() {
            outs.resize_with(chains.len(), Vec::new);
        }
        done.clear();
        done.resize(chains.len(), false);
        // Which parts need the full transforms of the lower-casing chains.
        full.clear();
        if let Some(l) = lowered {
            // Separators first, then each part copied into its place (cheaper
            // than pushing one after each part).
            joined.clear();
            joined.resize(
                parts.iter().map(|p| p.value.len() + 1).sum(),
                lowered::SEPARATOR,
            );
            ends.clear();
            ends.reserve(parts.len());
            full.resize(parts.len(), false);
            let mut at = 0;
            for (part, full) in parts.iter().zip(full.iter_mut()) {
                let value = &part.value[..];
                if let Some(place) = joined.get_mut(at..at + value.len()) {
                    place.copy_from_slice(value);
                }
                at += value.len();
                ends.push(at);
                at += 1;
                // `.` and `..` are path segments on their own.
                *full = matches!(value, b"." | b"..");
            }
            // The walk leaves control, DEL and non-ASCII bytes to this count:
            // past the separators, there are none in most requests.
            let unprintable: usize = joined
                .chunks(255)
                .map(|c| {
                    usize::from(
                        c.iter()
                            .map(|&b| u8::from(lowered::unprintable(b)))
                            .sum::<u8>(),
                    )
                })
                .sum();
            if unprintable != parts.len() {
                for (f, part) in full.iter_mut().zip(parts) {
                    *f |= part.value.iter().copied().any(lowered::unprintable);
                }
            }
            // The walk reads upper case as lower case; the parts confirmed
            // below are lower-cased then.
            literals.clear();
            // The part at `at`: the first whose end is past it.
            let part_at = |at: usize| ends.partition_point(|&end| end <= at);
            l.find(joined, &mut |found| match found {
                lowered::Found::Literal { rule, start } => literals.push((rule, start)),
                lowered::Found::Rewritable { start } => {
                    if let Some(f) = full.get_mut(part_at(start)) {
                        *f = true;
                    }
                }
            });
            // Literals found at one place (rules sharing a literal) come one
            // after another: their part is looked up once.
            let mut last = (usize::MAX, 0);
            for &(r, at) in literals.iter() {
                let pi = if at == last.0 { last.1 } else { part_at(at) };
                last = (at, pi);
                if matched[r] || full.get(pi).is_none_or(|&f| f) {
                    continue;
                }
                let start = pi.checked_sub(1).map_or(0, |p| ends[p] + 1);
                let value = joined.get_mut(start..ends[pi]).unwrap_or_default();
                value.make_ascii_lowercase();
                self.confirm(
                    r,
                    parts,
                    (pi, LOWERED),
                    value,
                    at - start,
                    (matched, regex_results),
                    &excluded,
                    &mut scan,
                );
            }
        } else {
            full.resize(parts.len(), true);
        }
        let all_lowered = chains.iter().all(|c| c.lowered);
        for (pi, (part, &full)) in parts.iter().zip(full.iter()).enumerate() {
            if !full && all_lowered {
                continue;
            }
            for (ci, chain) in chains.iter().enumerate() {
                done[ci] = false;
                if (!full && chain.lowered) || !chain.wants(part.target, &part.name) {
                    continue;
                }
                // Start from a shorter chain's output for this part when it is a
                // prefix of this one (most chains share their decoding steps).
                let (head, rest) = outs.split_at_mut(ci);
                let out = &mut rest[0];
                match chain.base {
                    Some((j, k)) if done[j] => {
                        normalize::apply(&chain.transforms[k..], &head[j], out, scratch)
                    }
                    _ => normalize::apply(&chain.transforms, &part.value, out, scratch),
                }
                done[ci] = true;
                for m in chain.automaton.find_overlapping_iter(&out[..]) {
                    let r = chain.pattern_rule[m.pattern().as_usize()];
                    self.confirm(
                        r,
                        parts,
                        (pi, ci),
                        out,
                        m.start(),
                        (matched, regex_results),
                        &excluded,
                        &mut scan,
                    );
                }
            }
        }
        scan
    }

    /// A literal of rule `r` at `at` in `out`, `parts[pi]` normalized by chain
    /// `chain`: a hit when the rule looks at the part, is on and confirms, and
    /// has not matched yet (each rule counts once per request). `matched`
    /// holds which rules have; `regex_results` the regex results so far.
    #[allow(clippy::too_many_arguments)]
    fn confirm(
        &self,
        r: usize,
        parts: &[Part<'_>],
        (pi, chain): (usize, usize),
        out: &[u8],
        at: usize,
        (matched, regex_results): (&mut [bool], &mut FxHashMap<RegexRun, bool>),
        excluded: &impl Fn(u32) -> bool,
        scan: &mut Scan,
    ) {
        let rule = &self.rules.rules[r];
        let part = &parts[pi];
        if matched[r]
            || !rule.looks_at(part.target, &part.name)
            || excluded(rule.id)
            || !rule.confirms(out, |regex| {
                let run = RegexRun {
                    regex_id: rule.regex_id,
                    part: pi,
                    chain,
                };
                *regex_results
                    .entry(run)
                    .or_insert_with(|| regex.is_match(out))
            })
        {
            return;
        }
        matched[r] = true;
        scan.score += rule.score;
        scan.block |= rule.block;
        let from = at.saturating_sub(EXCERPT / 4);
        let to = (from + EXCERPT).min(out.len());
        scan.hits.push(Hit {
            rule: r,
            part: pi,
            target: part.target,
            // Header names as sent; the audit log has them in lower case.
            name: match part.target {
                Target::Headers => part.name.to_ascii_lowercase(),
                _ => part.name.to_vec(),
            },
            excerpt: out[from..to].to_vec(),
        });
    }

    pub fn check(&self, ctx: &mut RequestCtx<'_>) -> Verdict {
        let state = &ctx.auth.waf;
        if self.ip_allow.contains(ctx.client_ip) {
            return Verdict::Continue;
        }
        if self.ip_deny.contains(ctx.client_ip) {
            self.audit(ctx, &[], 0, "ip_deny");
            return if self.block_mode {
                self.refuse(state)
            } else {
                Verdict::Continue
            };
        }
        if let Some((policy, window)) = self.rate {
            if let Verdict::Respond(r) = self.rate_check(ctx, policy, window) {
                return Verdict::Respond(r);
            }
        }
        // Bodies past the inspection limit (or not buffered: chunked).
        if ctx.has_body && !ctx.body_complete && self.oversize_block {
            self.audit(ctx, &[], 0, "oversize");
            if self.block_mode {
                return self.refuse(state);
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
            ctx.body,
            &mut json,
            &mut parts,
        );
        let scan = self.scan(&parts, state, |id| self.excluded(id, ctx));
        let (mut hits, score, block) = (scan.hits, scan.score, scan.block);
        if !hits.is_empty() {
            name_json_hits(&mut hits, &parts, content_type, ctx.body);
        }
        state.parts.replace(parts::recycle(parts));
        if hits.is_empty() {
            return Verdict::Continue;
        }
        state.matched.set(state.matched.get() + 1);
        let refuse = block || score >= self.threshold;
        let action = match (refuse, self.block_mode) {
            (true, true) => "block",
            (true, false) => "count",
            (false, _) => "pass",
        };
        self.audit(ctx, &hits, score, action);
        if refuse && self.block_mode {
            self.refuse(state)
        } else {
            Verdict::Continue
        }
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
                        self.refuse(state)
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
        if let Decision::Refuse(_) = ctx.limits.check(&[level], None, false) {
            let mut blocked = state.blocked.borrow_mut();
            match blocked.get_mut(&ip) {
                Some(until) => *until = now + window,
                None => {
                    blocked.insert(ip, now + window, |_| 0);
                }
            }
            self.audit(ctx, &[], 0, "rate_based");
            if self.block_mode {
                return self.refuse(state);
            }
        }
        Verdict::Continue
    }

    /// One audit line per matched request, into the access log stream.
    fn audit(&self, ctx: &RequestCtx<'_>, hits: &[Hit], score: u32, action: &str) {
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
        s.push(']');
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
