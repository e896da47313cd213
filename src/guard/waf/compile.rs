//! `[waf.NAME]` → [`Waf`]: loads the rule directory and checks the settings, with
//! errors naming the config's file, line and field (and, for a rule, the rule
//! file, its line and the rule id).

use std::sync::Arc;

use super::ipset::IpSet;
use super::{rules, Waf};
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
    let oversize_block = match w.oversize.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("inspect") => false,
        Some("block") => true,
        Some(other) => {
            let m = w.oversize.as_ref().expect("present");
            return Err(source.error_at(
                m.span(),
                &field("oversize"),
                format!("expected \"inspect\" or \"block\", not {other:?}"),
            ));
        }
    };
    if !(1..=4).contains(&w.paranoia) {
        return Err(source.error_at(w.rules.span(), &field("paranoia"), "paranoia must be 1..4"));
    }
    let dir = source.dir().join(w.rules.get_ref());
    let rules = rules::load(&dir, w.paranoia)
        .map_err(|e| source.error_at(w.rules.span(), &field("rules"), e))?;
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
        ip_deny: IpSet::new(&w.ip_deny),
        ip_allow: IpSet::new(&w.ip_allow),
        rate,
        exclude: w
            .exclude
            .iter()
            .map(|e| (e.rule, e.path.clone(), e.route.clone()))
            .collect(),
        inspect_body: w.inspect_body.0.min(16 << 20),
        oversize_block,
    })
}
