//! Unit tests of `waf`.

use std::borrow::Cow;
use std::path::PathBuf;

use super::*;

/// Rules 1, 2 and 4 share a regex (one compiled regex, one `regex_id`);
/// 1 and 4 look at the query through different chains, 2 at the body;
/// rule 3 has the same literal and its own regex.
const RULES: &str = r#"
[[rule]]
id = 1
description = "query"
category = "test"
targets = ["query"]
transforms = ["url_decode", "lowercase"]
any = ["cat"]
regex = '[;|]\s*cat\b'
score = 5

[[rule]]
id = 2
description = "body, other chain"
category = "test"
targets = ["body"]
transforms = ["lowercase"]
any = ["cat"]
regex = '[;|]\s*cat\b'
score = 5

[[rule]]
id = 3
description = "any cat"
category = "test"
targets = ["query", "body"]
transforms = ["lowercase"]
any = ["cat"]
regex = 'cat'
score = 1

[[rule]]
id = 4
description = "query, no decoding"
category = "test"
targets = ["query"]
transforms = ["lowercase"]
any = ["cat"]
regex = '[;|]\s*cat\b'
score = 5
"#;

fn waf() -> Waf {
    let rules = rules::compile(&[(PathBuf::from("t.toml"), RULES.into())], 1).unwrap();
    Waf::blocking("t", rules)
}

fn part(target: Target, value: &'static str) -> Part<'static> {
    Part {
        target,
        name: Cow::Borrowed(b"p"),
        value: Cow::Borrowed(value.as_bytes()),
    }
}

/// (rule id, part index) per hit.
fn hits(waf: &Waf, parts: &[Part<'_>]) -> Vec<(u32, usize)> {
    let state = WafState::default();
    let scan = waf.scan(parts, &state, |_| false);
    let mut v: Vec<_> = scan
        .hits
        .iter()
        .map(|h| (waf.rules.rules[h.rule].id, h.part))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn rules_sharing_a_regex_share_one_and_reuse_its_result_per_value() {
    let waf = waf();
    let ids: Vec<usize> = waf.rules.rules.iter().map(|r| r.regex_id).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[3]);
    assert_ne!(ids[0], ids[2]);
    // The shared regex matches the query value only: each rule is
    // confirmed on its own part, not on another part's result.
    let parts = [
        part(Target::Body, "Cat food"),
        part(Target::Query, "x; CAT"),
    ];
    assert_eq!(hits(&waf, &parts), vec![(1, 1), (3, 0), (4, 1)]);
    let parts = [
        part(Target::Query, "Cat food"),
        part(Target::Body, "x| cat"),
    ];
    assert_eq!(hits(&waf, &parts), vec![(2, 1), (3, 0)]);
    // Through the full transforms (an escape), per chain: decoded for
    // rule 1, not for rules 2 and 4, on the same part.
    let parts = [
        part(Target::Query, "x%3b cat"),
        part(Target::Body, "x%3b cat"),
    ];
    assert_eq!(hits(&waf, &parts), vec![(1, 0), (3, 0)]);
}
