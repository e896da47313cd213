//! SecLang directives → the compiled [`Program`]: rules with their chains,
//! operators, transformations and actions resolved; load-time exclusions
//! (`SecRuleRemoveById`, `SecRuleUpdateTargetById`, …) applied to every rule
//! wherever they stand (as libmodsecurity v3 does); the request phases' rule
//! lists with the markers `skipAfter` jumps to.
//!
//! Nothing is skipped silently: a rule of a response phase (3–5), a rule that
//! reads a response variable, and the few operators that need an outside
//! service (`@rbl`, `@geoLookup`) are skipped and listed with their reason; any
//! other directive, variable, operator or action outside the supported subset
//! is an error naming the file, the line and the rule id.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;

use super::macros::Macro;
use super::operator::Operator;
use super::seclang::{self, Action, DirectiveKind, IdRange, RuleDecl, Selector, VarSpec};
use super::transform::{Parsed, Transform};
use super::variable::{Select, TargetError, Targets, Var};

/// The compiled rule set.
#[derive(Debug, Default)]
pub struct Program {
    pub rules: Vec<Rule>,
    /// Per request phase (index 0: phase 1, 1: phase 2), rules and markers in
    /// the order they were defined.
    pub phases: [Vec<Item>; 2],
    pub skipped: Vec<Skipped>,
    /// Response-phase rules, not listed one by one.
    pub response_rules: usize,
    pub gate: super::gate::Gate,
}

#[derive(Debug, Clone)]
pub enum Item {
    Rule(usize),
    Marker(Arc<str>),
}

/// A rule left out, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub id: u32,
    pub file: Arc<str>,
    pub line: u32,
    pub reason: String,
}

/// A top-level rule (a `SecRule` with its chain, or a `SecAction`).
#[derive(Debug)]
pub struct Rule {
    pub id: u32,
    pub phase: u8,
    pub file: Arc<str>,
    pub line: u32,
    /// The rule and the rules chained to it, in order.
    pub links: Vec<Link>,
    pub disruptive: Disruptive,
    /// `status:` for `deny`.
    pub status: Option<u16>,
    pub skip_after: Option<Arc<str>>,
    pub skip: u32,
    pub tags: Vec<String>,
    pub msg: Option<Macro>,
    pub logdata: Option<Macro>,
    pub severity: Option<u8>,
    /// `log` (the default) / `nolog`: whether a match is reported.
    pub log: bool,
}

/// One `SecRule` of a chain (or the `SecAction`).
#[derive(Debug)]
pub struct Link {
    /// Empty for a `SecAction`: it runs once, unconditionally.
    pub targets: Targets,
    pub operator: Operator,
    pub negated: bool,
    pub transforms: Vec<Transform>,
    /// The transformation chain's number: links with the same chain share one
    /// (the per-request transformation cache's key).
    pub chain: u32,
    pub multi_match: bool,
    pub capture: bool,
    /// The link's slot in the request's literal gate ([`super::gate`]), when
    /// it has one.
    pub gate: Option<u32>,
    /// Actions run for each matching value (`setvar`, `ctl`).
    pub effects: Vec<Effect>,
    /// Chained links' own `msg`/`logdata` are ignored; these are the link's
    /// line and operator for reports.
    pub line: u32,
    pub operator_name: String,
    pub operator_arg: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    /// `block`: the phase's `SecDefaultAction` decides.
    Block,
    Deny,
    /// `allow` (all remaining request rules), `allow:phase`, `allow:request`.
    Allow(AllowScope),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    All,
    Phase,
    Request,
}

#[derive(Debug)]
pub enum Effect {
    SetVar(SetVar),
    Ctl(Ctl),
}

/// `setvar:COLLECTION.KEY=VALUE`, `=+N`, `=-N`, or `!COLLECTION.KEY`.
#[derive(Debug)]
pub struct SetVar {
    /// `tx.`, `ip.`, …: the prefix of keys in the transaction's variable map.
    pub prefix: &'static str,
    pub key: Macro,
    pub op: SetOp,
}

