//! The WAF's fast path ([`Lowered`]): one automaton holding the literals of every
//! transform chain that lower-cases, run once per request over all the parts no
//! transform but `lowercase` would change ([`changes_only_case`]), lower-cased and
//! joined by a separator byte. On such a part each of those chains' output is the
//! part in lower case, so this one pass stands for one scan per part and chain.
//!
//! Hand-written hot-path code: a DFA walk is bound by the latency of one
//! transition-table load per byte, so [`Lowered::find`] cuts the joined text at
//! separators into [`LANES`] pieces and walks them interleaved (independent
//! loads overlap); a piece can start from the start state because the
//! separator is in no literal.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use memchr::memchr;

use super::normalize::changes_only_case;

/// Pieces of the joined text walked at once (the walk in [`Lowered::find`] is
/// written out for four).
pub const LANES: usize = 4;

/// The fast path's automaton and the byte that separates parts.
#[derive(Debug)]
pub struct Lowered {
    dfa: DFA,
    /// Pattern index → rule index.
    pattern_rule: Vec<usize>,
    /// A byte a part that only lower-casing changes cannot hold, and no literal
    /// does (so no match spans two parts).
    pub separator: u8,
}

impl Lowered {
    /// The automaton of `literals` (each with its rule index); None when there
    /// are none, or every byte that could separate parts is in some literal.
    pub fn build(literals: &[(&[u8], usize)]) -> Result<Option<Lowered>, String> {
        let separator = (0..=u8::MAX)
            .find(|&b| !changes_only_case(&[b]) && literals.iter().all(|(l, _)| !l.contains(&b)));
        let Some(separator) = separator else {
            return Ok(None);
        };
        if literals.is_empty() {
            return Ok(None);
        }
        // No prefilter: then only match states are "special", the one check per
        // byte of the walk.
        let dfa = aho_corasick::dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(literals.iter().map(|(l, _)| *l))
            .map_err(|e| format!("cannot build the literal automaton: {e}"))?;
        Ok(Some(Lowered {
            dfa,
            pattern_rule: literals.iter().map(|(_, r)| *r).collect(),
            separator,
        }))
    }

    /// Calls `found(rule, start)` for every occurrence (overlapping ones too) of
    /// a literal in `text`, parts joined by [`Lowered::separator`]; not in text
    /// order.
    pub fn find(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
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
                .and_then(|rest| memchr(self.separator, rest))
                .map_or(text.len(), |p| from + p + 1);
        }
        let piece = |k: usize| text.get(bounds[k]..bounds[k + 1]).unwrap_or_default();
        let pieces: [&[u8]; LANES] = std::array::from_fn(piece);
        let common = pieces.iter().map(|p| p.len()).min().unwrap_or(0);
        let mut states = [start; LANES];
        let [a, b, c, d] = pieces.map(|p| p.get(..common).unwrap_or_default());
        let bytes = a.iter().zip(b).zip(c).zip(d);
        for (i, (((&a, &b), &c), &d)) in bytes.enumerate() {
            for (lane, byte) in [a, b, c, d].into_iter().enumerate() {
                let sid = self.dfa.next_state(Anchored::No, states[lane], byte);
                states[lane] = sid;
                if self.dfa.is_special(sid) {
                    self.report(sid, bounds[lane] + i + 1, &mut found);
                }
            }
        }
        // The rest of the longer pieces, one at a time.
        for (lane, p) in pieces.iter().enumerate() {
            let mut sid = states[lane];
            for (i, &byte) in p.iter().enumerate().skip(common) {
                sid = self.dfa.next_state(Anchored::No, sid, byte);
                if self.dfa.is_special(sid) {
                    self.report(sid, bounds[lane] + i + 1, &mut found);
                }
            }
        }
    }

    /// The literals that end at `end` in match state `sid`.
    fn report(&self, sid: StateID, end: usize, found: &mut impl FnMut(usize, usize)) {
        if !self.dfa.is_match(sid) {
            return;
        }
        for k in 0..self.dfa.match_len(sid) {
            let pattern = self.dfa.match_pattern(sid, k);
            let rule = self.pattern_rule[pattern.as_usize()];
            found(rule, end - self.dfa.pattern_len(pattern));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_matches(l: &Lowered, text: &[u8]) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        l.find(text, |rule, start| v.push((rule, start)));
        v.sort_unstable();
        v
    }

    /// What the aho-corasick crate's own overlapping search finds.
    fn reference(literals: &[(&[u8], usize)], text: &[u8]) -> Vec<(usize, usize)> {
        let ac = aho_corasick::AhoCorasick::new(literals.iter().map(|(l, _)| *l)).unwrap();
        let mut v: Vec<(usize, usize)> = ac
            .find_overlapping_iter(text)
            .map(|m| (literals[m.pattern().as_usize()].1, m.start()))
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
    ];

    #[test]
    fn separator_is_in_no_literal_and_no_clean_part() {
        let l = Lowered::build(LITERALS).unwrap().unwrap();
        assert!(!changes_only_case(&[l.separator]));
        assert!(LITERALS.iter().all(|(lit, _)| !lit.contains(&l.separator)));
        assert!(Lowered::build(&[]).unwrap().is_none());
    }

    #[test]
    fn finds_every_overlapping_literal_in_every_lane() {
        let l = Lowered::build(LITERALS).unwrap().unwrap();
        let sep = l.separator;
        let mut text = Vec::new();
        for part in [
            &b"x' or 1=1"[..],
            b"a",
            b"union select cat",
            b"",
            b"<script>",
            b"concat",
            b"plain",
            b"scat",
        ] {
            text.extend_from_slice(part);
            text.push(sep);
        }
        for len in 0..=text.len() {
            let t = &text[..len];
            assert_eq!(all_matches(&l, t), reference(LITERALS, t), "{len}");
        }
    }

    proptest! {
        #[test]
        fn same_as_the_crate_overlapping_search(
            parts in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(&b"unio selct'r<ripa "[..]), 0..30),
                0..12),
        ) {
            let l = Lowered::build(LITERALS).unwrap().unwrap();
            let text = parts.join(&l.separator);
            prop_assert_eq!(all_matches(&l, &text), reference(LITERALS, &text));
        }
    }
}
