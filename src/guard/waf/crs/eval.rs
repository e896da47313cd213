//! One request through the compiled SecLang [`Program`]: phase 1 (head) then
//! phase 2 (body), each rule's targets collected, transformed and matched,
//! its chain followed, its actions run — as libmodsecurity v3 and Coraza do
//! it: a link's non-disruptive actions (`setvar`, `ctl`, `capture`) run for
//! each value that matches it, before the rest of the chain is evaluated; the
//! rule's flow (`skipAfter`, `skip`) and disruptive action run once the whole
//! chain matched. Anomaly scoring is CRS's own arithmetic in `setvar`s; the
//! engine only runs it.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::compile::{
    AllowScope, Ctl, Disruptive, Effect, Engine, Item, Link, Program, Rule, SetOp, SetVar,
};
use super::gate::{Gate, GateState};
use super::macros::Macro;
use super::operator::{Captures, Expand};
use super::request::Request;
use super::transform::{Features, Transform};
use super::variable::{same_collection, Select, Target, Var};
use super::Blocking;
use crate::guard::waf::crs::seclang::IdRange;

/// A rule that matched (and logs).
#[derive(Debug, Clone)]
pub struct Match {
    pub id: u32,
    /// The rule's `attack-*` tag (`attack-sqli`), or "crs".
    pub category: String,
    pub msg: String,
    pub data: String,
    /// `MATCHED_VAR_NAME` of the match (`ARGS:q`).
    pub var: String,
    /// `MATCHED_VAR`, cut.
    pub value: Vec<u8>,
    pub severity: Option<u8>,
}

/// What one request came to.
#[derive(Debug, Default)]
pub struct Outcome {
    pub matches: Vec<Match>,
    /// The rule whose `deny` (or `block` under a denying default) fired, and
    /// the status it asked for.
    pub denied: Option<(u32, u16)>,
    /// The inbound anomaly score CRS computed (`tx.anomaly_score`, or CRS 4's
    /// `tx.blocking_inbound_anomaly_score`).
    pub score: i64,
    /// `ctl:ruleEngine=DetectionOnly` or `Off` was set by a rule.
    pub detection_only: bool,
}

/// Bytes of a matched value kept for the audit log.
const VALUE_EXCERPT: usize = 64;
/// `capture`'s variables, `TX:0`…`TX:9`.
const CAPTURE_KEYS: [&str; 10] = [
    "tx.0", "tx.1", "tx.2", "tx.3", "tx.4", "tx.5", "tx.6", "tx.7", "tx.8", "tx.9",
];
/// Values collected for one target list, at most.
const MAX_VALUES: usize = 4096;

/// Receives the members of a collection: (member name, value).
type Sink<'f, 'r> = &'f mut dyn FnMut(Cow<'r, [u8]>, Cow<'r, [u8]>);

/// A value a rule looks at: the collection, the member's name (`q` of
/// `ARGS:q`; empty for a scalar) and its bytes. The full name is only written
/// out when the value matches.
struct Value<'v> {
    var: Var,
    /// `&VAR`: a count.
    count: bool,
    member: Cow<'v, [u8]>,
    value: Cow<'v, [u8]>,
}

impl Value<'_> {
    /// `MATCHED_VAR_NAME`: `ARGS:q`, `REQUEST_URI`, `&TX`.
    fn full_name(&self) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.member.len() + 24);
        if self.count {
            full.push(b'&');
        }
        full.extend_from_slice(self.var.name().as_bytes());
        if !self.member.is_empty() {
            full.push(b':');
            full.extend_from_slice(&self.member);
        }
        full
    }

    /// Where the value's bytes live, when they are the request's own (stable for
    /// the whole transaction, so transformed results can be cached by it).
    fn cache_key(&self) -> Option<(usize, usize)> {
        match &self.value {
            Cow::Borrowed(b) => Some((b.as_ptr() as usize, b.len())),
            Cow::Owned(_) => None,
        }
    }
}

