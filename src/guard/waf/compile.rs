//! `[waf.NAME]` → [`Waf`]: loads the rule directory and checks the settings, with
//! errors naming the config's file, line and field (and, for a rule, the rule
//! file, its line and the rule id).

use std::sync::Arc;

use super::ipset::IpSet;
use super::{crs, rules, Oversize, Waf};
use crate::config::{ConfigError, Source, WafConfig};
use crate::limit::Policy;

pub fn compile(name: &str, w: &WafConfig, source: &Source) -> Result<Waf, ConfigError> {
    let field = |f: &str| format!("waf.{name}.{f}");
    let block_mode = match w.mode.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("block") => true,
        Some("count") => false,
        Some(other) => {
            let m = w.mode.as_ref().expect("present");
            return Err(source.error_at(
                m.span(),
                &field("mode"),
                format!("expected \"block\" or \"count\", not {other:?}"),
            ));
        }
    };
    let oversize = match w.oversize.as_ref().map(|m| m.get_ref().as_str()) {
        // "inspect" and "block" are the names of earlier releases.
        None | Some("continue") | Some("inspect") => Oversize::Continue,
        Some("match") | Some("block") => Oversize::Match,
        Some("no_match") => Oversize::NoMatch,
        Some(other) => {
            let m = w.oversize.as_ref().expect("present");
            return Err(source.error_at(
                m.span(),
                &field("oversize"),
                format!("expected \"continue\", \"match\" or \"no_match\", not {other:?}"),
            ));
        }
    };
    let paranoia = w.paranoia.as_ref().map(|p| *p.get_ref());
    if let Some(p) = &w.paranoia {
        if !(1..=4).contains(p.get_ref()) {
            return Err(source.error_at(p.span(), &field("paranoia"), "paranoia must be 1..4"));
        }
    }
    if w.rules.is_none() && w.crs.is_none() {
        let at = source.text.find(&format!("[waf.{name}]")).unwrap_or(0);
        return Err(source.error_at(
            at..at,
            &field("rules"),
            "a WAF needs native rules (`rules = \"DIR\"`), the CRS (`crs = \"DIR\"`) or both",
        ));
    }
    let rules = match &w.rules {
        Some(r) => rules::load(&source.dir().join(r.get_ref()), paranoia.unwrap_or(1))
            .map_err(|e| source.error_at(r.span(), &field("rules"), e))?,
        None => rules::compile(&[], 1).expect("an empty rule set compiles"),
    };
    if let (Some(s), None) = (&w.crs_setup, &w.crs) {
        return Err(source.error_at(s.span(), &field("crs_setup"), "crs_setup needs crs"));
    }
    let crs = match &w.crs {
        Some(dir) => {
            let setup = w
                .crs_setup
                .as_ref()
                .map(|s| (source.dir().join(s.get_ref()), s.span()));
            let loaded = crs::load(
                &source.dir().join(dir.get_ref()),
                setup.as_ref().map(|(p, _)| p.as_path()),
                paranoia,
            );
            Some(Arc::new(loaded.map_err(|e| {
                // Errors in the setup file point at crs_setup, the rest at crs.
                let in_setup = setup
                    .as_ref()
                    .is_some_and(|(p, _)| e.starts_with(&p.display().to_string()));
                match (&setup, in_setup) {
                    (Some((_, span)), true) => {
                        source.error_at(span.clone(), &field("crs_setup"), e)
                    }
                    _ => source.error_at(dir.span(), &field("crs"), e),
                }
            })?))
        }
        None => None,
    };
    let rate = match &w.rate_based {
        Some(r) => {
            let limit = *r.limit.get_ref();
            let window = r.window.0;
            if limit == 0 || window.is_zero() {
                return Err(source.error_at(
                    r.limit.span(),
                    &field("rate_based"),
                    "limit and window must be positive",
                ));
            }
            Some((
                Policy {
                    rate: limit as f64 / window.as_secs_f64(),
                    burst: limit as f64,
                },
                window,
            ))
        }
        None => None,
    };
    Ok(Waf {
        name: Arc::from(name),
        block_mode,
        threshold: w.anomaly_threshold.max(1),
        rules,
        crs,
        ip_deny: IpSet::new(&w.ip_deny),
        ip_allow: IpSet::new(&w.ip_allow),
        rate,
        exclude: w
            .exclude
            .iter()
            .map(|e| (e.rule, e.path.clone(), e.route.clone()))
            .collect(),
        inspect_body: w.inspect_body.0.min(16 << 20),
        oversize,
    })
}
