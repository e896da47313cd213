//! SecLang text (the ModSecurity rule language of the OWASP Core Rule Set's
//! `.conf` files) → a flat list of [`Directive`]s, each with the line it starts
//! on. This module owns the syntax only: it knows how a `SecRule` splits into
//! variables, operator and actions, but not what any variable, operator or
//! action means, whether an action takes a value, or how a chain groups rules
//! (chained `SecRule`s are simply consecutive [`DirectiveKind::Rule`]s).
//!
//! The grammar, as Apache's config reader and ModSecurity v2/v3 read the CRS:
//!
//! - A line ending in `\` continues on the next one (the backslash and the
//!   newline go, the next line's indentation stays), inside quotes too. A
//!   directive's line is where its name is.
//! - A logical line whose first non-blank character is `#` is a comment (so a
//!   comment ending in `\` swallows the next line, as in Apache). `#` anywhere
//!   else is an ordinary character.
//! - Arguments are separated by blanks; an argument is bare or double-quoted.
//!   Inside double quotes `\"` is a quote and every other backslash stays as
//!   written (`\d`, `\.`, `\\` reach the regex untouched).
//! - Variables are separated by `|`: `[&][!]NAME[:selector]`, the selector bare
//!   (`REQUEST_HEADERS:User-Agent`), single-quoted (`ARGS:'/^id$/'`, where `|`
//!   may appear and `\'` is a quote) or a `/regex/` (`TX:/^HEADER_NAME_/`, whose
//!   closing slash must end the variable; a `|` before it does not split). An
//!   `XML:` selector is an XPath (`XML:/*`), never a regex.
//! - Actions are separated by `,`: `name[:value]`, the value bare (up to `,` or
//!   a blank) or single-quoted (`msg:'a, b'`, `\'` is a quote).
//! - Directive names are case-insensitive.
//!
//! Errors give the 1-based line and column (in characters) of the offending
//! character in the original text.

use std::fmt;

/// One directive and the (1-based) line its name is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub line: u32,
    pub kind: DirectiveKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectiveKind {
    /// `SecRule VARIABLES "OPERATOR" ["ACTIONS"]`.
    Rule(RuleDecl),
    /// `SecAction "ACTIONS"`.
    Action(Vec<Action>),
    /// `SecMarker NAME` (quoted or not).
    Marker(String),
    /// `SecRuleRemoveById 1 2 100-200` (ids may also be separated by commas).
    RemoveById(Vec<IdRange>),
    /// `SecRuleRemoveByTag REGEX`: the regex text.
    RemoveByTag(String),
    /// `SecRuleRemoveByMsg REGEX`: the regex text.
    RemoveByMsg(String),
    /// `SecRuleUpdateTargetById IDS TARGETS [REPLACED]`.
    UpdateTargetById {
        ids: Vec<IdRange>,
        targets: Vec<VarSpec>,
        replace: Option<VarSpec>,
    },
    /// `SecRuleUpdateTargetByTag REGEX TARGETS [REPLACED]`.
    UpdateTargetByTag {
        tag: String,
        targets: Vec<VarSpec>,
        replace: Option<VarSpec>,
    },
    /// `SecRuleUpdateTargetByMsg REGEX TARGETS [REPLACED]`.
    UpdateTargetByMsg {
        msg: String,
        targets: Vec<VarSpec>,
        replace: Option<VarSpec>,
    },
    /// `SecRuleUpdateActionById ID[:CHAIN_OFFSET] "ACTIONS"`.
    UpdateActionById {
        id: u32,
        chain_offset: Option<u32>,
        actions: Vec<Action>,
    },
    /// `SecDefaultAction "ACTIONS"`.
    DefaultAction(Vec<Action>),
    /// Any other directive (SecComponentSignature, SecRuleEngine,
    /// SecRequestBodyAccess, Include…): name as written, arguments with their
    /// quotes removed.
    Other { name: String, args: Vec<String> },
}

/// An inclusive range of rule ids; a single id is `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: u32,
    pub last: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDecl {
    pub targets: Vec<VarSpec>,
    pub operator: OperatorDecl,
    /// Empty when the rule has no actions argument.
    pub actions: Vec<Action>,
}