/// Transformed values of this request, by (source address, length, chain id):
/// the CRS applies the same few chains to the same values rule after rule.
#[derive(Default)]
struct TransformCache {
    /// The transformed value's range in `arena`; None: the value itself.
    index: FxHashMap<(usize, usize, u32), Option<(u32, u32)>>,
    arena: Vec<u8>,
    /// Per value (address, length).
    features: FxHashMap<(usize, usize), Features>,
}

impl TransformCache {
    /// Sized for a typical request (some 50 values under 30 chains), so it
    /// does not grow while the rules run.
    fn new() -> TransformCache {
        TransformCache {
            index: FxHashMap::with_capacity_and_hasher(2048, Default::default()),
            arena: Vec::with_capacity(4096),
            features: FxHashMap::with_capacity_and_hasher(128, Default::default()),
        }
    }

    /// `value` through `chain` (number `id`): the result's range in the
    /// arena, or None when the chain leaves it as it is. Cached by where
    /// the value lives: only for the request's own bytes (borrowed values),
    /// which stay put for the whole transaction.
    fn get(
        &mut self,
        chain: &[Transform],
        id: u32,
        value: &[u8],
        buf: &mut Vec<u8>,
        next: &mut Vec<u8>,
    ) -> Option<(u32, u32)> {
        let key = (value.as_ptr() as usize, value.len(), id);
        if let Some(&range) = self.index.get(&key) {
            return range;
        }
        let features = *self
            .features
            .entry((key.0, key.1))
            .or_insert_with(|| Features::of(value));
        let range = transform_from(chain, value, features, buf, next).then(|| {
            let start = self.arena.len() as u32;
            self.arena.extend_from_slice(buf);
            (start, self.arena.len() as u32)
        });
        self.index.insert(key, range);
        range
    }
}

/// The transaction: the request, the variables rules set, and what matched.
pub struct Txn<'r, 'a> {
    req: &'r Request<'a>,
    phase: u8,
    /// `tx.*`, `ip.*`, … (lower-case keys with their collection prefix).
    vars: FxHashMap<String, Vec<u8>>,
    matched_var: Vec<u8>,
    matched_var_name: Vec<u8>,
    /// This rule's matches so far (`MATCHED_VARS`).
    matched_vars: Vec<(Vec<u8>, Vec<u8>)>,
    removed_ids: Vec<IdRange>,
    removed_tags: Vec<String>,
    removed_targets: Vec<(Which, Var, Select)>,
    engine: Engine,
    rule_id: u32,
    caps: Captures,
    outcome: Outcome,
    /// Reused per rule: the link's values.
    values: Vec<Value<'r>>,
    cache: TransformCache,
    gate: GateState,
}

enum Which {
    Ids(Vec<IdRange>),
    Tag(String),
}

