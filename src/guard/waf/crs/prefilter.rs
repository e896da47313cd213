//! The literals every match of an `@rx` pattern must contain, found once at
//! load from the pattern's syntax tree (regex-syntax's for linear patterns,
//! fancy-regex's for those with lookaround), so one ASCII-case-insensitive
//! Aho-Corasick pass turns away the values a pattern cannot match before its
//! regex runs. Most CRS patterns start with an alternation of keywords or a
//! command separator that benign API values never hold; the regex runs on the
//! few values that do.
//!
//! Soundness is the whole contract: the set is a *necessary* condition. Each
//! node of the tree yields either an exact set (the node matches exactly one
//! of these strings: literals, small classes, their concatenations and
//! alternations) or a required set (every match contains one of these).
//! Concatenations keep the cheapest required set of their parts, alternations
//! need one from every branch, a repetition that may match nothing requires
//! nothing; zero-width assertions and lookaround are neutral. Literals are
//! lower-cased and matched ignoring ASCII case, which only widens the filter.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Largest exact set a concatenation's cross product may grow to.
const MAX_EXACT: usize = 64;
/// Largest required set worth an automaton (beyond it the filter is dropped).
const MAX_REQUIRED: usize = 512;
/// Largest class still read as a set of one-byte literals.
const MAX_CLASS: usize = 10;

/// What a sub-pattern says about the text it matches.
#[derive(Debug, Clone)]
enum Facts {
    /// Matches exactly one of these (lower-cased) strings; may hold "".
    Exact(Vec<Vec<u8>>),
    /// Every match contains one of these (None: nothing is required).
    Inexact(Option<Vec<Vec<u8>>>),
}

impl Facts {
    fn neutral() -> Facts {
        Facts::Exact(vec![Vec::new()])
    }

    fn nothing() -> Facts {
        Facts::Inexact(None)
    }

    fn all_ascii(&self) -> bool {
        match self {
            Facts::Exact(set) | Facts::Inexact(Some(set)) => set.iter().all(|l| l.is_ascii()),
            Facts::Inexact(None) => true,
        }
    }

    /// The set every match contains one of, if any is known.
    fn required(self) -> Option<Vec<Vec<u8>>> {
        match self {
            Facts::Exact(set) => (!set.iter().any(Vec::is_empty)).then_some(set),
            Facts::Inexact(set) => set,
        }
    }
}

/// The cost of a required set as a filter: short literals hit benign text
/// more often, so they count more.
fn cost(set: &[Vec<u8>]) -> usize {
    set.iter()
        .map(|l| match l.len() {
            1 => 16,
            2 => 4,
            3 => 2,
            _ => 1,
        })
        .sum()
}