#[derive(Debug)]
pub enum SetOp {
    Set(Macro),
    Add(Macro),
    Sub(Macro),
    Delete,
}

#[derive(Debug)]
pub enum Ctl {
    RuleEngine(Engine),
    RemoveById(Vec<IdRange>),
    RemoveByTag(String),
    RemoveTargetById(Vec<IdRange>, Var, Select),
    RemoveTargetByTag(String, Var, Select),
    /// Accepted and without effect here (`auditEngine`, `auditLogParts`,
    /// `forceRequestBodyVariable`, `requestBodyAccess`, `requestBodyProcessor`,
    /// `debugLogLevel`): the gateway logs and parses bodies its own way.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    On,
    Off,
    DetectionOnly,
}

/// `SecDefaultAction` of a phase.
#[derive(Debug, Clone)]
struct Defaults {
    disruptive: Disruptive,
    status: Option<u16>,
    transforms: Vec<Transform>,
    log: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            disruptive: Disruptive::Pass,
            status: None,
            transforms: Vec::new(),
            log: true,
        }
    }
}

/// One loaded `.conf` file.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A load error: where and what.
pub fn at(file: &Path, line: u32, id: Option<u32>, msg: impl std::fmt::Display) -> String {
    match id {
        Some(id) => format!("{}:{line}: rule {id}: {msg}", file.display()),
        None => format!("{}:{line}: {msg}", file.display()),
    }
}

/// Load-time exclusions, applied once every file is read.
enum Exclusion {
    RemoveById(Vec<IdRange>),
    RemoveByTag(Regex),
    RemoveByMsg(Regex),
    UpdateTarget {
        by: Which,
        targets: Vec<VarSpec>,
        replace: Option<VarSpec>,
        file: Arc<str>,
        line: u32,
    },
}

enum Which {
    Ids(Vec<IdRange>),
    Tag(Regex),
    Msg(Regex),
}

/// What `SecDefaultAction`s decide for `block`, per request phase.
pub struct Blocking {
    pub deny: [bool; 2],
    pub status: [Option<u16>; 2],
}

