//! The WAF's fast path ([`Lowered`]): one automaton holding the literals of every
//! transform chain that lower-cases, run once per request over all the parts
//! joined by [`SEPARATOR`], reading upper-case letters as lower-case ones. On a part no transform but
//! `lowercase` would change ([`changes_only_case`]) each of those chains' output
//! is the part in lower case, so this one pass stands for one scan per part and
//! chain. The same automaton also finds the byte sequences that make a part
//! need the full transforms ([`rewritable_sequences`]), so telling those parts
//! apart costs no pass of its own, but for one vectorized count of the
//! [`unprintable`] bytes.
//!
//! Hand-written hot-path code. aho-corasick builds the DFA; [`Lowered`] copies
//! it into a table of its own, so that a step is one class-map load and one
//! table load with no bounds check or state decoding between them (measured:
//! 0.54 µs for a 1 KiB request's 768 joined bytes, against 0.8 µs through the
//! crate's `Automaton` interface). A DFA walk is bound by the latency of that
//! table load, so [`Lowered::find`] cuts the joined text at separators into
//! [`LANES`] pieces and walks them interleaved (independent loads overlap); a
//! piece can start from the start state because the separator is in no
//! pattern.

use std::hash::{Hash, Hasher};

use aho_corasick::automaton::Automaton;
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

