//! Rule files (`rules/*.toml`, format in rules/README.md) → a compiled [`RuleSet`]:
//! every rule's literals that share a transform chain go into one Aho-Corasick
//! automaton, so a request part is scanned once per chain whatever the number of
//! rules; a rule's `all` groups and `regex` run only to confirm a literal hit.
//! The literals of every chain that lower-cases also go into one more automaton
//! ([`Lowered`]), the scan of the parts no other transform would change.
//!
//! Errors name the file, line and rule id, and a reload that fails keeps the old
//! rules (the caller's compile-then-swap).

use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::lowered::Lowered;
use super::normalize::Transform;
use super::parts::Target;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    id: Spanned<u32>,
    description: String,
    category: String,
    targets: Vec<String>,
    #[serde(default)]
    transforms: Vec<String>,
    any: Vec<String>,
    #[serde(default)]
    all: Vec<Vec<String>>,
    regex: Option<String>,
    score: u32,
    #[serde(default = "one")]
    paranoia: u8,
    #[serde(default)]
    block: bool,
}

fn one() -> u8 {
    1
}

/// What a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    Part(Target),
    /// One header, by lower-case name.
    Header(Box<[u8]>),
}

#[derive(Debug)]
pub struct Rule {
    pub id: u32,
    pub description: String,
    pub category: String,
    pub targets: Vec<RuleTarget>,
    pub all: Vec<Vec<Box<[u8]>>>,
    pub regex: Option<Regex>,
    /// Rules whose regexes have the same source share one compiled regex and
    /// this number (its index among the distinct regexes), by which a scan
    /// runs it once per value.
    pub regex_id: usize,
    pub score: u32,
    pub paranoia: u8,
    pub block: bool,
    pub chain: usize,
}

impl Rule {
    /// Whether the rule inspects a part of `target` (with header `name`).
    pub fn looks_at(&self, target: Target, name: &[u8]) -> bool {
        self.targets.iter().any(|t| match t {
            RuleTarget::Part(p) => *p == target,
            RuleTarget::Header(h) => target == Target::Headers && name.eq_ignore_ascii_case(h),
        })
    }

    /// The confirmation after a literal hit on the transformed `value`:
    /// an `all` group holds and `regex` matches (asked of `regex_matches`, so
    /// the caller can reuse a result).
    pub fn confirms(&self, value: &[u8], regex_matches: impl FnOnce(&Regex) -> bool) -> bool {
        let groups = self.all.is_empty()
            || self.all.iter().any(|g| {
                g.iter()
                    .all(|lit| memchr::memmem::find(value, lit).is_some())
            });
        groups && self.regex.as_ref().is_none_or(regex_matches)
    }
}

/// One transform chain and the automaton of its rules' literals.
#[derive(Debug)]
pub struct Chain {
    pub transforms: Vec<Transform>,
    pub automaton: AhoCorasick,
    /// Pattern index → rule index.
    pub pattern_rule: Vec<usize>,
    /// Targets any of its rules looks at (to skip parts nobody inspects).
    pub targets: Vec<Target>,
    /// Whether a rule looks at every header; else only these (lower case).
    pub all_headers: bool,
    pub header_names: Vec<Box<[u8]>>,
    /// A chain whose transforms are a prefix of this one's (computed earlier for
    /// the same part): (its index, its length). Its output is reused.
    pub base: Option<(usize, usize)>,
    /// It lower-cases: on a part no other transform changes, [`RuleSet::lowered`]
    /// is its scan.
    pub lowered: bool,
}

impl Chain {
    /// Whether any of the chain's rules looks at a part of `target` named `name`.
    pub fn wants(&self, target: Target, name: &[u8]) -> bool {
        self.targets.contains(&target)
            && (target != Target::Headers
                || self.all_headers
                || self
                    .header_names
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h)))
    }
}

/// The compiled rules of one directory.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub chains: Vec<Chain>,
    /// None when no chain lower-cases (or none of their literals could occur in
    /// a part that only lower-casing changes).
    pub lowered: Option<Lowered>,
}

/// Loads every `*.toml` of `dir` (in name order) and compiles the rules of
/// paranoia level `paranoia` and below.
pub fn load(dir: &Path, paranoia: u8) -> Result<RuleSet, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no rule files (*.toml)", dir.display()));
    }
    let mut sources = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        sources.push((f.clone(), text));
    }
    compile(&sources, paranoia)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Compiles rule files given as (path, text).