/// Compiles `sources` in order.
pub fn compile(sources: &[Source]) -> Result<(Program, Blocking), String> {
    let mut program = Program::default();
    let mut defaults: [Defaults; 5] = Default::default();
    let mut exclusions = Vec::new();
    let mut markers: Vec<(usize, Arc<str>)> = Vec::new(); // (rules defined before it, name)
    let mut order: Vec<Item> = Vec::new();
    for src in sources {
        let file: Arc<str> = Arc::from(src.path.display().to_string());
        let dir = src.path.parent().unwrap_or(Path::new("."));
        let directives = seclang::parse(&src.text).map_err(|e| {
            format!(
                "{}:{}:{}: {}",
                src.path.display(),
                e.line,
                e.column,
                e.message
            )
        })?;
        let mut i = 0;
        while i < directives.len() {
            let d = &directives[i];
            let err = |id: Option<u32>, m: &dyn std::fmt::Display| at(&src.path, d.line, id, m);
            match &d.kind {
                DirectiveKind::Rule(_) | DirectiveKind::Action(_) => {
                    // The rule and the rules chained to it.
                    let start = i;
                    while chained(&directives[i].kind) {
                        i += 1;
                        if i >= directives.len() {
                            return Err(err(None, &"the last rule of the file says chain"));
                        }
                    }
                    let chain = &directives[start..=i];
                    let first_phase = chain_phase(chain);
                    let id = rule_id(&chain[0].kind);
                    let phase_defaults = &defaults[usize::from(first_phase.clamp(1, 5)) - 1];
                    match compile_rule(chain, &file, dir, phase_defaults) {
                        Ok(Compiled::Rule(rule)) => {
                            program.rules.push(rule);
                            order.push(Item::Rule(program.rules.len() - 1));
                        }
                        Ok(Compiled::Response) => program.response_rules += 1,
                        Ok(Compiled::Skipped(reason)) => program.skipped.push(Skipped {
                            id: id.unwrap_or(0),
                            file: file.clone(),
                            line: chain[0].line,
                            reason,
                        }),
                        Err((line, msg)) => return Err(at(&src.path, line, id, msg)),
                    }
                }
                DirectiveKind::Marker(name) => {
                    let name: Arc<str> = Arc::from(name.as_str());
                    markers.push((program.rules.len(), name.clone()));
                    order.push(Item::Marker(name));
                }
                DirectiveKind::DefaultAction(actions) => {
                    let (phase, d) = compile_defaults(actions).map_err(|m| err(None, &m))?;
                    defaults[usize::from(phase) - 1] = d;
                }
                DirectiveKind::RemoveById(ids) => {
                    exclusions.push(Exclusion::RemoveById(ids.clone()))
                }
                DirectiveKind::RemoveByTag(t) => {
                    exclusions.push(Exclusion::RemoveByTag(regex(t).map_err(|m| err(None, &m))?))
                }
                DirectiveKind::RemoveByMsg(t) => {
                    exclusions.push(Exclusion::RemoveByMsg(regex(t).map_err(|m| err(None, &m))?))
                }
                DirectiveKind::UpdateTargetById {
                    ids,
                    targets,
                    replace,
                } => exclusions.push(Exclusion::UpdateTarget {
                    by: Which::Ids(ids.clone()),
                    targets: targets.clone(),
                    replace: replace.clone(),
                    file: file.clone(),
                    line: d.line,
                }),
                DirectiveKind::UpdateTargetByTag {
                    tag,
                    targets,
                    replace,
                } => exclusions.push(Exclusion::UpdateTarget {
                    by: Which::Tag(regex(tag).map_err(|m| err(None, &m))?),
                    targets: targets.clone(),
                    replace: replace.clone(),
                    file: file.clone(),
                    line: d.line,
                }),
                DirectiveKind::UpdateTargetByMsg {
                    msg,
                    targets,
                    replace,
                } => exclusions.push(Exclusion::UpdateTarget {
                    by: Which::Msg(regex(msg).map_err(|m| err(None, &m))?),
                    targets: targets.clone(),
                    replace: replace.clone(),
                    file: file.clone(),
                    line: d.line,
                }),
                DirectiveKind::UpdateActionById { id, .. } => {
                    return Err(err(Some(*id), &"SecRuleUpdateActionById is not supported"));
                }
                DirectiveKind::Other { name, .. } => {
                    if !ignored_directive(name) {
                        return Err(err(None, &format!("directive {name} is not supported")));
                    }
                }
            }
            i += 1;
        }
    }
    apply_exclusions(&mut program, &exclusions)?;
    // Number the distinct transformation chains.
    let mut chains: std::collections::HashMap<Vec<Transform>, u32> = Default::default();
    for rule in &mut program.rules {
        for link in &mut rule.links {
            let next = chains.len() as u32;
            link.chain = *chains.entry(link.transforms.clone()).or_insert(next);
        }
    }
    program.gate = super::gate::Gate::build(&mut program.rules)?;
    // The phase lists: markers stand in both request phases.
    for item in order {
        match item {
            Item::Rule(r) => {
                if program.rules[r].links.is_empty() {
                    continue; // removed
                }
                let p = usize::from(program.rules[r].phase) - 1;
                program.phases[p].push(Item::Rule(r));
            }
            Item::Marker(m) => {
                program.phases[0].push(Item::Marker(m.clone()));
                program.phases[1].push(Item::Marker(m));
            }
        }
    }
    let _ = markers;
    let blocking = Blocking {
        deny: [
            defaults[0].disruptive == Disruptive::Deny,
            defaults[1].disruptive == Disruptive::Deny,
        ],
        status: [defaults[0].status, defaults[1].status],
    };
    Ok((program, blocking))
}

fn chained(kind: &DirectiveKind) -> bool {
    match kind {
        DirectiveKind::Rule(r) => r.actions.iter().any(|a| a.name == "chain"),
        _ => false,
    }
}

