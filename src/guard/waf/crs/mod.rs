//! The OWASP Core Rule Set (and any SecLang rule set like it) in the WAF
//! stage: `[waf.NAME] crs = "DIR"`, `crs_setup = "FILE"`.
//!
//! Loading ([`load`], off the request path: at start and on reload) reads
//! `crs_setup` and then the directory's `*.conf` files in name order,
//! parses them ([`seclang`]: syntax only) and compiles them ([`compile`]):
//! operators ([`operator`]: `@rx` on the `regex` crate, `@pm` on
//! Aho-Corasick, `@detectSQLi`/`@detectXSS` on libinjection ([`injection`])),
//! transformations ([`transform`]), variables ([`variable`]), macros
//! ([`macros`]) and actions. What does not apply to a request phase is
//! reported, never dropped silently: [`Crs::summary`] is what `portcullis
//! check` prints.
//!
//! Per request ([`Crs::evaluate`]), the request's collections are built
//! ([`request`]) and phases 1 and 2 run ([`eval`]) with CRS's anomaly
//! scoring as CRS's own `setvar`s compute it; the request is refused when a
//! rule denies (CRS's 949110 does once `tx.anomaly_score` reaches
//! `tx.inbound_anomaly_score_threshold`).
//!
//! Without `crs_setup`, the engine supplies what CRS refuses to run without
//! (`tx.crs_setup_version`), so CRS runs on its own defaults (paranoia 1,
//! threshold 5); the WAF's `paranoia` setting, when given, sets
//! `tx.paranoia_level` (and `tx.executing_paranoia_level`) after the setup file.
//!
//! Speed: a rule runs its operator only where its literals can be. Every
//! `@rx` pattern's required literals are found at load ([`prefilter`]), and
//! `@pm` phrases are literals already; the links that read only the request's
//! own collections share one automaton ([`gate`]) that scans each value once
//! per transformation chain, so a rule whose literals appear nowhere in its
//! collections is passed over before its values are collected; the others
//! check their own literals before each regex. Transformations leave a value
//! that holds nothing they act on uncopied, and their results are cached per
//! request. [`Crs::summary`] counts the prefiltered and the unconditional
//! rules (those whose first operator has no literal: `@detectSQLi`, numeric
//! comparisons, byte-range checks, patterns like `^.*$`).

pub mod compile;
pub mod eval;
pub mod gate;
pub mod injection;
pub mod macros;
pub mod operator;
pub mod prefilter;
pub mod request;
pub mod seclang;
pub mod transform;
pub mod variable;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use self::compile::Blocking;
use self::compile::{Program, Source};
pub use self::eval::{Match, Outcome};
pub use self::request::Request;

/// A loaded rule set.
#[derive(Debug)]
pub struct Crs {
    pub program: Program,
    pub blocking: Blocking,
    /// Rules by phase (1, 2) after exclusions.
    pub counts: [usize; 2],
    /// Of those, the rules whose first operator has literals a match must contain.
    pub literal_rules: usize,
    /// Rules that read no request data (`SecAction`s, checks of `TX` values
    /// such as the paranoia level and the anomaly scores).
    pub control_rules: usize,
    pub load_time: std::time::Duration,
}

impl std::fmt::Debug for Blocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocking")
            .field("deny", &self.deny)
            .field("status", &self.status)
            .finish()
    }
}

/// Loads `setup` (if any) and then `dir`'s `*.conf` files in name order.
/// `paranoia`: the WAF's own setting, applied after the setup file.
pub fn load(dir: &Path, setup: Option<&Path>, paranoia: Option<u8>) -> Result<Crs, String> {
    let started = std::time::Instant::now();
    let mut sources = Vec::new();
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    match setup {
        Some(s) => sources.push(Source {
            path: s.to_path_buf(),
            text: read(s)?,
        }),
        None => sources.push(Source {
            path: PathBuf::from("<built-in crs setup>"),
            text: "SecDefaultAction \"phase:1,log,auditlog,pass\"\n\
                   SecDefaultAction \"phase:2,log,auditlog,pass\"\n\
                   SecAction \"id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334\"\n"
                .into(),
        }),
    }
    if let Some(p) = paranoia {
        sources.push(Source {
            path: PathBuf::from("<waf paranoia>"),
            text: format!(
                "SecAction \"id:900997,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={p},setvar:tx.blocking_paranoia_level={p}\"\n"
            ),
        });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no .conf files", dir.display()));
    }
    for f in files {
        sources.push(Source {
            text: read(&f)?,
            path: f,
        });
    }
    let (program, blocking) = compile::compile(&sources)?;
    let mut counts = [0, 0];
    let mut literal_rules = 0;
    let mut control_rules = 0;
    for (p, items) in program.phases.iter().enumerate() {
        for it in items {
            if let compile::Item::Rule(r) = it {
                counts[p] += 1;
                let Some(first) = program.rules[*r].links.first() else {
                    continue;
                };
                if first.operator.literals().is_some() {
                    literal_rules += 1;
                } else if !first.targets.list.iter().any(|t| gate::gateable(t.var)) {
                    control_rules += 1;
                }
            }
        }
    }
    Ok(Crs {
        program,
        blocking,
        counts,
        literal_rules,
        control_rules,
        load_time: started.elapsed(),
    })
}

impl Crs {
    /// One line for `check`: what loaded and what was skipped, with ids and reasons.
    pub fn summary(&self) -> String {
        let total = self.counts[0] + self.counts[1];
        let mut s = format!(
            "CRS: {total} rules ({} phase 1, {} phase 2): {} prefiltered ({} links on the request's literal gate), {} unconditional, {} on TX alone; {} skipped",
            self.counts[0],
            self.counts[1],
            self.literal_rules,
            self.program.gate.slots,
            total - self.literal_rules - self.control_rules,
            self.control_rules,
            self.program.skipped.len() + self.program.response_rules,
        );
        let _ = write!(s, " ({} response-phase rules", self.program.response_rules);
        for sk in &self.program.skipped {
            let _ = write!(s, "; {}: {}", sk.id, sk.reason);
        }
        let _ = write!(s, "), loaded in {:.0?}", self.load_time);
        s
    }

    /// Runs both request phases over `req`; `excluded(id)`: rules the WAF's
    /// `exclude` turns off for this request.
    pub fn evaluate(&self, req: &Request<'_>, excluded: &dyn Fn(u32) -> bool) -> Outcome {
        eval::evaluate(&self.program, &self.blocking, req, excluded)
    }
}

#[cfg(test)]
mod tests;
