//! SecLang operators (`"@NAME ARG"`): compiled once at load, evaluated against
//! one transformed value at a time.
//!
//! Semantics follow libmodsecurity v3: `@rx` is a PCRE-compatible regex with
//! `PCRE_DOTALL | PCRE_MULTILINE` over bytes (here the `regex` crate with
//! Unicode off, `(?sm)`; patterns it cannot express — lookaround,
//! backreferences, atomic groups — fall back to `fancy-regex`, which
//! backtracks under a step limit). `@pm` and `@pmFromFile` match any of their
//! phrases case-insensitively (one Aho-Corasick automaton per operator). The
//! comparison operators take a macro-expanded argument (`@ge
//! %{tx.inbound_anomaly_score_threshold}`). `capture` fills `TX:0`…`TX:9`.

use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem;

use super::injection;
use super::macros::Macro;
use super::prefilter;
use crate::config::Cidr;
use crate::guard::waf::ipset::IpSet;

/// The values a matching operator leaves for `capture` (`TX:0` is the whole match).
pub type Captures = Vec<Vec<u8>>;

/// What macros in operator arguments expand against (the transaction).
pub trait Expand {
    fn expand(&self, m: &Macro, out: &mut Vec<u8>);
}

/// A compiled operator.
#[derive(Debug)]
pub enum Operator {
    Rx(Box<Pattern>),
    /// An `@rx` whose pattern holds macros (`^%{tx.allowed_charsets}$`): expanded
    /// per request, compiled once per expansion (a per-thread cache).
    RxMacro(Macro),
    Pm(Box<Phrases>),
    DetectSqli,
    DetectXss,
    StrEq(Macro),
    Contains(Macro),
    ContainsWord(Macro),
    BeginsWith(Macro),
    EndsWith(Macro),
    /// The value is a substring of the argument (`@within GET POST`).
    Within(Macro),
    Eq(Macro),
    Ge(Macro),
    Gt(Macro),
    Le(Macro),
    Lt(Macro),
    IpMatch(Box<IpSet>),
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    /// Bytes allowed; the operator matches when any other byte occurs.
    ValidateByteRange(Box<[bool; 256]>),
    UnconditionalMatch,
    NoMatch,
}

/// An `@rx` regex, compiled by the fastest engine that accepts it, behind
/// the literals any match must contain ([`prefilter`]).
#[derive(Debug)]
pub struct Pattern {
    engine: Engine,
    /// A value this automaton does not hit cannot match; None: no literal is
    /// required, the regex runs on every value.
    prefilter: Option<AhoCorasick>,
    /// The literals behind `prefilter`, lower-cased.
    pub required: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum Engine {
    Linear(regex::bytes::Regex),
    /// Lookaround or backreferences: matched on the value read as UTF-8 (lossy).
    Backtracking(fancy_regex::Regex),
}

/// Steps `fancy-regex` may backtrack per match before giving up (no match).
const BACKTRACK_LIMIT: usize = 100_000;

impl Pattern {
    /// Compiles `source` (PCRE syntax as CRS writes it).
    pub fn new(source: &str) -> Result<Pattern, String> {
        let translated = translate(source);
        let linear = regex::bytes::RegexBuilder::new(&translated)
            .unicode(false)
            .dot_matches_new_line(true)
            .multi_line(true)
            .size_limit(64 << 20)
            .dfa_size_limit(8 << 20)
            .build();
        let (engine, required) = match linear {
            Ok(r) => (Engine::Linear(r), prefilter::required_linear(&translated)),
            Err(linear_err) => {
                let source = format!("(?sm){translated}");
                let r = fancy_regex::RegexBuilder::new(&source)
                    .backtrack_limit(BACKTRACK_LIMIT)
                    .build()
                    .map_err(|e| format!("regex does not compile: {linear_err}; {e}"))?;
                (
                    Engine::Backtracking(r),
                    prefilter::required_backtracking(&source),
                )
            }
        };
        let prefilter = required.as_deref().and_then(prefilter::automaton);
        Ok(Pattern {
            engine,
            required: if prefilter.is_some() {
                required.unwrap_or_default()
            } else {
                Vec::new()
            },
            prefilter,
        })
    }

    /// Whether values are turned away by literals before the regex runs.
    pub fn prefiltered(&self) -> bool {
        self.prefilter.is_some()
    }

    /// Whether the regex needs the backtracking engine.
    pub fn backtracks(&self) -> bool {
        matches!(self.engine, Engine::Backtracking(_))
    }

    fn may_match(&self, value: &[u8]) -> bool {
        self.prefilter.as_ref().is_none_or(|p| p.is_match(value))
    }