/// The fast path's automaton: aho-corasick's DFA of the literals, copied into
/// a table of our own so the walk is one load per byte with nothing else on
/// the dependency chain: state ids are premultiplied row offsets, and the
/// match states come first, so "is a match" is one compare.
#[derive(Debug)]
pub struct Lowered {
    /// Byte → column. Upper-case letters share the lower-case ones' columns.
    class: [u8; 256],
    /// Row-major: `table[state + class[byte]]` is the next state.
    table: Box<[u32]>,
    /// Columns per row.
    stride: u32,
    start: u32,
    /// States below this are match states.
    match_limit: u32,
    /// Per match state (by row number): its range in `patterns`.
    match_ranges: Vec<(u32, u32)>,
    /// (rule index or None for a rewritable sequence, pattern length).
    patterns: Vec<(Option<usize>, usize)>,
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
        let dfa = aho_corasick::dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(patterns)
            .map_err(|e| format!("cannot build the literal automaton: {e}"))?;
        let pattern_rule: Vec<Option<usize>> = kept
            .iter()
            .map(|(_, r)| Some(*r))
            .chain(rewritable.iter().map(|_| None))
            .collect();
        Self::from_dfa(&dfa, &pattern_rule).map(Some)
    }

    /// Copies `dfa`'s states reachable from its start into our table.
    fn from_dfa(dfa: &DFA, pattern_rule: &[Option<usize>]) -> Result<Lowered, String> {
        let Ok(start) = dfa.start_state(Anchored::No) else {
            unreachable!("an unanchored DFA has an unanchored start state")
        };
        // The bytes the walk tells apart: upper case reads as lower case.
        let read = |b: u8| b.to_ascii_lowercase();
        // Every reachable state, breadth first.
        let mut states = vec![start];
        let mut seen = std::collections::HashMap::from([(start, 0usize)]);
        let mut i = 0;
        while let Some(&sid) = states.get(i) {
            for b in 0..=u8::MAX {
                let next = dfa.next_state(Anchored::No, sid, read(b));
                seen.entry(next).or_insert_with(|| {
                    states.push(next);
                    states.len() - 1
                });
            }
            i += 1;
        }
        // Columns: bytes that lead every state to the same place share one.
        // A byte's effect is told by a hash of where it leads each state (a
        // column per byte would be 256 × states IDs), confirmed state by state.
        let effect_hash = |b: u8| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for &sid in &states {
                dfa.next_state(Anchored::No, sid, read(b)).hash(&mut h);
            }
            h.finish()
        };
        let same_effect = |b: u8, c: u8| {
            states.iter().all(|&sid| {
                dfa.next_state(Anchored::No, sid, read(b))
                    == dfa.next_state(Anchored::No, sid, read(c))
            })
        };
        let mut class = [0u8; 256];
        let mut columns: Vec<(u64, u8)> = Vec::new();
        for b in 0..=u8::MAX {
            let hash = effect_hash(b);
            let known = columns
                .iter()
                .position(|&(h, c)| h == hash && same_effect(b, c));
            class[usize::from(b)] = match known {
                Some(k) => k as u8,
                None => {
                    columns.push((hash, b));
                    (columns.len() - 1) as u8
                }
            };
        }
        let columns: Vec<u8> = columns.into_iter().map(|(_, b)| b).collect();
        // Rows: match states first.
        let mut order: Vec<usize> = (0..states.len()).collect();
        order.sort_by_key(|&k| !dfa.is_match(states[k]));
        let mut row = vec![0u32; states.len()];
        for (r, &k) in order.iter().enumerate() {
            row[k] = r as u32;
        }
        let stride = columns.len() as u32;
        if states
            .len()
            .checked_mul(columns.len())
            .is_none_or(|n| n > u32::MAX as usize)
        {
            return Err(format!(
                "the literal automaton is too large ({} states)",
                states.len()
            ));
        }
        let mut table = vec![0u32; states.len() * columns.len()];
        let mut match_ranges = Vec::new();
        let mut patterns = Vec::new();
        for (r, &k) in order.iter().enumerate() {
            let sid = states[k];
            for (c, &b) in columns.iter().enumerate() {
                let next = seen[&dfa.next_state(Anchored::No, sid, read(b))];
                table[r * columns.len() + c] = row[next] * stride;
            }
            if dfa.is_match(sid) {
                let from = patterns.len() as u32;
                for m in 0..dfa.match_len(sid) {
                    let p = dfa.match_pattern(sid, m);
                    patterns.push((pattern_rule[p.as_usize()], dfa.pattern_len(p)));
                }
                match_ranges.push((from, patterns.len() as u32));
            }
        }
        Ok(Lowered {
            class,
            table: table.into(),
            stride,
            start: row[0] * stride,
            match_limit: match_ranges.len() as u32 * stride,
            match_ranges,
            patterns,
        })
    }

    /// The state after `state` reads `byte`.
    #[inline(always)]
    fn next(&self, state: u32, byte: u8) -> u32 {
        let at = state as usize + usize::from(self.class[usize::from(byte)]);
        debug_assert!(at < self.table.len());
        // SAFETY: `state` is a premultiplied row offset (`start`, or an entry
        // of `table`, each `row * stride` with `row` < the number of rows), and
        // every `class` entry is a column below `stride`, so `at` is below
        // rows × stride, the table's length (`from_dfa`).
        unsafe { *self.table.get_unchecked(at) }
    }

    /// Calls `found` for every occurrence (overlapping ones too) of a pattern in
    /// `text` (parts joined by [`SEPARATOR`]), not in text order. The
    /// [`unprintable`] bytes are not reported: the caller checks for those.
    pub fn find(&self, text: &[u8], found: &mut impl FnMut(Found)) {
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
        // Where all four pieces go on, walked four at a time.
        let common = pieces.iter().map(|p| p.len()).min().unwrap_or(0);
        let [a, b, c, d] = pieces.map(|p| p.get(..common).unwrap_or_default());
        let mut states = [self.start; LANES];
        let limit = self.match_limit;
        // The walk stops at a match and resumes after reporting it: with no
        // call inside it, the loop keeps its pointers in registers.
        let mut steps = a.iter().zip(b).zip(c).zip(d).enumerate();
        loop {
            let mut matched = None;
            for (i, (((&a, &b), &c), &d)) in &mut steps {
                let [sa, sb, sc, sd] = states;
                states = [
                    self.next(sa, a),
                    self.next(sb, b),
                    self.next(sc, c),
                    self.next(sd, d),
                ];
                if states.iter().any(|&s| s < limit) {
                    matched = Some(i);
                    break;
                }
            }
            match matched {
                Some(i) => self.report_lanes(states, &bounds, i, found),
                None => break,
            }
        }
        // The rest of the longer pieces: a piece that has ended reads
        // separators, so its state stays the start.
        let longest = pieces.iter().map(|p| p.len()).max().unwrap_or(0);
        for i in common..longest {
            for (lane, state) in states.iter_mut().enumerate() {
                *state = self.next(*state, pieces[lane].get(i).copied().unwrap_or(SEPARATOR));
            }
            if states.iter().any(|&s| s < limit) {
                self.report_lanes(states, &bounds, i, found);
            }
        }
    }

    /// Reports the matches of the lanes in `states` after reading their `i`th
    /// bytes.
    #[cold]
    #[inline(never)]
    fn report_lanes(
        &self,
        states: [u32; LANES],
        bounds: &[usize; LANES + 1],
        i: usize,
        found: &mut impl FnMut(Found),
    ) {
        for (state, &at) in states.into_iter().zip(bounds) {
            self.report(state, at + i + 1, found);
        }
    }

    /// The patterns that end at `end` in `state`, if a match state.
    fn report(&self, state: u32, end: usize, found: &mut impl FnMut(Found)) {
        if state >= self.match_limit {
            return;
        }
        let (from, to) = self.match_ranges[(state / self.stride) as usize];
        for &(rule, len) in &self.patterns[from as usize..to as usize] {
            let start = end - len;
            found(match rule {
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
                    proptest::sample::select(&b"unio selct'r<ripa -%\x1f\xefUNSCRIPT"[..]), 0..30),
                0..12),
        ) {
            let l = Lowered::build(LITERALS).unwrap().unwrap();
            let text = parts.join(&SEPARATOR);
            // Upper case reads as lower case.
            prop_assert_eq!(all_found(&l, &text), reference(&text.to_ascii_lowercase()));
        }
    }
}