/// One entry of a variable list, e.g. `!REQUEST_COOKIES:/__utm/` or `&TX:foo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarSpec {
    /// `&`: the number of matching variables rather than their values.
    pub count: bool,
    /// `!`: remove these from the list.
    pub exclude: bool,
    /// Upper-cased: `ARGS`, `REQUEST_HEADERS`, `TX`, `XML`.
    pub collection: String,
    pub selector: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `ARGS:foo`, `REQUEST_HEADERS:User-Agent`, `TX:0`, `XML:/*`; quotes
    /// removed, case as written.
    Name(String),
    /// `ARGS:/^foo/`: the text between the slashes, backslashes as written.
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorDecl {
    /// A leading `!`.
    pub negated: bool,
    /// Lower-cased, without the `@`: `rx`, `pm`, `pmfromfile`, `detectsqli`…;
    /// `rx` when the operator text has no `@name`.
    pub name: String,
    /// The rest after the name and the blanks that follow it; may be empty.
    pub arg: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Lower-cased: `id`, `phase`, `t`, `setvar`, `ctl`, `msg`, `chain`…
    pub name: String,
    /// The text after the first `:`, single quotes removed: `msg:'a, b'` →
    /// `a, b`; `ctl:ruleRemoveTargetById=1;ARGS:x` stays whole.
    pub arg: Option<String>,
}