    pub fn is_match(&self, value: &[u8]) -> bool {
        if !self.may_match(value) {
            return false;
        }
        match &self.engine {
            Engine::Linear(r) => r.is_match(value),
            Engine::Backtracking(r) => r.is_match(&String::from_utf8_lossy(value)).unwrap_or(false),
        }
    }

    /// Matches and writes the whole match and up to nine groups into `caps`.
    pub fn captures(&self, value: &[u8], caps: &mut Captures) -> bool {
        caps.clear();
        if !self.may_match(value) {
            return false;
        }
        match &self.engine {
            Engine::Linear(r) => {
                let Some(c) = r.captures(value) else {
                    return false;
                };
                for g in c.iter().take(10) {
                    caps.push(g.map(|m| m.as_bytes().to_vec()).unwrap_or_default());
                }
                true
            }
            Engine::Backtracking(r) => {
                let text = String::from_utf8_lossy(value);
                let Ok(Some(c)) = r.captures(&text) else {
                    return false;
                };
                for g in c.iter().take(10) {
                    caps.push(
                        g.map(|m| m.as_str().as_bytes().to_vec())
                            .unwrap_or_default(),
                    );
                }
                true
            }
        }
    }
}

/// PCRE spellings the `regex` crate reads otherwise: `\<` and `\>` are plain
/// `<` and `>` in PCRE (word boundaries in `regex`), `\Z` is end or before a
/// final newline, `\e` is ESC; in a class, `[` is a literal (but `[:alpha:]`
/// is a POSIX class in both) and so are `&` and `~`.
fn translate(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('<') => out.push('<'),
                Some('>') => out.push('>'),
                Some('Z') if !in_class => out.push_str(r"(?:\n?\z)"),
                Some('e') => out.push_str(r"\x1b"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push_str(r"\\"),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // `[]…]` and `[^]…]`: a leading `]` is a literal in PCRE.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str(r"\]");
                    chars.next();
                }
            }
            // A POSIX class (`[[:alpha:]]`) is copied whole; any other `[` in a
            // class is a literal in PCRE (a nested class in `regex`).
            '[' if in_class && chars.peek() == Some(&':') => {
                out.push('[');
                for n in chars.by_ref() {
                    out.push(n);
                    if n == ']' {
                        break;
                    }
                }
            }
            '[' if in_class => out.push_str(r"\["),
            // Class set operators in `regex` (`&&`, `~~`), literals in PCRE.
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

impl Operator {
    /// Compiles `@name arg`. `data` reads a `@pmFromFile` list by file name.
    pub fn compile(
        name: &str,
        arg: &str,
        data: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Operator, String> {
        let m = || Macro::parse(arg);
        Ok(match name {
            "rx" if arg.contains("%{") => {
                let m = m()?;
                // The pattern must compile with its variables empty, or it never will.
                let mut probe = Vec::new();
                m.expand_with(&mut |_, _, _| {}, &mut probe);
                Pattern::new(&String::from_utf8_lossy(&probe))?;
                Operator::RxMacro(m)
            }
            "rx" => Operator::Rx(Box::new(Pattern::new(arg)?)),
            "pm" => Operator::Pm(Box::new(Phrases::new(arg.split_ascii_whitespace())?)),
            "pmfromfile" | "pmf" => {
                let mut text = String::new();
                for file in arg.split_ascii_whitespace() {
                    text.push_str(&data(file)?);
                    text.push('\n');
                }
                let lines = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'));
                Operator::Pm(Box::new(Phrases::new(lines)?))
            }
            "detectsqli" => Operator::DetectSqli,
            "detectxss" => Operator::DetectXss,
            "streq" => Operator::StrEq(m()?),
            "contains" => Operator::Contains(m()?),
            "containsword" => Operator::ContainsWord(m()?),
            "beginswith" => Operator::BeginsWith(m()?),
            "endswith" => Operator::EndsWith(m()?),
            "within" => Operator::Within(m()?),
            "eq" => Operator::Eq(m()?),
            "ge" => Operator::Ge(m()?),
            "gt" => Operator::Gt(m()?),
            "le" => Operator::Le(m()?),
            "lt" => Operator::Lt(m()?),
            "ipmatch" => {
                let mut blocks = Vec::new();
                for b in arg.split([',', ' ']).filter(|s| !s.is_empty()) {
                    blocks.push(b.parse::<Cidr>()?);
                }
                Operator::IpMatch(Box::new(IpSet::new(&blocks)))
            }
            "validateurlencoding" => Operator::ValidateUrlEncoding,
            "validateutf8encoding" => Operator::ValidateUtf8Encoding,
            "validatebyterange" => Operator::ValidateByteRange(Box::new(byte_ranges(arg)?)),
            "unconditionalmatch" => Operator::UnconditionalMatch,
            "nomatch" => Operator::NoMatch,
            other => return Err(format!("operator @{other} is not supported")),
        })
    }

    /// Literals (lower-cased) one of which every matching value contains,
    /// matched ignoring ASCII case; None when the operator has none.
    pub fn literals(&self) -> Option<&[Vec<u8>]> {
        match self {
            Operator::Rx(p) if p.prefiltered() => Some(&p.required),
            Operator::Pm(p) => Some(&p.words),
            _ => None,
        }
    }

    /// Whether `value` matches. With `caps`, fills what `capture` records.
    pub fn eval(&self, value: &[u8], tx: &dyn Expand, caps: Option<&mut Captures>) -> bool {
        let arg = |m: &Macro| {
            let mut out = Vec::new();
            tx.expand(m, &mut out);
            out
        };
        match self {
            Operator::Rx(p) => match caps {
                Some(c) => p.captures(value, c),
                None => p.is_match(value),
            },
            Operator::RxMacro(m) => {
                let source = String::from_utf8_lossy(&arg(m)).into_owned();
                let Some(p) = expanded_pattern(source) else {
                    return false;
                };
                match caps {
                    Some(c) => p.captures(value, c),
                    None => p.is_match(value),
                }
            }
            Operator::Pm(p) => match p.automaton.find(value) {
                Some(m) => {
                    if let Some(c) = caps {
                        c.clear();
                        c.push(value[m.range()].to_vec());
                    }
                    true
                }
                None => false,
            },
            Operator::DetectSqli => match injection::is_sqli(value) {
                Some(fingerprint) => {
                    if let Some(c) = caps {
                        c.clear();
                        let end = fingerprint.iter().position(|&b| b == 0).unwrap_or(8);
                        c.push(fingerprint[..end].to_vec());
                    }
                    true
                }
                None => false,
            },
            Operator::DetectXss => injection::is_xss(value),
            Operator::StrEq(m) => value == arg(m).as_slice(),
            Operator::Contains(m) => {
                let a = arg(m);
                a.is_empty() || memmem::find(value, &a).is_some()
            }
            Operator::ContainsWord(m) => contains_word(value, &arg(m)),
            Operator::BeginsWith(m) => value.starts_with(&arg(m)),
            Operator::EndsWith(m) => value.ends_with(&arg(m)),
            Operator::Within(m) => {
                let a = arg(m);
                value.is_empty() || memmem::find(&a, value).is_some()
            }
            Operator::Eq(m) => number(value) == number(&arg(m)),
            Operator::Ge(m) => number(value) >= number(&arg(m)),
            Operator::Gt(m) => number(value) > number(&arg(m)),
            Operator::Le(m) => number(value) <= number(&arg(m)),
            Operator::Lt(m) => number(value) < number(&arg(m)),
            Operator::IpMatch(set) => std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| set.contains(ip)),
            Operator::ValidateUrlEncoding => !valid_url_encoding(value),
            Operator::ValidateUtf8Encoding => std::str::from_utf8(value).is_err(),
            Operator::ValidateByteRange(allowed) => value.iter().any(|&b| !allowed[b as usize]),
            Operator::UnconditionalMatch => true,
            Operator::NoMatch => false,
        }
    }
}

/// Expanded `@rx` patterns compiled so far on this thread, at most
/// [`EXPANDED_PATTERNS`] (then the cache starts over); None if one does not compile.
fn expanded_pattern(source: String) -> Option<std::rc::Rc<Pattern>> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    thread_local! {
        static CACHE: RefCell<HashMap<String, Option<Rc<Pattern>>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(p) = c.get(&source) {
            return p.clone();
        }
        if c.len() >= EXPANDED_PATTERNS {
            c.clear();
        }
        let p = Pattern::new(&source).ok().map(Rc::new);
        c.insert(source, p.clone());
        p
    })
}