fn rule_id(kind: &DirectiveKind) -> Option<u32> {
    let actions = match kind {
        DirectiveKind::Rule(r) => &r.actions,
        DirectiveKind::Action(a) => a,
        _ => return None,
    };
    actions
        .iter()
        .find(|a| a.name == "id")
        .and_then(|a| a.arg.as_deref()?.trim().parse().ok())
}

fn chain_phase(chain: &[seclang::Directive]) -> u8 {
    let actions = match &chain[0].kind {
        DirectiveKind::Rule(r) => &r.actions,
        DirectiveKind::Action(a) => a,
        _ => return 2,
    };
    actions
        .iter()
        .find(|a| a.name == "phase")
        .and_then(|a| phase_number(a.arg.as_deref()?))
        .unwrap_or(2)
}

fn phase_number(s: &str) -> Option<u8> {
    match s.trim() {
        "request" => Some(2),
        "response" => Some(4),
        "logging" => Some(5),
        n => n.parse().ok().filter(|p| (1..=5).contains(p)),
    }
}

fn ignored_directive(name: &str) -> bool {
    // Engine and audit settings the gateway's own config owns; signatures.
    [
        "seccomponentsignature",
        "secruleengine",
        "secrequestbodyaccess",
        "secresponsebodyaccess",
        "secrequestbodylimit",
        "secrequestbodynofileslimit",
        "secrequestbodylimitaction",
        "secresponsebodylimit",
        "secresponsebodylimitaction",
        "secresponsebodymimetype",
        "secauditengine",
        "secauditlog",
        "secauditlogparts",
        "secauditlogtype",
        "secauditlogrelevantstatus",
        "secauditlogstoragedir",
        "secdebuglog",
        "secdebugloglevel",
        "secargumentseparator",
        "seccookieformat",
        "secunicodemapfile",
        "secstatusengine",
        "sectmpdir",
        "secdatadir",
        "seccollectiontimeout",
        "secpcrematchlimit",
        "secpcrematchlimitrecursion",
        "secargumentslimit",
        "secrequestbodyjsondepthlimit",
        "secuploaddir",
        "secuploadfilemode",
        "secuploadkeepfiles",
        "sectmpsaverequestbody",
        "secwebappid",
        "secserversignature",
    ]
    .contains(&name.to_ascii_lowercase().as_str())
}

fn regex(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|e| format!("regex {text:?} does not compile: {e}"))
}

enum Compiled {
    Rule(Rule),
    Response,
    Skipped(String),
}

/// Operators that need a service outside the gateway: rules using them are
/// skipped (CRS enables them only on request: IP reputation, GeoIP).
fn external_operator(name: &str) -> Option<&'static str> {
    match name {
        "rbl" => Some("@rbl needs DNS blocklist lookups"),
        "geolookup" => Some("@geoLookup needs a GeoIP database"),
        "inspectfile" => Some("@inspectFile runs an external program"),
        _ => None,
    }
}