/// Where and why the text is not SecLang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole SecLang file. Stops at the first error.
pub fn parse(text: &str) -> Result<Vec<Directive>, ParseError> {
    let mut out = Vec::new();
    for logical in logical_lines(text) {
        if let Some(d) = parse_directive(&logical)? {
            out.push(d);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Logical lines: physical lines joined at backslash-newline, with a map back to
// the original line and column of every byte.

/// A contiguous piece of one physical line inside a logical line.
struct Segment {
    /// Byte offset in `Logical::text` where the piece starts.
    start: usize,
    line: u32,
}

#[derive(Default)]
struct Logical {
    text: String,
    segments: Vec<Segment>,
}

impl Logical {
    /// Line and column of the character at byte `offset` of `text` (or of the
    /// end of the line when `offset == text.len()`).
    fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let i = self
            .segments
            .partition_point(|s| s.start <= offset)
            .saturating_sub(1);
        let Some(seg) = self.segments.get(i) else {
            return (1, 1);
        };
        let before = self.text.get(seg.start..offset).unwrap_or("");
        let column = u32::try_from(before.chars().count() + 1).unwrap_or(u32::MAX);
        (seg.line, column)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        let (line, column) = self.position(offset);
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

fn logical_lines(text: &str) -> Vec<Logical> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut current = Logical::default();
    for (i, raw) in text.split('\n').enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (body, continued) = match raw.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (raw, false),
        };
        current.segments.push(Segment {
            start: current.text.len(),
            line,
        });
        current.text.push_str(body);
        if !continued {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.segments.is_empty() {
        out.push(current);
    }
    out
}

// ---------------------------------------------------------------------------
// Arguments of a directive.

/// One argument, its quotes and escapes removed, with the byte offset (in the
/// logical line) each character came from.
struct Arg {
    chars: Vec<char>,
    /// `offsets[i]` is where `chars[i]` came from; one more entry for the end
    /// (the closing quote, or just past a bare argument).
    offsets: Vec<usize>,
    /// Where the argument starts (its opening quote, if quoted).
    start: usize,
}

impl Arg {
    fn value(&self) -> String {
        self.chars.iter().collect()
    }
}

/// A failure inside an argument: the index of the offending character in
/// `Arg::chars` (`chars.len()` for its end).
struct Fail {
    at: usize,
    message: String,
}

fn fail<T>(at: usize, message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail {
        at,
        message: message.into(),
    })
}

/// What C's `isspace` (and so Apache's config reader) calls a blank.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn split_args(line: &Logical) -> Result<Vec<Arg>, ParseError> {
    let mut args = Vec::new();
    let mut it = line.text.char_indices().peekable();
    while let Some(&(start, c)) = it.peek() {
        if is_blank(c) {
            it.next();
            continue;
        }
        let mut arg = Arg {
            chars: Vec::new(),
            offsets: Vec::new(),
            start,
        };
        if c == '"' {
            it.next();
            let end = loop {
                let Some((at, c)) = it.next() else {
                    return Err(line.error(start, "unterminated quoted argument (no closing '\"')"));
                };
                match c {
                    '"' => break at,
                    '\\' => match it.peek() {
                        // `\"` is a quote; `\\` stays a pair, so `"a\\"` ends.
                        Some(&(_, '"')) => {
                            it.next();
                            arg.chars.push('"');
                            arg.offsets.push(at);
                        }
                        Some(&(next_at, '\\')) => {
                            it.next();
                            arg.chars.extend(['\\', '\\']);
                            arg.offsets.extend([at, next_at]);
                        }
                        _ => {
                            arg.chars.push('\\');
                            arg.offsets.push(at);
                        }
                    },
                    c => {
                        arg.chars.push(c);
                        arg.offsets.push(at);
                    }
                }
            };
            arg.offsets.push(end);
            if let Some(&(at, c)) = it.peek() {
                if !is_blank(c) {
                    return Err(line.error(
                        at,
                        format!("expected a blank after the closing quote, found '{c}'"),
                    ));
                }
            }
        } else {
            let mut end = line.text.len();
            while let Some(&(at, c)) = it.peek() {
                if is_blank(c) {
                    end = at;
                    break;
                }
                it.next();
                arg.chars.push(c);
                arg.offsets.push(at);
            }
            arg.offsets.push(end);
        }
        args.push(arg);
    }
    Ok(args)
}

/// The error for `f` inside `arg`; an empty argument points at its start.
fn arg_error(line: &Logical, arg: &Arg, f: Fail) -> ParseError {
    let offset = if arg.chars.is_empty() {
        arg.start
    } else {
        arg.offsets
            .get(f.at)
            .or(arg.offsets.last())
            .copied()
            .unwrap_or(arg.start)
    };
    line.error(offset, f.message)
}

// ---------------------------------------------------------------------------
// Directives.

fn parse_directive(line: &Logical) -> Result<Option<Directive>, ParseError> {
    let first = line.text.trim_start_matches(is_blank);
    if first.is_empty() || first.starts_with('#') {
        return Ok(None);
    }
    let args = split_args(line)?;
    let Some((name_arg, rest)) = args.split_first() else {
        return Ok(None);
    };
    let name = name_arg.value();
    let (line_no, _) = line.position(name_arg.start);
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name || line.text[name_arg.start..].starts_with('"') {
        return Err(line.error(
            name_arg.start,
            format!("expected a directive name, found '{}'", shorten(&name)),
        ));
    }
    let lower = name.to_ascii_lowercase();
    let arity = |min: usize, max: usize, usage: &str| -> Result<(), ParseError> {
        if rest.len() < min {
            return Err(line.error(
                name_arg.start,
                format!("{name} needs {usage}, found {} argument(s)", rest.len()),
            ));
        }
        if let Some(extra) = rest.get(max) {
            return Err(line.error(
                extra.start,
                format!("{name} takes {usage}; unexpected extra argument"),
            ));
        }
        Ok(())
    };
    let in_arg = |arg: &Arg, f: Fail| arg_error(line, arg, f);
    let kind = match lower.as_str() {
        "secrule" => {
            arity(2, 3, "a variable list, an operator and optional actions")?;
            let targets = parse_targets(&rest[0].chars).map_err(|f| in_arg(&rest[0], f))?;
            let operator = parse_operator(&rest[1].chars).map_err(|f| in_arg(&rest[1], f))?;
            let actions = match rest.get(2) {
                Some(a) => parse_actions(&a.chars).map_err(|f| in_arg(a, f))?,
                None => Vec::new(),
            };
            DirectiveKind::Rule(RuleDecl {
                targets,
                operator,
                actions,
            })
        }
        "secaction" | "secdefaultaction" => {
            arity(1, 1, "one actions argument")?;
            let actions = parse_actions(&rest[0].chars).map_err(|f| in_arg(&rest[0], f))?;
            if lower == "secaction" {
                DirectiveKind::Action(actions)
            } else {
                DirectiveKind::DefaultAction(actions)
            }
        }
        "secmarker" => {
            arity(1, 1, "one marker name")?;
            let marker = rest[0].value();
            if marker.trim_matches(is_blank).is_empty() {
                return Err(line.error(rest[0].start, "empty marker name"));
            }
            DirectiveKind::Marker(marker)
        }
        "secruleremovebyid" => {
            arity(1, usize::MAX, "one or more rule ids or ranges")?;
            let mut ids = Vec::new();
            for arg in rest {
                ids.extend(parse_id_ranges(&arg.chars).map_err(|f| in_arg(arg, f))?);
            }
            DirectiveKind::RemoveById(ids)
        }
        "secruleremovebytag" | "secruleremovebymsg" => {
            arity(1, 1, "one regular expression")?;
            let text = rest[0].value();
            if lower == "secruleremovebytag" {
                DirectiveKind::RemoveByTag(text)
            } else {
                DirectiveKind::RemoveByMsg(text)
            }
        }
        "secruleupdatetargetbyid" | "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
            arity(
                2,
                3,
                "a rule selector, a variable list and an optional replaced variable",
            )?;
            let targets = parse_targets(&rest[1].chars).map_err(|f| in_arg(&rest[1], f))?;
            let replace = match rest.get(2) {
                Some(arg) => {
                    let mut vars = parse_targets(&arg.chars).map_err(|f| in_arg(arg, f))?;
                    if vars.len() != 1 {
                        return Err(line
                            .error(arg.start, "the replaced variable must be a single variable"));
                    }
                    vars.pop()
                }
                None => None,
            };
            match lower.as_str() {
                "secruleupdatetargetbyid" => DirectiveKind::UpdateTargetById {
                    ids: parse_id_ranges(&rest[0].chars).map_err(|f| in_arg(&rest[0], f))?,
                    targets,
                    replace,
                },
                "secruleupdatetargetbytag" => DirectiveKind::UpdateTargetByTag {
                    tag: rest[0].value(),
                    targets,
                    replace,
                },
                _ => DirectiveKind::UpdateTargetByMsg {
                    msg: rest[0].value(),
                    targets,
                    replace,
                },
            }
        }
        "secruleupdateactionbyid" => {
            arity(2, 2, "a rule id (optionally ID:CHAIN_OFFSET) and actions")?;
            let (id, chain_offset) =
                parse_id_with_offset(&rest[0].chars).map_err(|f| in_arg(&rest[0], f))?;
            let actions = parse_actions(&rest[1].chars).map_err(|f| in_arg(&rest[1], f))?;
            DirectiveKind::UpdateActionById {
                id,
                chain_offset,
                actions,
            }
        }
        _ => DirectiveKind::Other {
            name,
            args: rest.iter().map(Arg::value).collect(),
        },
    };
    Ok(Some(Directive {
        line: line_no,
        kind,
    }))
}

