//! The rule scan: every part of a request through every transform chain and its
//! automaton in one pass, literal hits confirmed per rule (see [`Waf::scan`]).
//! The buffers it works in are a core's ([`WafBuffers`]), reused from request to
//! request.

use rustc_hash::FxHashMap;

use super::parts::{Part, Target};
use super::rules::Rule;
use super::{lowered, normalize, Waf, WafState, EXCERPT};

/// Per-chain outputs for the current part, and a scratch buffer.
#[derive(Default)]
pub(super) struct WafBuffers {
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

/// What a scan found.
pub struct Scan {
    pub hits: Vec<Hit>,
    pub score: u32,
    /// A matched rule blocks on its own.
    pub block: bool,
}

/// One scan's confirming state: the parts scanned, which rules matched so far
/// (each counts once per request), the regex results so far (a regex runs once
/// per part and chain), the request's rule exclusions, and the result.
struct Confirmer<'s, 'p, E> {
    rules: &'s [Rule],
    parts: &'s [Part<'p>],
    matched: &'s mut [bool],
    regex_results: &'s mut FxHashMap<RegexRun, bool>,
    excluded: &'s E,
    scan: Scan,
}

impl<E: Fn(u32) -> bool> Confirmer<'_, '_, E> {
    /// A literal of rule `r` at `at` in `out`, `parts[pi]` normalized by chain
    /// `chain`: a hit when the rule looks at the part, is on and confirms, and
    /// has not matched yet (each rule counts once per request).
    fn confirm(&mut self, r: usize, (pi, chain): (usize, usize), out: &[u8], at: usize) {
        let Confirmer {
            rules,
            parts,
            matched,
            regex_results,
            excluded,
            scan,
        } = self;
        let rule = &rules[r];
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
}

/// One confirmed rule match.
pub struct Hit {
    pub(super) rule: usize,
    /// The part's index in the scanned parts.
    pub(super) part: usize,
    pub(super) target: Target,
    pub(super) name: Vec<u8>,
    pub(super) excerpt: Vec<u8>,
}

impl Waf {
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
        let mut c = Confirmer {
            rules,
            parts,
            matched,
            regex_results,
            excluded: &excluded,
            scan: Scan {
                hits: Vec::new(),
                score: 0,
                block: false,
            },
        };
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
                if c.matched[r] || full.get(pi).is_none_or(|&f| f) {
                    continue;
                }
                let start = pi.checked_sub(1).map_or(0, |p| ends[p] + 1);
                let value = joined.get_mut(start..ends[pi]).unwrap_or_default();
                value.make_ascii_lowercase();
                c.confirm(r, (pi, LOWERED), value, at - start);
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
                    c.confirm(r, (pi, ci), out, m.start());
                }
            }
        }
        c.scan
    }
}