fn compile_rule(
    chain: &[seclang::Directive],
    file: &Arc<str>,
    dir: &Path,
    defaults: &Defaults,
) -> Result<Compiled, (u32, String)> {
    let mut rule = Rule {
        id: 0,
        phase: 2,
        file: file.clone(),
        line: chain[0].line,
        links: Vec::new(),
        disruptive: Disruptive::Pass,
        status: None,
        skip_after: None,
        skip: 0,
        tags: Vec::new(),
        msg: None,
        logdata: None,
        severity: None,
        log: defaults.log,
    };
    if chain_phase(chain) >= 3 {
        return Ok(Compiled::Response);
    }
    let mut disruptive = None;
    for (n, d) in chain.iter().enumerate() {
        let (decl, actions): (Option<&RuleDecl>, &[Action]) = match &d.kind {
            DirectiveKind::Rule(r) => (Some(r), &r.actions),
            DirectiveKind::Action(a) => (None, a),
            _ => return Err((d.line, "a chain must continue with SecRule".into())),
        };
        let e = |m: String| (d.line, m);
        let mut link = Link {
            targets: Targets::default(),
            operator: Operator::UnconditionalMatch,
            negated: false,
            gate: None,
            transforms: defaults.transforms.clone(),
            chain: 0,
            multi_match: false,
            capture: false,
            effects: Vec::new(),
            line: d.line,
            operator_name: String::from("unconditionalMatch"),
            operator_arg: String::new(),
        };
        for a in actions {
            let arg = a.arg.as_deref().unwrap_or("");
            match a.name.as_str() {
                "id" if n == 0 => {
                    rule.id = arg
                        .trim()
                        .parse()
                        .map_err(|_| e(format!("id {arg:?} is not a number")))?
                }
                "phase" if n == 0 => {
                    rule.phase =
                        phase_number(arg).ok_or_else(|| e(format!("phase {arg:?} is not 1–5")))?
                }
                "chain" => {}
                "t" => match Transform::parse(arg) {
                    Some(Parsed::None) => link.transforms.clear(),
                    Some(Parsed::Transform(t)) => link.transforms.push(t),
                    None => return Err(e(format!("transformation t:{arg} is not supported"))),
                },
                "pass" => disruptive = Some(Disruptive::Pass),
                "block" => disruptive = Some(Disruptive::Block),
                "deny" | "drop" | "redirect" => disruptive = Some(Disruptive::Deny),
                "allow" => {
                    disruptive = Some(Disruptive::Allow(match arg {
                        "" => AllowScope::All,
                        "phase" => AllowScope::Phase,
                        "request" => AllowScope::Request,
                        other => {
                            return Err(e(format!(
                                "allow:{other} is not allow, allow:phase or allow:request"
                            )))
                        }
                    }))
                }
                "status" => {
                    rule.status = Some(
                        arg.trim()
                            .parse()
                            .map_err(|_| e(format!("status {arg:?} is not a number")))?,
                    )
                }
                "msg" if n == 0 => rule.msg = Some(Macro::parse(arg).map_err(e)?),
                "logdata" if n == 0 => rule.logdata = Some(Macro::parse(arg).map_err(e)?),
                "msg" | "logdata" => {}
                "tag" => rule.tags.push(arg.to_string()),
                "severity" => {
                    rule.severity =
                        Some(severity(arg).ok_or_else(|| e(format!("severity {arg:?}")))?)
                }
                "log" => rule.log = true,
                "nolog" => rule.log = false,
                "capture" => link.capture = true,
                "multimatch" => link.multi_match = true,
                "skipafter" if n == 0 => rule.skip_after = Some(Arc::from(arg.trim())),
                "skip" if n == 0 => {
                    rule.skip = arg
                        .trim()
                        .parse()
                        .map_err(|_| e(format!("skip {arg:?} is not a number")))?
                }
                "setvar" => link.effects.push(Effect::SetVar(setvar(arg).map_err(e)?)),
                "ctl" => link.effects.push(Effect::Ctl(ctl(arg).map_err(e)?)),
                // Metadata and logging knobs without effect on the verdict; persistent
                // collections and the environment are per transaction here.
                "rev"
                | "ver"
                | "maturity"
                | "accuracy"
                | "auditlog"
                | "noauditlog"
                | "expirevar"
                | "initcol"
                | "setenv"
                | "setuid"
                | "setsid"
                | "setrsc"
                | "sanitisearg"
                | "sanitisematched"
                | "sanitisematchedbytes"
                | "sanitiserequestheader"
                | "sanitiseresponseheader"
                | "deprecatevar" => {}
                other => return Err(e(format!("action {other} is not supported"))),
            }
        }
        if let Some(decl) = decl {
            let name = decl.operator.name.as_str();
            if let Some(reason) = external_operator(name) {
                return Ok(Compiled::Skipped(reason.into()));
            }
            match link.targets.add(&decl.targets) {
                Ok(()) => {}
                Err(TargetError::Response(v)) => {
                    return Ok(Compiled::Skipped(format!(
                        "{v} exists only in response phases"
                    )))
                }
                Err(other) => return Err(e(other.to_string())),
            }
            let data = |f: &str| {
                let p = dir.join(f);
                std::fs::read_to_string(&p).map_err(|err| format!("{}: {err}", p.display()))
            };
            link.operator = Operator::compile(name, &decl.operator.arg, &data).map_err(e)?;
            link.negated = decl.operator.negated;
            link.operator_name = decl.operator.name.clone();
            link.operator_arg = decl.operator.arg.clone();
        }
        rule.links.push(link);
    }
    rule.disruptive = disruptive.unwrap_or(Disruptive::Pass);
    if rule.disruptive == Disruptive::Deny && rule.status.is_none() {
        rule.status = defaults.status;
    }
    Ok(Compiled::Rule(rule))
}