/// At most 40 characters of `s`, for messages.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn skip_blanks(c: &[char], mut i: usize) -> usize {
    while c.get(i).is_some_and(|&ch| is_blank(ch)) {
        i += 1;
    }
    i
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn text(c: &[char]) -> String {
    c.iter().collect()
}

// ---------------------------------------------------------------------------
// Variables: `VAR|VAR|…`.

fn parse_targets(c: &[char]) -> Result<Vec<VarSpec>, Fail> {
    if c.is_empty() {
        return fail(0, "empty variable list");
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let (var, next) = parse_var(c, i)?;
        out.push(var);
        i = next;
        match c.get(i) {
            None => return Ok(out),
            Some('|') => i += 1,
            // parse_var stops only at '|' or the end.
            Some(&ch) => return fail(i, format!("unexpected '{ch}' in the variable list")),
        }
    }
}

fn parse_var(c: &[char], mut i: usize) -> Result<(VarSpec, usize), Fail> {
    let (mut count, mut exclude) = (false, false);
    loop {
        match c.get(i) {
            Some('&') if !count => count = true,
            Some('!') if !exclude => exclude = true,
            _ => break,
        }
        i += 1;
    }
    let name_start = i;
    while c.get(i).copied().is_some_and(is_word) {
        i += 1;
    }
    if i == name_start {
        return match c.get(i) {
            None | Some('|') => fail(i, "empty variable in the variable list"),
            Some(&ch) => fail(i, format!("expected a variable name, found '{ch}'")),
        };
    }
    let collection = text(&c[name_start..i]).to_ascii_uppercase();
    let selector = match c.get(i) {
        None | Some('|') => None,
        Some(':') => {
            let (selector, next) = parse_selector(c, i + 1, collection == "XML")?;
            i = next;
            Some(selector)
        }
        Some(&ch) => {
            return fail(
                i,
                format!("unexpected '{ch}' after variable {collection} (expected ':' or '|')"),
            )
        }
    };
    Ok((
        VarSpec {
            count,
            exclude,
            collection,
            selector,
        },
        i,
    ))
}