/// Distinct expansions of macro patterns kept per thread.
const EXPANDED_PATTERNS: usize = 256;

/// `@pm`'s phrases, matched ignoring ASCII case.
#[derive(Debug)]
pub struct Phrases {
    automaton: AhoCorasick,
    /// Lower-cased, for the request's literal gate.
    pub words: Vec<Vec<u8>>,
}

impl Phrases {
    fn new<'a>(words: impl Iterator<Item = &'a str>) -> Result<Phrases, String> {
        let words: Vec<Vec<u8>> = words.map(|w| w.as_bytes().to_ascii_lowercase()).collect();
        if words.is_empty() {
            return Err("@pm needs at least one phrase".into());
        }
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&words)
            .map_err(|e| e.to_string())?;
        Ok(Phrases { automaton, words })
    }
}

/// An integer as ModSecurity reads one (`atoi`): leading whitespace and sign,
/// then digits; anything else ends it, and no digits is 0.
fn number(s: &[u8]) -> i64 {
    let s = s.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// `@containsWord`: `word` occurs with a non-word character (or the value's
/// edge) on both sides.
fn contains_word(value: &[u8], word: &[u8]) -> bool {
    if word.is_empty() {
        return true;
    }
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    memmem::find_iter(value, word).any(|at| {
        let before = at.checked_sub(1).map(|i| value[i]);
        let after = value.get(at + word.len()).copied();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// Every `%` is followed by two hex digits.
fn valid_url_encoding(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' {
            let ok = value
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// `@validateByteRange 1-255` / `9,10,13,32-126`.
fn byte_ranges(arg: &str) -> Result<[bool; 256], String> {
    let mut allowed = [false; 256];
    for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim()
                .parse::<u8>()
                .map_err(|_| format!("@validateByteRange: {part:?} is not a byte range"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("@validateByteRange: {part:?} is backwards"));
        }
        for x in a..=b {
            allowed[x as usize] = true;
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoTx;
    impl Expand for NoTx {
        fn expand(&self, m: &Macro, out: &mut Vec<u8>) {
            m.expand_with(&mut |_, _, o: &mut Vec<u8>| o.extend_from_slice(b"5"), out);
        }
    }

    fn op(name: &str, arg: &str) -> Operator {
        Operator::compile(name, arg, &|_| Err("no files".into())).unwrap()
    }

    #[test]
    fn regex_is_dotall_multiline_bytes() {
        let rx = op("rx", "^b.c$");
        assert!(rx.eval(b"a\nb\nc", &NoTx, None));
        assert!(rx.eval(b"b\xffc", &NoTx, None));
        assert!(!rx.eval(b"abc", &NoTx, None));
        // PCRE's \< is a literal <.
        assert!(op("rx", r"\<script").eval(b"x<script", &NoTx, None));
    }

    #[test]
    fn regex_falls_back_for_lookaround() {
        let rx = op("rx", "a(?!b)");
        assert!(matches!(rx, Operator::Rx(ref p) if p.backtracks()));
        assert!(rx.eval(b"ac", &NoTx, None));
        assert!(!rx.eval(b"ab", &NoTx, None));
    }

    #[test]
    fn captures_fill_tx_slots() {
        let mut caps = Vec::new();
        assert!(op("rx", "(a)(b)?c").eval(b"xacx", &NoTx, Some(&mut caps)));
        assert_eq!(caps, vec![b"ac".to_vec(), b"a".to_vec(), b"".to_vec()]);
    }

    #[test]
    fn phrase_match_ignores_case() {
        let pm = op("pm", "union select");
        let mut caps = Vec::new();
        assert!(pm.eval(b"1 UNION 2", &NoTx, Some(&mut caps)));
        assert_eq!(caps, vec![b"UNION".to_vec()]);
        assert!(!pm.eval(b"unio", &NoTx, None));
    }

    #[test]
    fn comparisons_read_numbers_like_atoi() {
        assert!(op("ge", "%{tx.x}").eval(b"5", &NoTx, None));
        assert!(!op("gt", "%{tx.x}").eval(b"5", &NoTx, None));
        assert!(op("eq", "0").eval(b"", &NoTx, None));
        assert!(op("lt", "10").eval(b" 9abc", &NoTx, None));
    }

    #[test]
    fn string_operators() {
        assert!(op("within", "GET HEAD POST").eval(b"POST", &NoTx, None));
        assert!(!op("within", "GET HEAD POST").eval(b"PUT", &NoTx, None));
        assert!(op("containsword", "exec").eval(b"x exec(1)", &NoTx, None));
        assert!(!op("containsword", "exec").eval(b"execute", &NoTx, None));
        assert!(op("beginswith", "/a").eval(b"/ab", &NoTx, None));
        assert!(op("endswith", ".php").eval(b"/x.php", &NoTx, None));
        assert!(op("streq", "0").eval(b"0", &NoTx, None));
    }

    #[test]
    fn validators_match_on_invalid_input() {
        assert!(op("validateurlencoding", "").eval(b"a%zz", &NoTx, None));
        assert!(!op("validateurlencoding", "").eval(b"a%20", &NoTx, None));
        assert!(op("validateutf8encoding", "").eval(b"\xc3", &NoTx, None));
        let range = op("validatebyterange", "9,10,13,32-126");
        assert!(!range.eval(b"plain text\r\n", &NoTx, None));
        assert!(range.eval(b"\x00", &NoTx, None));
    }

    #[test]
    fn ip_match() {
        let ip = op("ipmatch", "127.0.0.1,10.0.0.0/8,::1");
        assert!(ip.eval(b"10.1.2.3", &NoTx, None));
        assert!(ip.eval(b"::1", &NoTx, None));
        assert!(!ip.eval(b"192.168.0.1", &NoTx, None));
    }
}
