//! The request's literal gate: one Aho-Corasick pass per request value
//! decides which `@rx`/`@pm` links can match at all, so the rules whose
//! literals appear nowhere in their collections are turned away before their
//! values are even collected.
//!
//! At load ([`Gate::build`]) every link whose operator has literals (an
//! `@rx` with a required set from [`super::prefilter`], or `@pm`'s phrases),
//! is not negated, not `multiMatch`, and reads only the request's own
//! collections gets a slot, and all their literals go into one automaton
//! (ASCII case ignored, as the literals are lower-cased). Per request and
//! phase, the first time a link asks about a collection under its
//! transformation chain, every member of the collection is transformed by
//! that chain (through the transaction's cache) and scanned once: each
//! literal found opens the slots of the links of that chain it belongs to.
//! A link whose slot stays shut cannot match: a match must contain one of its
//! literals after its transformations, in one of its collections' members.
//! Selectors and exclusions only narrow what a link reads, so gating on the
//! whole collection never turns away a match; the scans of one string are
//! shared by every chain that leaves it unchanged.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rustc_hash::FxHashMap;

use super::compile::Rule;
use super::variable::Var;

/// Literals shorter than this keep a link off the gate.
const WEAK: usize = 3;

/// The gated links' literals, compiled.
#[derive(Debug, Default)]
pub struct Gate {
    automaton: Option<AhoCorasick>,
    /// Per literal: the (chain, slot) of each link it belongs to.
    serves: Vec<Vec<(u32, u32)>>,
    /// Slots handed out (gated links).
    pub slots: usize,
}

/// Collections a gate may stand for: the request's own data, the same in
/// every rule of a phase (no `TX`, no `MATCHED_VAR`, no computed sizes).
pub fn gateable(var: Var) -> bool {
    use Var::*;
    matches!(
        var,
        Args | ArgsNames
            | ArgsGet
            | ArgsGetNames
            | ArgsPost
            | ArgsPostNames
            | RequestHeaders
            | RequestHeadersNames
            | RequestCookies
            | RequestCookiesNames
            | RequestFilename
            | RequestBasename
            | RequestUri
            | RequestUriRaw
            | RequestLine
            | RequestMethod
            | RequestProtocol
            | QueryString
            | RequestBody
            | Files
            | FilesNames
            | MultipartPartHeaders
            | Xml
    )
}

impl Gate {
    /// Hands a slot to every link that can be gated (`link.gate`) and
    /// compiles their literals.
    pub fn build(rules: &mut [Rule]) -> Result<Gate, String> {
        let mut index: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut serves: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut slots = 0u32;
        for rule in rules {
            for link in &mut rule.links {
                let Some(lits) = link.operator.literals() else {
                    continue;
                };
                let reads_request = !link.targets.list.is_empty()
                    && link
                        .targets
                        .list
                        .iter()
                        .all(|t| !t.count && gateable(t.var));
                // One- and two-byte literals (`;`, `<`, `on`) are in most
                // values: the link's own prefilter is as good there.
                let weak = lits.iter().any(|l| l.len() < WEAK);
                if link.negated || link.multi_match || !reads_request || weak {
                    continue;
                }
                let slot = slots;
                slots += 1;
                link.gate = Some(slot);
                for l in lits {
                    let id = *index.entry(l.clone()).or_insert_with(|| {
                        literals.push(l.clone());
                        serves.push(Vec::new());
                        (literals.len() - 1) as u32
                    });
                    serves[id as usize].push((link.chain, slot));
                }
            }
        }
        let automaton = if literals.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                    .build(&literals)
                    .map_err(|e| format!("the CRS literal gate does not compile: {e}"))?,
            )
        };
        Ok(Gate {
            automaton,
            serves,
            slots: slots as usize,
        })
    }

    /// Appends the ids of the literals in `s` (each once) to `out`.
    pub fn literals_in(&self, s: &[u8], out: &mut Vec<u32>) {
        let Some(ac) = &self.automaton else {
            return;
        };
        let start = out.len();
        for m in ac.find_overlapping_iter(s) {
            out.push(m.pattern().as_u32());
        }
        let found = &mut out[start..];
        found.sort_unstable();
        let mut kept = start;
        for i in start..out.len() {
            if i == start || out[i] != out[kept - 1] {
                out[kept] = out[i];
                kept += 1;
            }
        }
        out.truncate(kept);
    }

    /// Opens the slots of the links of `chain` that the literals `found` serve.
    pub fn open(&self, found: &[u32], chain: u32, bits: &mut [u64]) {
        for &lit in found {
            for &(c, slot) in &self.serves[lit as usize] {
                if c == chain {
                    bits[slot as usize / 64] |= 1 << (slot % 64);
                }
            }
        }
    }
}

/// One request's gate: what was scanned in this phase and which slots are open.
#[derive(Default)]
pub struct GateState {
    /// (collection, chain) pairs scanned in this phase.
    pub scanned: Vec<(Var, u32)>,
    pub bits: Vec<u64>,
    /// Literals found per string (its address and length), as a range of `found`.
    pub strings: FxHashMap<(usize, usize), (u32, u32)>,
    pub found: Vec<u32>,
}

impl GateState {
    /// A new phase: collections may hold more (the body's arguments).
    pub fn reset(&mut self, slots: usize) {
        self.scanned.clear();
        self.bits.clear();
        self.bits.resize(slots.div_ceil(64), 0);
    }

    pub fn is_open(&self, slot: u32) -> bool {
        self.bits[slot as usize / 64] & (1 << (slot % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_found_once_each() {
        let mut rules = Vec::new();
        let gate = Gate {
            automaton: Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .build(["union", "select", "on"])
                    .unwrap(),
            ),
            serves: vec![vec![(0, 0)], vec![(0, 1)], vec![(1, 2)]],
            slots: 3,
        };
        let mut out = vec![7];
        gate.literals_in(b"UNION select union", &mut out);
        assert_eq!(out, vec![7, 0, 1, 2]);
        let mut bits = vec![0u64];
        gate.open(&out[1..], 0, &mut bits);
        assert_eq!(bits[0], 0b011);
        assert!(Gate::build(&mut rules).unwrap().automaton.is_none());
    }
}