/// The selector starting at `c[i]` (just after the colon); returns it and the
/// index of the `|` or end that follows it.
fn parse_selector(c: &[char], i: usize, xpath: bool) -> Result<(Selector, usize), Fail> {
    let ends_var = |j: usize| matches!(c.get(j), None | Some('|'));
    match c.get(i) {
        Some('\'') => {
            let (value, next) = single_quoted(c, i, "selector")?;
            if !ends_var(next) {
                return fail(next, "unexpected text after the quoted selector");
            }
            if value.is_empty() {
                return fail(i, "empty selector");
            }
            let regex = !xpath && value.len() > 2 && value.starts_with('/') && value.ends_with('/');
            let selector = if regex {
                Selector::Regex(value[1..value.len() - 1].to_string())
            } else {
                Selector::Name(value)
            };
            Ok((selector, next))
        }
        Some('/') if !xpath => {
            // A regex runs to the first unescaped '/', which must end the
            // variable; otherwise this is a plain name that starts with '/'.
            let mut j = i + 1;
            while let Some(&ch) = c.get(j) {
                match ch {
                    '\\' => j += 2,
                    '/' => break,
                    _ => j += 1,
                }
            }
            if j < c.len() && j > i + 1 && ends_var(j + 1) {
                return Ok((Selector::Regex(text(&c[i + 1..j])), j + 1));
            }
            plain_selector(c, i)
        }
        _ => plain_selector(c, i),
    }
}

fn plain_selector(c: &[char], i: usize) -> Result<(Selector, usize), Fail> {
    let end = c[i..]
        .iter()
        .position(|&ch| ch == '|')
        .map_or(c.len(), |p| i + p);
    if end == i {
        return fail(i, "empty selector after ':'");
    }
    Ok((Selector::Name(text(&c[i..end])), end))
}