/// Runs both request phases of `program` over `req`.
#[inline(never)]
pub fn evaluate(
    program: &Program,
    blocking: &Blocking,
    req: &Request<'_>,
    excluded: &dyn Fn(u32) -> bool,
) -> Outcome {
    let mut tx = Txn {
        req,
        phase: 1,
        vars: FxHashMap::default(),
        matched_var: Vec::new(),
        matched_var_name: Vec::new(),
        matched_vars: Vec::new(),
        removed_ids: Vec::new(),
        removed_tags: Vec::new(),
        removed_targets: Vec::new(),
        engine: Engine::On,
        rule_id: 0,
        caps: Vec::new(),
        outcome: Outcome::default(),
        values: Vec::new(),
        cache: TransformCache::new(),
        gate: GateState::default(),
    };
    'phases: for phase in [1u8, 2] {
        tx.phase = phase;
        tx.gate.reset(program.gate.slots);
        let items = &program.phases[usize::from(phase) - 1];
        let mut i = 0;
        while i < items.len() {
            if tx.engine == Engine::Off {
                break 'phases;
            }
            let Item::Rule(r) = &items[i] else {
                i += 1;
                continue;
            };
            let rule = &program.rules[*r];
            i += 1;
            if excluded(rule.id) || tx.removed(rule) || !tx.eval_rule(rule, &program.gate) {
                continue;
            }
            if rule.log && rule.id != 0 {
                tx.record(rule);
            }
            if let Some(marker) = &rule.skip_after {
                // To just past the marker; no such marker ends the phase.
                i = items[i..]
                    .iter()
                    .position(|it| matches!(it, Item::Marker(m) if m == marker))
                    .map_or(items.len(), |p| i + p + 1);
            } else if rule.skip > 0 {
                let mut left = rule.skip;
                while left > 0 && i < items.len() {
                    if matches!(items[i], Item::Rule(_)) {
                        left -= 1;
                    }
                    i += 1;
                }
            }
            let deny = match rule.disruptive {
                Disruptive::Deny => true,
                Disruptive::Block => blocking.deny[usize::from(phase) - 1],
                Disruptive::Pass => false,
                Disruptive::Allow(scope) => match scope {
                    AllowScope::Phase => break,
                    AllowScope::All | AllowScope::Request => break 'phases,
                },
            };
            if deny {
                let status = rule
                    .status
                    .or(blocking.status[usize::from(phase) - 1])
                    .unwrap_or(403);
                tx.outcome.denied = Some((rule.id, status));
                break 'phases;
            }
        }
    }
    tx.outcome.score = ["tx.blocking_inbound_anomaly_score", "tx.anomaly_score"]
        .iter()
        .find_map(|k| tx.vars.get(*k))
        .map_or(0, |v| number(v));
    tx.outcome.detection_only = tx.engine != Engine::On;
    tx.outcome
}