fn compile_defaults(actions: &[Action]) -> Result<(u8, Defaults), String> {
    let mut phase = None;
    let mut d = Defaults::default();
    for a in actions {
        let arg = a.arg.as_deref().unwrap_or("");
        match a.name.as_str() {
            "phase" => phase = phase_number(arg),
            "pass" => d.disruptive = Disruptive::Pass,
            "deny" | "drop" | "redirect" | "block" => d.disruptive = Disruptive::Deny,
            "status" => d.status = arg.trim().parse().ok(),
            "log" => d.log = true,
            "nolog" => d.log = false,
            "t" => match Transform::parse(arg) {
                Some(Parsed::None) => d.transforms.clear(),
                Some(Parsed::Transform(t)) => d.transforms.push(t),
                None => return Err(format!("transformation t:{arg} is not supported")),
            },
            "auditlog" | "noauditlog" | "tag" | "msg" | "severity" => {}
            other => return Err(format!("SecDefaultAction: action {other} is not supported")),
        }
    }
    let phase = phase.ok_or("SecDefaultAction needs a phase")?;
    Ok((phase, d))
}

fn severity(s: &str) -> Option<u8> {
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "EMERGENCY" => 0,
        "ALERT" => 1,
        "CRITICAL" => 2,
        "ERROR" => 3,
        "WARNING" => 4,
        "NOTICE" => 5,
        "INFO" => 6,
        "DEBUG" => 7,
        n => n.parse().ok().filter(|&v| v <= 7)?,
    })
}

/// `tx.a=1`, `tx.a=+%{tx.b}`, `!tx.a`, `tx.a` (= 1), `ip.x=1`.
fn setvar(arg: &str) -> Result<SetVar, String> {
    let arg = arg.trim();
    let (delete, rest) = match arg.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, arg),
    };
    let (name, value) = match rest.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v)),
        None => (rest, None),
    };
    let (coll, key) = name
        .split_once('.')
        .ok_or_else(|| format!("setvar:{arg}: no collection (tx.NAME)"))?;
    let prefix = match coll.to_ascii_uppercase().as_str() {
        "TX" => "tx.",
        "IP" => "ip.",
        "GLOBAL" => "global.",
        "SESSION" => "session.",
        "USER" => "user.",
        "RESOURCE" => "resource.",
        other => return Err(format!("setvar:{arg}: collection {other} cannot be set")),
    };
    let key = Macro::parse(&key.to_ascii_lowercase())?;
    let op = if delete {
        SetOp::Delete
    } else {
        match value {
            None => SetOp::Set(Macro::parse("1")?),
            Some(v) => match v.as_bytes().first() {
                Some(b'+') => SetOp::Add(Macro::parse(&v[1..])?),
                Some(b'-') => SetOp::Sub(Macro::parse(&v[1..])?),
                _ => SetOp::Set(Macro::parse(v)?),
            },
        }
    };
    Ok(SetVar { prefix, key, op })
}

