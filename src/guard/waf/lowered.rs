//! The WAF's fast path ([`Lowered`]): one automaton holding the literals of every
//! transform chain that lower-cases, run once per request over all the parts,
//! lower-cased and joined by [`SEPARATOR`]. On a part no transform but
//! `lowercase` would change ([`changes_only_case`]) each of those chains' output
//! is the part in lower case, so this one pass stands for one scan per part and
//! chain. The same automaton also finds the byte sequences that make a part
//! need the full transforms ([`rewritable_sequences`]), so telling those parts
//! apart costs no pass of its own, but for one vectorized count of the
//! [`unprintable`] bytes.
//!
//! Hand-written hot-path code: a DFA walk is bound by the latency of one
//! transition-table load per byte, so [`Lowered::find`] cuts the joined text at
//! separators into [`LANES`] pieces and walks them interleaved (independent loads
//! overlap); a piece can start from the start state because the separator is
//! in no pattern.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use memchr::memchr;

#[cfg(doc)]
use super::normalize::changes_only_case;
use super::normalize::{has_rewritable, rewritable_sequences};

/// Pieces of the joined text walked interleaved (measured: 6 and 8 are slower,
/// their states no longer fit in registers).
const LANES: usize = 4;

/// Joins the parts: ASCII "unit separator", [`unprintable`], so in no pattern.
pub const SEPARATOR: u8 = 0x1F;

/// Whether `b` is a control byte, DEL or not ASCII: each is one of the
/// [`rewritable_sequences`], but the walk leaves them to the caller (one
/// vectorized count over the joined text) to keep the automaton's alphabet,
/// and so its table, small.
pub fn unprintable(b: u8) -> bool {
    b.wrapping_sub(0x20) >= 0x5F
}

/// The [`rewritable_sequences`] the walk looks for: those of printable bytes.
fn walked_rewritable_sequences() -> Vec<Vec<u8>> {
    rewritable_sequences()
        .into_iter()
        .filter(|s| !s.iter().copied().any(unprintable))
        .collect()
}

/// What [`Lowered::find`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Found {
    /// A literal of rule `rule` starting at `start`.
    Literal { rule: usize, start: usize },
    /// One of [`rewritable_sequences`] at `start`: the part holding it needs
    /// the full transforms, and literals found in it here mean nothing.
    Rewritable { start: usize },
}

/// The fast path's automaton.
#[derive(Debug)]
pub struct Lowered {
    dfa: DFA,
    /// Pattern index → rule index; None for a rewritable sequence.
    pattern_rule: Vec<Option<usize>>,
}

impl Lowered {
    /// The automaton of `literals` (each with its rule index); None when there
    /// are none. A literal holding a rewritable sequence is left out: it can
    /// only occur in a part that takes the full transforms.
    pub fn build(literals: &[(&[u8], usize)]) -> Result<Option<Lowered>, String> {
        debug_assert!(has_rewritable(&[SEPARATOR]));
        let kept: Vec<(&[u8], usize)> = literals
            .iter()
            .filter(|(l, _)| !has_rewritable(l))
            .copied()
            .collect();
        if kept.is_empty() {
            return Ok(None);
        }
        let rewritable = walked_rewritable_sequences();
        let patterns = kept
            .iter()
            .map(|(l, _)| *l)
            .chain(rewritable.iter().map(|s| &s[..]));
        // No prefilter: then only match states are "special", the one check per
        // byte of the walk.
        let dfa = aho_corasick::dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(patterns)
            .map_err(|e| format!("cannot build the literal automaton: {e}"))?;
        let pattern_rule = kept
            .iter()
            .map(|(_, r)| Some(*r))
            .chain(rewritable.iter().map(|_| None))
            .collect();
        Ok(Some(Lowered { dfa, pattern_rule }))
    }

    /// Calls `found` for every occurrence (overlapping ones too) of a pattern in
    /// `text` (parts joined by [`SEPARATOR`]), not in text order. The
    /// [`unprintable`] bytes are not reported: the caller checks for those.
    pub fn find(&self, text: &[u8], found: &mut impl FnMut(Found)) {
        let Ok(start) = self.dfa.start_state(Anchored::No) else {
            return;
        };
        // Cut points: just past a separator, near each LANES-th of the text.
        let mut bounds = [text.len(); LANES + 1];
        bounds[0] = 0;
        for k in 1..LANES {
            let from = (text.len() * k / LANES).max(bounds[k - 1]);
            bounds[k] = text
                .get(from..)
                .and_then(|rest| memchr(SEPARATOR, rest))
                .map_or(text.len(), |p| from + p + 1);
        }
        let pieces: [&[u8]; LANES] =
            std::array::from_fn(|k| text.get(bounds[k]..bounds[k + 1]).unwrap_or_default());
        let common = pieces.iter().map(|p| p.len()).min().unwrap_or(0);
        let heads = pieces.map(|p| p.get(..common).unwrap_or_default());
        let mut states = [start; LANES];
        for i in 0..common {
            let mut special = false;
            for lane in 0..LANES {
                let byte = heads[lane].get(i).copied().unwrap_or(SEPARATOR);
                states[lane] = self.dfa.next_state(Anchored::No, states[lane], byte);
                special |= self.dfa.is_special(states[lane]);
            }
            if special {
                for (lane, &sid) in states.iter().enumerate() {
                    self.report(sid, bounds[lane] + i + 1, found);
                }
            }
        }
        // The rest of the longer pieces, one at a time.
        for (lane, (piece, mut sid)) in pieces.iter().zip(states).enumerate() {
            for (i, &byte) in piece.iter().enumerate().skip(common) {
                sid = self.dfa.next_state(Anchored::No, sid, byte);
                if self.dfa.is_special(sid) {
                    self.report(sid, bounds[lane] + i + 1, found);
                }
            }
        }
    }