/// The single-quoted text opening at `c[open]`: `\'` is a quote, `\\` stays a
/// pair (so `'a\\'` ends), any other backslash stays. Returns the text and
/// the index after the closing quote.
fn single_quoted(c: &[char], open: usize, what: &str) -> Result<(String, usize), Fail> {
    let mut out = String::new();
    let mut j = open + 1;
    loop {
        match c.get(j) {
            None => {
                return fail(
                    open,
                    format!("unterminated quoted {what} (no closing \"'\")"),
                )
            }
            Some('\'') => return Ok((out, j + 1)),
            Some('\\') if c.get(j + 1) == Some(&'\'') => {
                out.push('\'');
                j += 2;
            }
            Some('\\') if c.get(j + 1) == Some(&'\\') => {
                out.push_str("\\\\");
                j += 2;
            }
            Some(&ch) => {
                out.push(ch);
                j += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Operator: `[!][@name] [arg]`.

fn parse_operator(c: &[char]) -> Result<OperatorDecl, Fail> {
    let mut i = skip_blanks(c, 0);
    let negated = c.get(i) == Some(&'!');
    if negated {
        i = skip_blanks(c, i + 1);
    }
    if c.get(i) != Some(&'@') {
        return Ok(OperatorDecl {
            negated,
            name: "rx".to_string(),
            arg: text(&c[i..]),
        });
    }
    let name_start = i + 1;
    let mut j = name_start;
    while c.get(j).is_some_and(|&ch| !is_blank(ch)) {
        if !is_word(c[j]) {
            return fail(j, format!("unexpected '{}' in the operator name", c[j]));
        }
        j += 1;
    }
    if j == name_start {
        return fail(i, "missing operator name after '@'");
    }
    let arg_start = skip_blanks(c, j);
    Ok(OperatorDecl {
        negated,
        name: text(&c[name_start..j]).to_ascii_lowercase(),
        arg: text(&c[arg_start..]),
    })
}

// ---------------------------------------------------------------------------
// Actions: `name[:value], …`.

fn parse_actions(c: &[char]) -> Result<Vec<Action>, Fail> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        i = skip_blanks(c, i);
        let Some(&first) = c.get(i) else {
            return Ok(out);
        };
        let name_start = i;
        while c.get(i).copied().is_some_and(is_word) {
            i += 1;
        }
        if i == name_start {
            return match first {
                ',' => fail(i, "empty action (two commas in a row)"),
                _ => fail(i, format!("expected an action name, found '{first}'")),
            };
        }
        let name = text(&c[name_start..i]).to_ascii_lowercase();
        let arg = if c.get(i) == Some(&':') {
            i += 1;
            if c.get(i) == Some(&'\'') {
                let (value, next) = single_quoted(c, i, &format!("value of action '{name}'"))?;
                i = next;
                Some(value)
            } else {
                let start = i;
                while c.get(i).is_some_and(|&ch| ch != ',' && !is_blank(ch)) {
                    i += 1;
                }
                Some(text(&c[start..i]))
            }
        } else {
            None
        };
        out.push(Action { name, arg });
        i = skip_blanks(c, i);
        match c.get(i) {
            None => return Ok(out),
            Some(',') => i += 1,
            Some(&ch) => {
                let name = &out[out.len() - 1].name;
                return fail(
                    i,
                    format!("expected ',' after action '{name}', found '{ch}'"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Rule ids.

/// `1 2,3 100-200`: ids and inclusive ranges, separated by blanks or commas.
fn parse_id_ranges(c: &[char]) -> Result<Vec<IdRange>, Fail> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while c.get(i).is_some_and(|&ch| ch == ',' || is_blank(ch)) {
            i += 1;
        }
        if i >= c.len() {
            break;
        }
        let start = i;
        while c.get(i).is_some_and(|&ch| ch != ',' && !is_blank(ch)) {
            i += 1;
        }
        let piece = &c[start..i];
        let range = match piece.iter().position(|&ch| ch == '-') {
            Some(dash) => {
                let first = parse_id(&piece[..dash], start)?;
                let last = parse_id(&piece[dash + 1..], start + dash + 1)?;
                if first > last {
                    return fail(start, format!("empty id range {first}-{last}"));
                }
                IdRange { first, last }
            }
            None => {
                let id = parse_id(piece, start)?;
                IdRange {
                    first: id,
                    last: id,
                }
            }
        };
        out.push(range);
    }
    if out.is_empty() {
        return fail(0, "expected a rule id or range");
    }
    Ok(out)
}

/// `ID` or `ID:CHAIN_OFFSET`.
fn parse_id_with_offset(c: &[char]) -> Result<(u32, Option<u32>), Fail> {
    match c.iter().position(|&ch| ch == ':') {
        Some(colon) => Ok((
            parse_id(&c[..colon], 0)?,
            Some(parse_id(&c[colon + 1..], colon + 1)?),
        )),
        None => Ok((parse_id(c, 0)?, None)),
    }
}

/// A decimal `u32`; `at` is the index of `c[0]` in the argument, for errors.
fn parse_id(c: &[char], at: usize) -> Result<u32, Fail> {
    if let Some(bad) = c.iter().position(|ch| !ch.is_ascii_digit()) {
        return fail(at + bad, format!("invalid rule id '{}'", text(c)));
    }
    if c.is_empty() {
        return fail(at, "missing rule id");
    }
    text(c)
        .parse()
        .or_else(|_| fail(at, format!("rule id '{}' is out of range", text(c))))
}

#[cfg(test)]
mod tests;