fn ctl(arg: &str) -> Result<Ctl, String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("ctl:{arg}: expected NAME=VALUE"))?;
    let ids = |s: &str| -> Result<Vec<IdRange>, String> {
        s.split([',', ' '])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (a, b) = p.split_once('-').unwrap_or((p, p));
                match (a.trim().parse(), b.trim().parse()) {
                    (Ok(first), Ok(last)) => Ok(IdRange { first, last }),
                    _ => Err(format!("ctl:{arg}: {p:?} is not a rule id or range")),
                }
            })
            .collect()
    };
    let target = |s: &str| -> Result<(Var, Select), String> {
        let (coll, sel) = match s.split_once(':') {
            Some((c, sel)) => (c, Some(sel)),
            None => (s, None),
        };
        let selector =
            sel.map(
                |sel| match sel.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
                    Some(r) => Selector::Regex(r.to_string()),
                    None => Selector::Name(sel.to_string()),
                },
            );
        let mut t = Targets::default();
        t.add(&[VarSpec {
            count: false,
            exclude: true,
            collection: coll.trim().to_ascii_uppercase(),
            selector,
        }])
        .map_err(|e| format!("ctl:{arg}: {e}"))?;
        t.excluded
            .pop()
            .ok_or_else(|| format!("ctl:{arg}: no target"))
    };
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(match value.trim().to_ascii_lowercase().as_str() {
            "on" => Engine::On,
            "off" => Engine::Off,
            "detectiononly" => Engine::DetectionOnly,
            other => {
                return Err(format!(
                    "ctl:ruleEngine={other}: expected On, Off or DetectionOnly"
                ))
            }
        }),
        "ruleremovebyid" => Ctl::RemoveById(ids(value)?),
        "ruleremovebytag" => Ctl::RemoveByTag(value.trim().to_string()),
        "ruleremovetargetbyid" => {
            let (i, t) = value
                .split_once(';')
                .ok_or_else(|| format!("ctl:{arg}: expected ID;TARGET"))?;
            let (var, sel) = target(t)?;
            Ctl::RemoveTargetById(ids(i)?, var, sel)
        }
        "ruleremovetargetbytag" => {
            let (tag, t) = value
                .split_once(';')
                .ok_or_else(|| format!("ctl:{arg}: expected TAG;TARGET"))?;
            let (var, sel) = target(t)?;
            Ctl::RemoveTargetByTag(tag.trim().to_string(), var, sel)
        }
        "auditengine"
        | "auditlogparts"
        | "forcerequestbodyvariable"
        | "requestbodyaccess"
        | "requestbodyprocessor"
        | "debugloglevel"
        | "responsebodyaccess"
        | "requestbodylimit" => Ctl::Ignored,
        other => return Err(format!("ctl:{other} is not supported")),
    })
}

fn in_ranges(ranges: &[IdRange], id: u32) -> bool {
    ranges.iter().any(|r| (r.first..=r.last).contains(&id))
}

fn apply_exclusions(program: &mut Program, exclusions: &[Exclusion]) -> Result<(), String> {
    for ex in exclusions {
        for rule in program.rules.iter_mut() {
            if rule.links.is_empty() {
                continue;
            }
            let msg_text = || {
                let mut out = Vec::new();
                if let Some(m) = &rule.msg {
                    m.expand_with(&mut |_, _, _| {}, &mut out);
                }
                String::from_utf8_lossy(&out).into_owned()
            };
            let hit = |by: &Which| match by {
                Which::Ids(ids) => in_ranges(ids, rule.id),
                Which::Tag(re) => rule.tags.iter().any(|t| re.is_match(t)),
                Which::Msg(re) => re.is_match(&msg_text()),
            };
            match ex {
                Exclusion::RemoveById(ids) => {
                    if in_ranges(ids, rule.id) {
                        rule.links.clear();
                    }
                }
                Exclusion::RemoveByTag(re) => {
                    if rule.tags.iter().any(|t| re.is_match(t)) {
                        rule.links.clear();
                    }
                }
                Exclusion::RemoveByMsg(re) => {
                    if re.is_match(&msg_text()) {
                        rule.links.clear();
                    }
                }
                Exclusion::UpdateTarget {
                    by,
                    targets,
                    replace,
                    file,
                    line,
                } => {
                    if !hit(by) {
                        continue;
                    }
                    let t = &mut rule.links[0].targets;
                    let done = match replace {
                        Some(old) => t.replace(old, targets),
                        None => t.add(targets).map(|()| true),
                    };
                    match done {
                        Ok(_) => {}
                        Err(e) => return Err(format!("{file}:{line}: rule {}: {e}", rule.id)),
                    }
                }
            }
        }
    }
    Ok(())
}