pub fn compile(sources: &[(PathBuf, String)], paranoia: u8) -> Result<RuleSet, String> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut chain_keys: Vec<Vec<Transform>> = Vec::new();
    let mut literals: Vec<Vec<(Vec<u8>, usize)>> = Vec::new();
    let mut seen_ids = std::collections::HashMap::new();
    let mut regexes: std::collections::HashMap<String, (usize, Regex)> = Default::default();
    for (path, text) in sources {
        let file: RuleFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(text, s.start));
            format!("{}:{line}: {}", path.display(), e.message())
        })?;
        for r in file.rule {
            let id = *r.id.get_ref();
            let line = line_of(text, r.id.span().start);
            let err = |m: String| format!("{}:{line}: rule {id}: {m}", path.display());
            if let Some(prev) = seen_ids.insert(id, format!("{}:{line}", path.display())) {
                return Err(err(format!("duplicate id (also at {prev})")));
            }
            if r.paranoia == 0 || r.paranoia > 4 {
                return Err(err("paranoia must be 1..4".into()));
            }
            if r.any.is_empty() || r.any.iter().any(|l| l.len() < 2) {
                return Err(err(
                    "`any` needs at least one literal of 2 or more bytes".into()
                ));
            }
            let mut transforms = Vec::new();
            for t in &r.transforms {
                transforms.push(
                    Transform::parse(t).ok_or_else(|| err(format!("unknown transform {t:?}")))?,
                );
            }
            let mut targets = Vec::new();
            for t in &r.targets {
                targets.push(parse_target(t).ok_or_else(|| err(format!("unknown target {t:?}")))?);
            }
            if targets.is_empty() {
                return Err(err("no targets".into()));
            }
            let (regex, regex_id) = match &r.regex {
                Some(src) => match regexes.get(src) {
                    Some((id, re)) => (Some(Regex::clone(re)), *id),
                    None => {
                        let re = regex::bytes::RegexBuilder::new(src)
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| err(format!("regex: {e}")))?;
                        let id = regexes.len();
                        regexes.insert(src.clone(), (id, re.clone()));
                        (Some(re), id)
                    }
                },
                None => (None, usize::MAX),
            };
            if r.paranoia > paranoia {
                continue;
            }
            let chain = match chain_keys.iter().position(|c| *c == transforms) {
                Some(c) => c,
                None => {
                    chain_keys.push(transforms);
                    literals.push(Vec::new());
                    chain_keys.len() - 1
                }
            };
            let idx = rules.len();
            for lit in &r.any {
                literals[chain].push((lit.as_bytes().to_vec(), idx));
            }
            rules.push(Rule {
                id,
                description: r.description,
                category: r.category,
                targets,
                all: r
                    .all
                    .iter()
                    .map(|g| g.iter().map(|l| l.as_bytes().into()).collect())
                    .collect(),
                regex,
                regex_id,
                score: r.score,
                paranoia: r.paranoia,
                block: r.block,
                chain,
            });
        }
    }
    let mut chains = Vec::new();
    let mut lowered_literals: Vec<(&[u8], usize)> = Vec::new();
    for (transforms, lits) in chain_keys.into_iter().zip(&literals) {
        let automaton = dfa(lits.iter().map(|(l, _)| &l[..]))?;
        let lowered = transforms.contains(&Transform::Lowercase);
        if lowered {
            lowered_literals.extend(lits.iter().map(|(l, r)| (&l[..], *r)));
        }
        let pattern_rule: Vec<usize> = lits.iter().map(|(_, r)| *r).collect();
        let mut targets: Vec<Target> = Vec::new();
        let mut all_headers = false;
        let mut header_names: Vec<Box<[u8]>> = Vec::new();
        for &r in &pattern_rule {
            for t in &rules[r].targets {
                let t = match t {
                    RuleTarget::Part(p) => {
                        all_headers |= *p == Target::Headers;
                        *p
                    }
                    RuleTarget::Header(h) => {
                        if !header_names.contains(h) {
                            header_names.push(h.clone());
                        }
                        Target::Headers
                    }
                };
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
        chains.push(Chain {
            transforms,
            automaton,
            pattern_rule,
            targets,
            all_headers,
            header_names,
            base: None,
            lowered,
        });
    }
    let lowered = Lowered::build(&lowered_literals)?;
    if lowered.is_none() {
        for c in &mut chains {
            c.lowered = false;
        }
    }
    // Scan order: shorter chains first, so a chain can start from the output of
    // the longest earlier chain that is a prefix of it.
    let mut order: Vec<usize> = (0..chains.len()).collect();
    order.sort_by_key(|&i| chains[i].transforms.len());
    let mut sorted: Vec<Chain> = Vec::with_capacity(chains.len());
    let mut new_index = vec![0; chains.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut taken: Vec<Option<Chain>> = chains.into_iter().map(Some).collect();
    for &old in &order {
        sorted.push(taken[old].take().expect("each chain once"));
    }
    for i in 0..sorted.len() {
        let base = (0..i)
            .filter(|&j| {
                let p = &sorted[j].transforms;
                !p.is_empty() && sorted[i].transforms.starts_with(p)
            })
            .max_by_key(|&j| sorted[j].transforms.len())
            .map(|j| (j, sorted[j].transforms.len()));
        sorted[i].base = base;
    }
    for r in &mut rules {
        r.chain = new_index[r.chain];
    }
    Ok(RuleSet {
        rules,
        chains: sorted,
        lowered,
    })
}

/// A DFA: one table lookup per byte, the fastest scan, at a memory cost that is
/// small for rule sets of this size.
fn dfa<'a>(literals: impl Iterator<Item = &'a [u8]>) -> Result<AhoCorasick, String> {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(literals)
        .map_err(|e| format!("cannot build the literal automaton: {e}"))
}

fn parse_target(s: &str) -> Option<RuleTarget> {
    Some(match s {
        "path" => RuleTarget::Part(Target::Path),
        "query" => RuleTarget::Part(Target::Query),
        "query_names" => RuleTarget::Part(Target::QueryNames),
        "cookies" => RuleTarget::Part(Target::Cookies),
        "body" => RuleTarget::Part(Target::Body),
        "headers" => RuleTarget::Part(Target::Headers),
        _ => {
            let name = s.strip_prefix("headers:")?;
            if name.is_empty() {
                return None;
            }
            RuleTarget::Header(name.to_ascii_lowercase().into_bytes().into())
        }
    })
}