fn cheaper(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if cost(&b) < cost(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

fn dedup(mut set: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    set.sort();
    set.dedup();
    set
}

fn concat(parts: impl Iterator<Item = Facts>) -> Facts {
    let mut run: Vec<Vec<u8>> = vec![Vec::new()];
    let mut exact = true;
    let mut best = None;
    for f in parts {
        match f {
            Facts::Exact(set) if run.len() * set.len() <= MAX_EXACT => {
                run = run
                    .iter()
                    .flat_map(|a| {
                        set.iter().map(move |b| {
                            let mut s = a.clone();
                            s.extend_from_slice(b);
                            s
                        })
                    })
                    .collect();
            }
            Facts::Exact(set) => {
                exact = false;
                best = cheaper(best, Facts::Exact(std::mem::take(&mut run)).required());
                run = set;
            }
            Facts::Inexact(req) => {
                exact = false;
                best = cheaper(best, Facts::Exact(std::mem::take(&mut run)).required());
                best = cheaper(best, req);
                run = vec![Vec::new()];
            }
        }
    }
    if exact {
        return Facts::Exact(dedup(run));
    }
    Facts::Inexact(cheaper(best, Facts::Exact(run).required()))
}

fn alternation(branches: impl Iterator<Item = Facts>) -> Facts {
    let mut all = Vec::new();
    let mut exact = true;
    for f in branches {
        match f {
            Facts::Exact(set) => all.extend(set),
            Facts::Inexact(Some(set)) => {
                exact = false;
                all.extend(set);
            }
            Facts::Inexact(None) => return Facts::nothing(),
        }
    }
    let all = dedup(all);
    if exact && all.len() <= MAX_EXACT {
        return Facts::Exact(all);
    }
    if all.iter().any(Vec::is_empty) || all.len() > MAX_REQUIRED {
        return Facts::nothing();
    }
    Facts::Inexact(Some(all))
}

fn repetition(min: u32, max: Option<u32>, sub: Facts) -> Facts {
    match (min, max) {
        (0, _) => Facts::nothing(),
        (1, Some(1)) => sub,
        _ => Facts::Inexact(sub.required()),
    }
}

/// A class of few bytes (folded to lower case) as one-byte literals.
fn class_bytes(bytes: impl Iterator<Item = u8>) -> Facts {
    let mut set: Vec<Vec<u8>> = Vec::new();
    for b in bytes {
        let b = b.to_ascii_lowercase();
        if !set.iter().any(|s| s[0] == b) {
            set.push(vec![b]);
            if set.len() > MAX_CLASS {
                return Facts::nothing();
            }
        }
    }
    Facts::Exact(set)
}

fn hir_facts(hir: &Hir) -> Facts {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Facts::neutral(),
        HirKind::Literal(l) => Facts::Exact(vec![l.0.to_ascii_lowercase()]),
        HirKind::Class(Class::Bytes(c)) => {
            let size: usize = c.ranges().iter().map(|r| r.len()).sum();
            if size > 2 * MAX_CLASS + 2 {
                return Facts::nothing();
            }
            class_bytes(c.ranges().iter().flat_map(|r| r.start()..=r.end()))
        }
        HirKind::Class(Class::Unicode(c)) => {
            let ascii = c.ranges().iter().all(|r| r.end().is_ascii());
            let size: usize = c.ranges().iter().map(|r| r.len()).sum();
            if !ascii || size > 2 * MAX_CLASS + 2 {
                return Facts::nothing();
            }
            class_bytes(
                c.ranges()
                    .iter()
                    .flat_map(|r| r.start() as u8..=r.end() as u8),
            )
        }
        HirKind::Repetition(r) => repetition(r.min, r.max, hir_facts(&r.sub)),
        HirKind::Capture(c) => hir_facts(&c.sub),
        HirKind::Concat(hs) => concat(hs.iter().map(hir_facts)),
        HirKind::Alternation(hs) => alternation(hs.iter().map(hir_facts)),
    }
}

fn parse_hir(source: &str, case_insensitive: bool) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .case_insensitive(case_insensitive)
        .build()
        .parse(source)
        .ok()
}

fn fancy_facts(e: &fancy_regex::Expr) -> Facts {
    use fancy_regex::Expr;
    match e {
        Expr::Empty
        | Expr::Assertion(_)
        | Expr::LookAround(..)
        | Expr::KeepOut
        | Expr::ContinueFromPreviousMatchEnd => Facts::neutral(),
        Expr::Literal { val, .. } if val.is_ascii() => {
            Facts::Exact(vec![val.to_ascii_lowercase().into_bytes()])
        }
        Expr::Concat(es) => concat(es.iter().map(fancy_facts)),
        Expr::Alt(es) => alternation(es.iter().map(fancy_facts)),
        Expr::Group(e) | Expr::AtomicGroup(e) => fancy_facts(e),
        Expr::Repeat { child, lo, hi, .. } => {
            let min = u32::try_from(*lo).unwrap_or(u32::MAX);
            let max = (*hi != usize::MAX).then(|| u32::try_from(*hi).unwrap_or(u32::MAX));
            repetition(min, max, fancy_facts(child))
        }
        // A delegate is matched on text, not bytes: only ASCII literals carry over.
        Expr::Delegate { inner, casei, .. } => match parse_hir(inner, *casei) {
            Some(h) => match hir_facts(&h) {
                f if f.all_ascii() => f,
                _ => Facts::nothing(),
            },
            None => Facts::nothing(),
        },
        _ => Facts::nothing(),
    }
}

/// The literals every match of `source` (in the `regex` crate's syntax, as
/// the linear engine compiles it) contains one of, lower-cased.
pub fn required_linear(source: &str) -> Option<Vec<Vec<u8>>> {
    hir_facts(&parse_hir(source, false)?).required()
}

/// The same for a pattern the backtracking engine runs (`(?sm)` included).
pub fn required_backtracking(source: &str) -> Option<Vec<Vec<u8>>> {
    let tree = fancy_regex::Expr::parse_tree(source).ok()?;
    fancy_facts(&tree.expr)
        .required()
        .filter(|set| set.iter().all(|l| l.is_ascii()))
}

/// An automaton over a required set: a value it does not hit cannot match.
pub fn automaton(set: &[Vec<u8>]) -> Option<AhoCorasick> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(set)
        .ok()
}

#[cfg(test)]
mod tests;