fn number(s: &[u8]) -> i64 {
    let s = s.trim_ascii();
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl<'r> Txn<'r, '_> {
    fn removed(&self, rule: &Rule) -> bool {
        self.removed_ids
            .iter()
            .any(|r| (r.first..=r.last).contains(&rule.id))
            || rule
                .tags
                .iter()
                .any(|t| self.removed_tags.iter().any(|r| r == t))
    }

    /// Whether the whole chain matched.
    fn eval_rule(&mut self, rule: &Rule, gate: &Gate) -> bool {
        self.matched_vars.clear();
        self.rule_id = rule.id;
        rule.links
            .iter()
            .all(|link| self.eval_link(rule, link, gate))
    }

    fn eval_link(&mut self, rule: &Rule, link: &Link, gate: &Gate) -> bool {
        if link.targets.list.is_empty() {
            self.run_effects(link);
            return true;
        }
        if let Some(slot) = link.gate {
            if !self.gate_open(gate, link, slot) {
                return false;
            }
        }
        let mut values = std::mem::take(&mut self.values);
        self.collect(rule, link, &mut values);
        let mut cache = std::mem::take(&mut self.cache);
        let mut any = false;
        let mut buf = Vec::new();
        let mut next = Vec::new();
        for v in &values {
            // The candidates: the value after all transforms, or (multiMatch) the
            // value before any and after each.
            let check = |tx: &mut Self, candidate: &[u8]| {
                let want_caps = link.capture;
                let mut caps = std::mem::take(&mut tx.caps);
                let hit = link
                    .operator
                    .eval(candidate, tx, want_caps.then_some(&mut caps))
                    != link.negated;
                if hit {
                    if want_caps {
                        for key in CAPTURE_KEYS {
                            tx.vars.remove(key);
                        }
                        for (key, c) in CAPTURE_KEYS.iter().zip(&caps) {
                            tx.vars.insert((*key).to_owned(), c.clone());
                        }
                    }
                    let name = v.full_name();
                    tx.matched_var = candidate.to_vec();
                    tx.matched_vars.push((name.clone(), candidate.to_vec()));
                    tx.matched_var_name = name;
                    tx.run_effects(link);
                }
                tx.caps = caps;
                hit
            };
            if link.multi_match {
                any |= check(self, &v.value);
                buf.clear();
                buf.extend_from_slice(&v.value);
                for t in &link.transforms {
                    t.apply(&buf, &mut next);
                    std::mem::swap(&mut buf, &mut next);
                    any |= check(self, &buf);
                }
            } else if link.transforms.is_empty() {
                any |= check(self, &v.value);
            } else if v.cache_key().is_some() {
                any |= match cache.get(&link.transforms, link.chain, &v.value, &mut buf, &mut next)
                {
                    Some((start, end)) => check(self, &cache.arena[start as usize..end as usize]),
                    None => check(self, &v.value),
                };
            } else if transform_all(&link.transforms, &v.value, &mut buf, &mut next) {
                any |= check(self, &buf);
            } else {
                any |= check(self, &v.value);
            }
        }
        self.cache = cache;
        values.clear();
        self.values = values;
        any
    }

    /// Whether a literal of the link's may be in its collections (scanning
    /// those not yet scanned under its chain in this phase).
    fn gate_open(&mut self, gate: &Gate, link: &Link, slot: u32) -> bool {
        for t in &link.targets.list {
            if self.gate.is_open(slot) {
                return true;
            }
            if !self.gate.scanned.contains(&(t.var, link.chain)) {
                self.gate.scanned.push((t.var, link.chain));
                self.scan_for_gate(gate, t.var, link);
            }
        }
        self.gate.is_open(slot)
    }

    /// Every member of `var` through `link`'s chain, scanned for the gate's literals.
    fn scan_for_gate(&mut self, gate: &Gate, var: Var, link: &Link) {
        let mut cache = std::mem::take(&mut self.cache);
        let mut state = std::mem::take(&mut self.gate);
        let (mut buf, mut next) = (Vec::new(), Vec::new());
        let whole = Target {
            var,
            select: Select::All,
            count: false,
        };
        let mut found = Vec::new();
        self.members(&whole, &mut |_, value| {
            let (key, text): ((usize, usize), &[u8]) = match &value {
                Cow::Borrowed(b) => {
                    match cache.get(&link.transforms, link.chain, b, &mut buf, &mut next) {
                        // Arena offsets never have the top bit set; addresses don't either.
                        Some((s, e)) => (
                            (s as usize | 1 << 63, e as usize),
                            &cache.arena[s as usize..e as usize],
                        ),
                        None => ((b.as_ptr() as usize, b.len()), b),
                    }
                }
                // Computed values (none of the gated collections has them today).
                Cow::Owned(v) => {
                    let text = if transform_all(&link.transforms, v, &mut buf, &mut next) {
                        &buf[..]
                    } else {
                        &v[..]
                    };
                    found.clear();
                    gate.literals_in(text, &mut found);
                    gate.open(&found, link.chain, &mut state.bits);
                    return;
                }
            };
            let range = match state.strings.get(&key) {
                Some(&r) => r,
                None => {
                    let start = state.found.len() as u32;
                    gate.literals_in(text, &mut state.found);
                    let r = (start, state.found.len() as u32);
                    state.strings.insert(key, r);
                    r
                }
            };
            gate.open(
                &state.found[range.0 as usize..range.1 as usize],
                link.chain,
                &mut state.bits,
            );
        });
        self.cache = cache;
        self.gate = state;
    }

    fn run_effects(&mut self, link: &Link) {
        for e in &link.effects {
            match e {
                Effect::SetVar(s) => self.setvar(s),
                Effect::Ctl(c) => match c {
                    Ctl::RuleEngine(e) => self.engine = *e,
                    Ctl::RemoveById(ids) => self.removed_ids.extend_from_slice(ids),
                    Ctl::RemoveByTag(t) => self.removed_tags.push(t.clone()),
                    Ctl::RemoveTargetById(ids, var, sel) => {
                        self.removed_targets
                            .push((Which::Ids(ids.clone()), *var, sel.clone()))
                    }
                    Ctl::RemoveTargetByTag(tag, var, sel) => {
                        self.removed_targets
                            .push((Which::Tag(tag.clone()), *var, sel.clone()))
                    }
                    Ctl::Ignored => {}
                },
            }
        }
    }

    fn setvar(&mut self, s: &SetVar) {
        let mut key = s.prefix.as_bytes().to_vec();
        self.expand_into(&s.key, &mut key);
        key.make_ascii_lowercase();
        let key = String::from_utf8_lossy(&key).into_owned();
        let value = |tx: &Self, m: &Macro| {
            let mut out = Vec::new();
            tx.expand_into(m, &mut out);
            out
        };
        match &s.op {
            SetOp::Set(m) => {
                let v = value(self, m);
                self.vars.insert(key, v);
            }
            SetOp::Add(m) | SetOp::Sub(m) => {
                let delta = number(&value(self, m));
                let old = self.vars.get(&key).map_or(0, |v| number(v));
                let new = if matches!(s.op, SetOp::Add(_)) {
                    old.saturating_add(delta)
                } else {
                    old.saturating_sub(delta)
                };
                self.vars.insert(key, new.to_string().into_bytes());
            }
            SetOp::Delete => {
                self.vars.remove(&key);
            }
        }
    }

    fn record(&mut self, rule: &Rule) {
        let text = |tx: &Self, m: &Option<Macro>| {
            let mut out = Vec::new();
            if let Some(m) = m {
                tx.expand_into(m, &mut out);
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        let category = rule
            .tags
            .iter()
            .find(|t| t.starts_with("attack-"))
            .map_or("crs", |t| t.as_str())
            .to_string();
        let m = Match {
            id: rule.id,
            category,
            msg: text(self, &rule.msg),
            data: text(self, &rule.logdata),
            var: String::from_utf8_lossy(&self.matched_var_name).into_owned(),
            value: self.matched_var[..self.matched_var.len().min(VALUE_EXCERPT)].to_vec(),
            severity: rule.severity,
        };
        self.outcome.matches.push(m);
    }

    fn target_removed(&self, rule: &Rule, var: Var, name: &[u8]) -> bool {
        self.removed_targets.iter().any(|(which, v, sel)| {
            same_collection(*v, var)
                && sel.takes(name)
                && match which {
                    Which::Ids(ids) => ids.iter().any(|r| (r.first..=r.last).contains(&rule.id)),
                    Which::Tag(t) => rule.tags.iter().any(|rt| rt == t),
                }
        })
    }

    /// The values of a link's targets, exclusions applied, into `out`.
    fn collect(&self, rule: &Rule, link: &Link, out: &mut Vec<Value<'r>>) {
        for t in &link.targets.list {
            let start = out.len();
            self.members(t, &mut |member: Cow<'r, [u8]>, value: Cow<'r, [u8]>| {
                if link.targets.excludes(t.var, &member)
                    || self.target_removed(rule, t.var, &member)
                    || out.len() >= MAX_VALUES
                {
                    return;
                }
                out.push(Value {
                    var: t.var,
                    count: false,
                    member,
                    value,
                });
            });
            if t.count {
                let n = out.len() - start;
                out.truncate(start);
                out.push(Value {
                    var: t.var,
                    count: true,
                    member: Cow::Borrowed(b""),
                    value: Cow::Owned(n.to_string().into_bytes()),
                });
            }
        }
    }

    /// Calls `f(member name, value)` for each member of `t.var` that `t.select` takes.
    fn members(&self, t: &Target, f: Sink<'_, 'r>) {
        let r: &'r Request<'_> = self.req;
        let body = self.phase >= 2;
        let sel = &t.select;
        let mut pairs = |list: &'r [super::request::Pair<'_>], names: bool| {
            for (n, v) in list {
                if sel.takes(n) {
                    f(
                        Cow::Borrowed(&n[..]),
                        Cow::Borrowed(if names { &n[..] } else { &v[..] }),
                    );
                }
            }
        };
        let scalar = |f: Sink<'_, 'r>, v: Cow<'r, [u8]>| f(Cow::Borrowed(b""), v);
        use Var::*;
        match t.var {
            Args => {
                pairs(&r.args_get, false);
                if body {
                    pairs(&r.args_post, false);
                }
            }
            ArgsNames => {
                pairs(&r.args_get, true);
                if body {
                    pairs(&r.args_post, true);
                }
            }
            ArgsGet => pairs(&r.args_get, false),
            ArgsGetNames => pairs(&r.args_get, true),
            ArgsPost if body => pairs(&r.args_post, false),
            ArgsPostNames if body => pairs(&r.args_post, true),
            ArgsPost | ArgsPostNames => {}
            RequestCookies => pairs(&r.cookies, false),
            RequestCookiesNames => pairs(&r.cookies, true),
            ArgsCombinedSize => {
                let mut n: usize = r.args_get.iter().map(|(a, b)| a.len() + b.len()).sum();
                if body {
                    n += r
                        .args_post
                        .iter()
                        .map(|(a, b)| a.len() + b.len())
                        .sum::<usize>();
                }
                scalar(f, Cow::Owned(n.to_string().into_bytes()))
            }
            RequestHeaders | RequestHeadersNames => {
                for (n, v) in &r.headers {
                    if sel.takes(n) {
                        f(
                            Cow::Borrowed(*n),
                            Cow::Borrowed(if t.var == RequestHeaders { v } else { n }),
                        );
                    }
                }
            }
            RequestFilename => scalar(f, Cow::Borrowed(&r.filename)),
            RequestBasename => scalar(f, Cow::Borrowed(r.basename())),
            RequestUri => scalar(f, Cow::Borrowed(&r.uri)),
            RequestUriRaw => scalar(f, Cow::Borrowed(r.uri_raw)),
            RequestLine => scalar(f, Cow::Borrowed(r.line)),
            RequestMethod => scalar(f, Cow::Borrowed(r.method)),
            RequestProtocol => scalar(f, Cow::Borrowed(r.protocol)),
            QueryString => scalar(f, Cow::Borrowed(r.query)),
            RemoteAddr => scalar(f, Cow::Borrowed(r.remote_addr.as_bytes())),
            UniqueId => scalar(f, Cow::Borrowed(r.unique_id)),
            Duration => scalar(f, Cow::Borrowed(b"0")),
            FullRequestLength => scalar(
                f,
                Cow::Owned((r.line.len() + r.body.len()).to_string().into_bytes()),
            ),
            _ if t.var.needs_body() && !body => {}
            RequestBody => scalar(f, Cow::Borrowed(r.body)),
            RequestBodyLength => scalar(f, Cow::Owned(r.body.len().to_string().into_bytes())),
            Files | FilesNames | FilesSizes => {
                for (field, file, size) in &r.files {
                    if sel.takes(field) {
                        let v = match t.var {
                            Files => Cow::Borrowed(*file),
                            FilesNames => Cow::Borrowed(*field),
                            _ => Cow::Owned(size.to_string().into_bytes()),
                        };
                        f(Cow::Borrowed(*field), v);
                    }
                }
            }
            FilesCombinedSize => {
                let n: usize = r.files.iter().map(|f| f.2).sum();
                scalar(f, Cow::Owned(n.to_string().into_bytes()))
            }
            MultipartPartHeaders => {
                for (field, line) in &r.part_headers {
                    if sel.takes(field) {
                        f(Cow::Borrowed(*field), Cow::Borrowed(*line));
                    }
                }
            }
            Xml => {
                if let Some(x) = &r.xml {
                    f(Cow::Borrowed(b""), Cow::Borrowed(x));
                }
            }
            ReqbodyProcessor => {
                if !r.processor.is_empty() {
                    scalar(f, Cow::Borrowed(r.processor.as_bytes()))
                }
            }
            ReqbodyError => scalar(f, Cow::Borrowed(if r.body_error { b"1" } else { b"0" })),
            ReqbodyErrorMsg => {
                if r.body_error {
                    scalar(f, Cow::Borrowed(b"request body does not parse"))
                }
            }
            Tx => self.collection("tx.", sel, f),
            Persistent(p) => self.collection(p.prefix(), sel, f),
            MatchedVar => scalar(f, Cow::Owned(self.matched_var.clone())),
            MatchedVarName => scalar(f, Cow::Owned(self.matched_var_name.clone())),
            MatchedVars | MatchedVarsNames => {
                for (n, v) in &self.matched_vars {
                    if sel.takes(n) {
                        f(
                            Cow::Owned(n.clone()),
                            Cow::Owned(if t.var == MatchedVars { v } else { n }.clone()),
                        );
                    }
                }
            }
            Geo | Env | NeverSet => {}
        }
    }

    fn collection(&self, prefix: &str, sel: &Select, f: Sink<'_, 'r>) {
        if let Select::Name(n) = sel {
            let mut key = prefix.as_bytes().to_vec();
            key.extend_from_slice(n);
            if let Some(v) = self.vars.get(&*String::from_utf8_lossy(&key)) {
                f(Cow::Owned(n.clone()), Cow::Owned(v.clone()));
            }
            return;
        }
        for (k, v) in &self.vars {
            if let Some(name) = k.strip_prefix(prefix) {
                if sel.takes(name.as_bytes()) {
                    f(Cow::Owned(name.as_bytes().to_vec()), Cow::Owned(v.clone()));
                }
            }
        }
    }

    /// Appends `m` expanded against this transaction.
    fn expand_into(&self, m: &Macro, out: &mut Vec<u8>) {
        m.expand_with(
            &mut |coll, key, out| {
                let var = match super::variable::Var::lookup(coll) {
                    super::variable::Lookup::Var(v) => v,
                    _ if coll == "RULE" => {
                        if key == Some("id") {
                            out.extend_from_slice(self.rule_id.to_string().as_bytes());
                        }
                        return;
                    }
                    _ => return,
                };
                let target = Target {
                    var,
                    select: match key {
                        Some(k) => Select::Name(k.as_bytes().to_vec()),
                        None => Select::All,
                    },
                    count: false,
                };
                let mut first = true;
                self.members(&target, &mut |_, v| {
                    if first {
                        out.extend_from_slice(&v);
                        first = false;
                    }
                });
            },
            out,
        );
    }
}

impl Expand for Txn<'_, '_> {
    fn expand(&self, m: &Macro, out: &mut Vec<u8>) {
        self.expand_into(m, out);
    }
}

/// Applies `chain` to `value`, leaving the result in `buf`.
/// Runs `chain` over `value`; `false` when the value comes out as it went in
/// (nothing in it is what the chain acts on: the usual benign value), else
/// the result is in `buf`.
fn transform_all(chain: &[Transform], value: &[u8], buf: &mut Vec<u8>, next: &mut Vec<u8>) -> bool {
    transform_from(chain, value, Features::of(value), buf, next)
}

/// [`transform_all`] with the value's [`Features`] known.
fn transform_from(
    chain: &[Transform],
    value: &[u8],
    features: Features,
    buf: &mut Vec<u8>,
    next: &mut Vec<u8>,
) -> bool {
    let mut changed = false;
    for t in chain {
        let unchanged = if changed {
            t.leaves_unchanged(buf)
        } else {
            t.leaves_unchanged_with(features, value)
        };
        if unchanged {
            continue;
        }
        let current: &[u8] = if changed { buf } else { value };
        t.apply(current, next);
        std::mem::swap(buf, next);
        changed = true;
    }
    changed
}
