use super::*;

fn lits(set: Option<Vec<Vec<u8>>>) -> Option<Vec<String>> {
    set.map(|s| {
        let mut v: Vec<String> = s
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        v.sort();
        v
    })
}

#[test]
fn keywords_of_an_alternation() {
    assert_eq!(
        lits(required_linear(r"(?i)\b(?:union|select)\s+\w+")),
        Some(vec!["select".into(), "union".into()])
    );
}

#[test]
fn the_cheapest_part_of_a_concatenation() {
    // "from" beats the one-byte class.
    assert_eq!(
        lits(required_linear(r"[;|]\s*from\b")),
        Some(vec!["from".into()])
    );
}

#[test]
fn optional_parts_require_nothing() {
    assert_eq!(lits(required_linear(r"(?:abc)?\w+")), None);
    assert_eq!(lits(required_linear(r"^.*$")), None);
    assert_eq!(lits(required_linear(r"abc|.*")), None);
}

#[test]
fn small_classes_are_one_byte_literals() {
    assert_eq!(
        lits(required_linear(r"[<>]")),
        Some(vec!["<".into(), ">".into()])
    );
}

#[test]
fn lookaround_is_neutral() {
    assert_eq!(
        lits(required_backtracking(r"(?sm)(?<!\w)eval(?=\s*\()")),
        Some(vec!["eval".into()])
    );
    assert_eq!(lits(required_backtracking(r"(?sm)(\w)\1")), None);
}

/// The contract: whatever the pattern matches contains a required literal.
#[test]
fn every_match_holds_a_literal() {
    let patterns = [
        r"(?i)(?:;|\{|\||\|\||&|&&|\n|\r|\$\(|\$\(\(|`|\$\{|<\(|>\(|\(\s*\))\s*(?:\{|\s*\(\s*|\w+=(?:[^\s]*|\$.*|\$.*|<.*|>.*|'.*'|\x22.*\x22)\s+|!\s*|\$)*\s*(?:'|\x22)*(?:[\?\*\[\]\(\)\-\|+\w'\x22\./\\]+/)?[\\'\x22]*(?:l[\\'\x22]*(?:s))",
        r"(?i:sleep\(\s*?\d*?\s*?\)|benchmark\(.*?\,.*?\))",
        r"(?:get|post|head)\s+[^\s]+\s+http/\d",
        r"\+ADw-.*(?:\+AD4-|>)|<.*\+AD4-",
    ];
    let texts = [
        "a; ls",
        "SLEEP(5)",
        "benchmark(1,2)",
        "GET /x HTTP/1",
        "+ADw-x+AD4-",
        "<b+AD4-",
        "x&&ls",
        "`ls",
    ];
    for p in patterns {
        let re = regex::bytes::RegexBuilder::new(p)
            .unicode(false)
            .build()
            .unwrap();
        let set = required_linear(p).expect(p);
        let ac = automaton(&set).unwrap();
        for t in texts {
            if re.is_match(t.as_bytes()) {
                assert!(
                    ac.is_match(t),
                    "{p} matches {t:?} but no literal of {set:?} does"
                );
            }
        }
    }
}