    /// The patterns that end at `end` in state `sid`, if a match state.
    #[cold]
    #[inline(never)]
    fn report(&self, sid: StateID, end: usize, found: &mut impl FnMut(Found)) {
        if !self.dfa.is_match(sid) {
            return;
        }
        for k in 0..self.dfa.match_len(sid) {
            let pattern = self.dfa.match_pattern(sid, k);
            let start = end - self.dfa.pattern_len(pattern);
            found(match self.pattern_rule[pattern.as_usize()] {
                Some(rule) => Found::Literal { rule, start },
                None => Found::Rewritable { start },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_found(l: &Lowered, text: &[u8]) -> Vec<Found> {
        let mut v = Vec::new();
        l.find(text, &mut |f| v.push(f));
        v.sort_unstable();
        v
    }

    /// What the aho-corasick crate's own overlapping search finds.
    fn reference(text: &[u8]) -> Vec<Found> {
        let kept: Vec<_> = LITERALS
            .iter()
            .filter(|(l, _)| !has_rewritable(l))
            .collect();
        let rewritable = walked_rewritable_sequences();
        let patterns = kept
            .iter()
            .map(|(l, _)| l.to_vec())
            .chain(rewritable.iter().cloned());
        let ac = aho_corasick::AhoCorasick::new(patterns).unwrap();
        let mut v: Vec<Found> = ac
            .find_overlapping_iter(text)
            .map(|m| match kept.get(m.pattern().as_usize()) {
                Some((_, rule)) => Found::Literal {
                    rule: *rule,
                    start: m.start(),
                },
                None => Found::Rewritable { start: m.start() },
            })
            .collect();
        v.sort_unstable();
        v
    }

    const LITERALS: &[(&[u8], usize)] = &[
        (b"union select", 0),
        (b"select", 1),
        (b"'", 2),
        (b"' or", 3),
        (b"<script", 4),
        (b"cat", 5),
        (b"ca", 6),
        // Holds a rewritable sequence: left out.
        (b"'--", 7),
    ];

    #[test]
    fn unprintable_bytes_are_rewritable_and_the_rest_walked() {
        for b in 0..=u8::MAX {
            assert_eq!(unprintable(b), !(0x20..=0x7E).contains(&b), "{b}");
            if unprintable(b) {
                assert!(has_rewritable(&[b]), "{b}");
            }
        }
        // Every rewritable sequence is walked or holds an unprintable byte.
        let walked = walked_rewritable_sequences();
        for s in rewritable_sequences() {
            assert!(walked.contains(&s) || s.iter().copied().any(unprintable));
        }
    }

    #[test]
    fn rewritable_literals_left_out() {
        assert!(unprintable(SEPARATOR));
        let l = Lowered::build(LITERALS).unwrap().unwrap();
        assert!(all_found(&l, b"x'--").contains(&Found::Rewritable { start: 2 }));
        assert!(!all_found(&l, b"x'--").contains(&Found::Literal { rule: 7, start: 1 }));
        assert!(Lowered::build(&[]).unwrap().is_none());
        assert!(Lowered::build(&[(b"a--", 0)]).unwrap().is_none());
    }

    #[test]
    fn finds_every_overlapping_pattern_in_every_lane() {
        let l = Lowered::build(LITERALS).unwrap().unwrap();
        let mut text = Vec::new();
        for part in [
            &b"x' or 1=1"[..],
            b"a",
            b"union select cat",
            b"",
            b"<script>",
            b"con%cat",
            b"plain",
            b"scat--",
        ] {
            text.extend_from_slice(part);
            text.push(SEPARATOR);
        }
        for len in 0..=text.len() {
            let t = &text[..len];
            assert_eq!(all_found(&l, t), reference(t), "{len}");
        }
    }

    proptest! {
        #[test]
        fn same_as_the_crate_overlapping_search(
            parts in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(&b"unio selct'r<ripa -%\x1f\xef"[..]), 0..30),
                0..12),
        ) {
            let l = Lowered::build(LITERALS).unwrap().unwrap();
            let text = parts.join(&SEPARATOR);
            prop_assert_eq!(all_found(&l, &text), reference(&text));
        }
    }
}
