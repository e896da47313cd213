use super::*;

// ---------------------------------------------------------------------------
// Helpers.

fn all(text: &str) -> Vec<Directive> {
    parse(text).unwrap_or_else(|e| panic!("{e}\n--- input ---\n{text}"))
}

fn one(text: &str) -> DirectiveKind {
    let mut d = all(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    d.remove(0).kind
}

fn rule(text: &str) -> RuleDecl {
    match one(text) {
        DirectiveKind::Rule(r) => r,
        other => panic!("not a rule: {other:?}"),
    }
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(d) => panic!("parsed, expected an error: {d:#?}"),
        Err(e) => e,
    }
}

fn var(collection: &str) -> VarSpec {
    VarSpec {
        count: false,
        exclude: false,
        collection: collection.to_string(),
        selector: None,
    }
}

fn named(collection: &str, name: &str) -> VarSpec {
    VarSpec {
        selector: Some(Selector::Name(name.to_string())),
        ..var(collection)
    }
}

fn regex(collection: &str, re: &str) -> VarSpec {
    VarSpec {
        selector: Some(Selector::Regex(re.to_string())),
        ..var(collection)
    }
}

fn not(v: VarSpec) -> VarSpec {
    VarSpec { exclude: true, ..v }
}

fn count(v: VarSpec) -> VarSpec {
    VarSpec { count: true, ..v }
}

fn op(negated: bool, name: &str, arg: &str) -> OperatorDecl {
    OperatorDecl {
        negated,
        name: name.to_string(),
        arg: arg.to_string(),
    }
}

fn act(name: &str, arg: &str) -> Action {
    Action {
        name: name.to_string(),
        arg: Some(arg.to_string()),
    }
}

fn flag(name: &str) -> Action {
    Action {
        name: name.to_string(),
        arg: None,
    }
}

fn ids(pairs: &[(u32, u32)]) -> Vec<IdRange> {
    pairs
        .iter()
        .map(|&(first, last)| IdRange { first, last })
        .collect()
}

fn at(e: &ParseError) -> (u32, u32) {
    (e.line, e.column)
}

// ---------------------------------------------------------------------------
// Rules.

#[test]
fn simple_rule() {
    let d = all(r#"SecRule ARGS "@rx foo" "id:1,phase:2,deny""#);
    assert_eq!(
        d,
        vec![Directive {
            line: 1,
            kind: DirectiveKind::Rule(RuleDecl {
                targets: vec![var("ARGS")],
                operator: op(false, "rx", "foo"),
                actions: vec![act("id", "1"), act("phase", "2"), flag("deny")],
            }),
        }]
    );
}

#[test]
fn rule_without_actions() {
    assert_eq!(
        rule(r#"SecRule REQUEST_URI "@contains #""#),
        RuleDecl {
            targets: vec![var("REQUEST_URI")],
            operator: op(false, "contains", "#"),
            actions: vec![],
        }
    );
}

#[test]
fn continuation_lines_and_line_numbers() {
    let text = "\n# comment\n\nSecRule REQUEST_METHOD \"@rx ^(?:GET|HEAD)$\" \\\n    \"id:920170,\\\n    phase:1,\\\n    chain\"\n    SecRule &REQUEST_HEADERS:Content-Length \"!@eq 0\" \\\n        \"t:none\"\nSecMarker END\n";
    let d = all(text);
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].line, 4);
    assert_eq!(d[1].line, 8);
    assert_eq!(d[2].line, 10);
    assert_eq!(
        d[0].kind,
        DirectiveKind::Rule(RuleDecl {
            targets: vec![var("REQUEST_METHOD")],
            operator: op(false, "rx", "^(?:GET|HEAD)$"),
            actions: vec![act("id", "920170"), act("phase", "1"), flag("chain")],
        })
    );
    assert_eq!(
        d[1].kind,
        DirectiveKind::Rule(RuleDecl {
            targets: vec![count(named("REQUEST_HEADERS", "Content-Length"))],
            operator: op(true, "eq", "0"),
            actions: vec![act("t", "none")],
        })
    );
    assert_eq!(d[2].kind, DirectiveKind::Marker("END".into()));
}

#[test]
fn continuation_keeps_the_next_lines_indentation() {
    // Apache drops only the backslash and the newline.
    assert_eq!(
        rule("SecRule ARGS \"@pm a\\\n  b\" \"id:1\"").operator,
        op(false, "pm", "a  b")
    );
}

#[test]
fn crlf_line_endings() {
    let d = all("SecRule ARGS \"@rx a\" \\\r\n    \"id:1,\\\r\n    pass\"\r\nSecMarker X\r\n");
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].line, 4);
    assert_eq!(
        d[0].kind,
        DirectiveKind::Rule(RuleDecl {
            targets: vec![var("ARGS")],
            operator: op(false, "rx", "a"),
            actions: vec![act("id", "1"), flag("pass")],
        })
    );
}

#[test]
fn comments() {
    let text = "# SecRule ARGS \"@rx a\" \"id:1\"\n   \t# indented comment\n#SecAction \\\n#  \"id:900000,\\\n#   pass\"\nSecMarker A\n";
    assert_eq!(
        all(text),
        vec![Directive {
            line: 6,
            kind: DirectiveKind::Marker("A".into()),
        }]
    );
}

#[test]
fn comment_ending_in_backslash_swallows_the_next_line() {
    assert_eq!(all("# note \\\nSecMarker A\nSecMarker B"), {
        vec![Directive {
            line: 3,
            kind: DirectiveKind::Marker("B".into()),
        }]
    });
}

#[test]
fn hash_inside_a_line_is_not_a_comment() {
    assert_eq!(
        rule(r#"SecRule REQUEST_URI_RAW "@rx [#]" "id:1,msg:'a # b'""#),
        RuleDecl {
            targets: vec![var("REQUEST_URI_RAW")],
            operator: op(false, "rx", "[#]"),
            actions: vec![act("id", "1"), act("msg", "a # b")],
        }
    );
}

#[test]
fn quoted_argument_escapes() {
    // `\"` is a quote, every other backslash stays: `\d`, `\.`, `\\`, `\'`.
    let r = rule(r#"SecRule ARGS "@rx ^\d+\.\\[\"\'x]$" "id:1""#);
    assert_eq!(r.operator, op(false, "rx", r#"^\d+\.\\["\'x]$"#));
    // `\\` before the closing quote does not escape it.
    let r = rule(r#"SecRule ARGS "@rx a\\" "id:1""#);
    assert_eq!(r.operator, op(false, "rx", r"a\\"));
}

#[test]
fn operators() {
    let cases = [
        (r#""!@rx ^0?$""#, op(true, "rx", "^0?$")),
        (r#""@detectSQLi""#, op(false, "detectsqli", "")),
        (
            r#""@pmFromFile lfi-os-files.data""#,
            op(false, "pmfromfile", "lfi-os-files.data"),
        ),
        (
            r#""@within HTTP/2 HTTP/2.0""#,
            op(false, "within", "HTTP/2 HTTP/2.0"),
        ),
        (
            r#""@validateByteRange 1-255""#,
            op(false, "validatebyterange", "1-255"),
        ),
        (r#""@lt %{tx.1}""#, op(false, "lt", "%{tx.1}")),
        // No `@name`: a regex.
        (r#""^(?i)up""#, op(false, "rx", "^(?i)up")),
        (r#""!^$""#, op(true, "rx", "^$")),
        (r#""""#, op(false, "rx", "")),
        // Bare operator argument.
        ("@detectXSS", op(false, "detectxss", "")),
        // Blanks after `!` and after the name are skipped, trailing ones kept.
        (r#""! @eq   0 ""#, op(true, "eq", "0 ")),
    ];
    for (text, expected) in cases {
        let r = rule(&format!("SecRule ARGS {text} \"id:1\""));
        assert_eq!(r.operator, expected, "{text}");
    }
}

// ---------------------------------------------------------------------------
// Variables.

#[test]
fn variable_lists() {
    let r = rule(concat!(
        "SecRule REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|REQUEST_COOKIES_NAMES|ARGS_NAMES|ARGS|XML:/*",
        " \"@rx x\" \"id:1\""
    ));
    assert_eq!(
        r.targets,
        vec![
            var("REQUEST_COOKIES"),
            not(regex("REQUEST_COOKIES", "__utm")),
            var("REQUEST_COOKIES_NAMES"),
            var("ARGS_NAMES"),
            var("ARGS"),
            named("XML", "/*"),
        ]
    );
}

#[test]
fn variables_one_by_one() {
    let cases = [
        ("&TX:foo", count(named("TX", "foo"))),
        (
            "REQUEST_HEADERS:Content-Type",
            named("REQUEST_HEADERS", "Content-Type"),
        ),
        (
            "REQUEST_HEADERS:User-Agent",
            named("REQUEST_HEADERS", "User-Agent"),
        ),
        ("TX:0", named("TX", "0")),
        ("ARGS:'/^id$/'", regex("ARGS", "^id$")),
        ("ARGS:'foo'", named("ARGS", "foo")),
        ("TX:/^HEADER_NAME_/", regex("TX", "^HEADER_NAME_")),
        (
            "REQUEST_COOKIES:/S?DW[a-f0-9]+/",
            regex("REQUEST_COOKIES", "S?DW[a-f0-9]+"),
        ),
        ("XML://@*", named("XML", "//@*")),
        ("XML:'/*'", named("XML", "/*")),
        (
            "ARGS:account[pass][pass1]",
            named("ARGS", "account[pass][pass1]"),
        ),
        // Collection names are upper-cased, selectors keep their case.
        ("args:Foo", named("ARGS", "Foo")),
        ("!&ARGS", not(count(var("ARGS")))),
        // A '/' that does not close a regex at the end of the variable.
        ("ARGS:/path", named("ARGS", "/path")),
        // CRS 3.3 RESPONSE-980: quoted regex, backslashes kept as written.
        (
            r"&TX:'/LEAKAGE\\\/ERRORS/'",
            count(regex("TX", r"LEAKAGE\\\/ERRORS")),
        ),
    ];
    for (text, expected) in cases {
        let r = rule(&format!("SecRule {text} \"@rx x\" \"id:1\""));
        assert_eq!(r.targets, vec![expected], "{text}");
    }
}

#[test]
fn pipe_inside_a_regex_or_quoted_selector_does_not_split() {
    let r = rule(r#"SecRule ARGS:/^(?:a|b)$/|ARGS_NAMES|TX:'x|y'|TX:/a\/b|c/ "@rx x" "id:1""#);
    assert_eq!(
        r.targets,
        vec![
            regex("ARGS", "^(?:a|b)$"),
            var("ARGS_NAMES"),
            named("TX", "x|y"),
            regex("TX", r"a\/b|c"),
        ]
    );
    // The first unescaped '/' closes the regex; if it does not end the
    // variable, the selector is a name up to the next '|'.
    let r = rule(r#"SecRule ARGS:/a|ARGS:/b/ "@rx x" "id:1""#);
    assert_eq!(r.targets, vec![named("ARGS", "/a"), regex("ARGS", "b")]);
}

#[test]
fn quoted_variable_list() {
    let r = rule(r#"SecRule "ARGS|ARGS_NAMES" "@rx x" "id:1""#);
    assert_eq!(r.targets, vec![var("ARGS"), var("ARGS_NAMES")]);
}

// ---------------------------------------------------------------------------
// Actions.

#[test]
fn actions() {
    let r = rule(concat!(
        r#"SecRule ARGS "@rx x" "id:942100, phase:2,block,capture,"#,
        r#"t:none,t:urlDecodeUni,msg:'SQL Injection, detected',"#,
        r#"logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}',"#,
        r#"tag:'OWASP_CRS',tag:paranoia-level/1,ver:'OWASP_CRS/3.3.4',severity:'CRITICAL',"#,
        r#"setvar:'tx.sql_injection_score=+%{tx.critical_anomaly_score}',"#,
        r#"setvar:tx.x=%{tx.y},"#,
        r#"ctl:ruleRemoveTargetById=942450;REQUEST_COOKIES_NAMES,"#,
        r#"ctl:ruleRemoveTargetByTag=OWASP_CRS;ARGS:account[pass][pass1],"#,
        r#"skipAfter:END-REQUEST-942,multiMatch,chain""#
    ));
    assert_eq!(
        r.actions,
        vec![
            act("id", "942100"),
            act("phase", "2"),
            flag("block"),
            flag("capture"),
            act("t", "none"),
            act("t", "urlDecodeUni"),
            act("msg", "SQL Injection, detected"),
            act(
                "logdata",
                "Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}"
            ),
            act("tag", "OWASP_CRS"),
            act("tag", "paranoia-level/1"),
            act("ver", "OWASP_CRS/3.3.4"),
            act("severity", "CRITICAL"),
            act(
                "setvar",
                "tx.sql_injection_score=+%{tx.critical_anomaly_score}"
            ),
            act("setvar", "tx.x=%{tx.y}"),
            act("ctl", "ruleRemoveTargetById=942450;REQUEST_COOKIES_NAMES"),
            act(
                "ctl",
                "ruleRemoveTargetByTag=OWASP_CRS;ARGS:account[pass][pass1]"
            ),
            act("skipafter", "END-REQUEST-942"),
            flag("multimatch"),
            flag("chain"),
        ]
    );
}

#[test]
fn action_quote_escapes() {
    let r = rule(concat!(
        r#"SecRule ARGS "@rx x" "msg:'prefix \'UP\' to User-Agent',"#,
        r#"msg:'a \\',msg:'\d',msg:'',id:'5',msg:it's""#
    ));
    assert_eq!(
        r.actions,
        vec![
            act("msg", "prefix 'UP' to User-Agent"),
            act("msg", r"a \\"),
            act("msg", r"\d"),
            act("msg", ""),
            act("id", "5"),
            act("msg", "it's"),
        ]
    );
}

#[test]
fn action_escaped_double_quote_inside_single_quotes() {
    // CRS 4 942220: `\"` inside the double-quoted argument is a quote.
    let r = rule(r#"SecRule ARGS "@rx x" "id:1,msg:'the \"magic number\" crash'""#);
    assert_eq!(
        r.actions,
        vec![act("id", "1"), act("msg", r#"the "magic number" crash"#)]
    );
}

#[test]
fn empty_and_trailing_comma_actions() {
    assert_eq!(rule(r#"SecRule ARGS "@rx x" """#).actions, vec![]);
    assert_eq!(
        rule(r#"SecRule ARGS "@rx x" " id:1 , pass , ""#).actions,
        vec![act("id", "1"), flag("pass")]
    );
}

// ---------------------------------------------------------------------------
// Other directives.

#[test]
fn sec_action_and_default_action() {
    let d = all(concat!(
        "SecAction \\\n  \"id:900000,\\\n   phase:1,\\\n   nolog,\\\n   pass,\\\n   t:none,\\\n   setvar:tx.paranoia_level=1\"\n",
        "SecDefaultAction \"phase:1,log,auditlog,pass\"\n",
    ));
    assert_eq!(
        d,
        vec![
            Directive {
                line: 1,
                kind: DirectiveKind::Action(vec![
                    act("id", "900000"),
                    act("phase", "1"),
                    flag("nolog"),
                    flag("pass"),
                    act("t", "none"),
                    act("setvar", "tx.paranoia_level=1"),
                ]),
            },
            Directive {
                line: 8,
                kind: DirectiveKind::DefaultAction(vec![
                    act("phase", "1"),
                    flag("log"),
                    flag("auditlog"),
                    flag("pass"),
                ]),
            },
        ]
    );
}

#[test]
fn markers() {
    assert_eq!(
        one(r#"SecMarker "END-HOST-CHECK""#),
        DirectiveKind::Marker("END-HOST-CHECK".into())
    );
    assert_eq!(
        one("SecMarker END-REQUEST-910-IP-REPUTATION"),
        DirectiveKind::Marker("END-REQUEST-910-IP-REPUTATION".into())
    );
}

#[test]
fn remove_directives() {
    assert_eq!(
        one("SecRuleRemoveById 1 2 100-200"),
        DirectiveKind::RemoveById(ids(&[(1, 1), (2, 2), (100, 200)]))
    );
    assert_eq!(
        one(r#"SecRuleRemoveById 942100,942110 "9000-9010""#),
        DirectiveKind::RemoveById(ids(&[(942100, 942100), (942110, 942110), (9000, 9010)]))
    );
    assert_eq!(
        one(r#"SecRuleRemoveByTag "attack-injection-php""#),
        DirectiveKind::RemoveByTag("attack-injection-php".into())
    );
    assert_eq!(
        one(r#"SecRuleRemoveByMsg "^SQL Injection.*$""#),
        DirectiveKind::RemoveByMsg("^SQL Injection.*$".into())
    );
}

#[test]
fn update_target_directives() {
    assert_eq!(
        one(r#"SecRuleUpdateTargetById 942100 "!ARGS:password|!REQUEST_COOKIES:/^sess/""#),
        DirectiveKind::UpdateTargetById {
            ids: ids(&[(942100, 942100)]),
            targets: vec![
                not(named("ARGS", "password")),
                not(regex("REQUEST_COOKIES", "^sess")),
            ],
            replace: None,
        }
    );
    assert_eq!(
        one("SecRuleUpdateTargetById 958000-958100 ARGS:foo REQUEST_URI"),
        DirectiveKind::UpdateTargetById {
            ids: ids(&[(958000, 958100)]),
            targets: vec![named("ARGS", "foo")],
            replace: Some(var("REQUEST_URI")),
        }
    );
    assert_eq!(
        one(r#"SecRuleUpdateTargetByTag "attack-sqli" "!ARGS:foo""#),
        DirectiveKind::UpdateTargetByTag {
            tag: "attack-sqli".into(),
            targets: vec![not(named("ARGS", "foo"))],
            replace: None,
        }
    );
    assert_eq!(
        one(r#"SecRuleUpdateTargetByMsg "System Command Injection" "!ARGS:foo""#),
        DirectiveKind::UpdateTargetByMsg {
            msg: "System Command Injection".into(),
            targets: vec![not(named("ARGS", "foo"))],
            replace: None,
        }
    );
}

#[test]
fn update_action_by_id() {
    assert_eq!(
        one(r#"SecRuleUpdateActionById 949110 "t:none,deny,status:403""#),
        DirectiveKind::UpdateActionById {
            id: 949110,
            chain_offset: None,
            actions: vec![act("t", "none"), flag("deny"), act("status", "403")],
        }
    );
    assert_eq!(
        one(r#"SecRuleUpdateActionById 900:2 "t:lowercase""#),
        DirectiveKind::UpdateActionById {
            id: 900,
            chain_offset: Some(2),
            actions: vec![act("t", "lowercase")],
        }
    );
}

#[test]
fn other_directives() {
    let d = all(concat!(
        "SecComponentSignature \"OWASP_CRS/3.3.4\"\n",
        "SecRuleEngine On\n",
        "SecRequestBodyAccess On\n",
        "Include /etc/modsecurity/crs/crs-setup.conf\n",
        "SecCollectionTimeout 600\n",
        "SecAuditLogParts ABIJDEFHZ\n",
    ));
    let other = |name: &str, args: &[&str]| DirectiveKind::Other {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
    };
    let kinds: Vec<_> = d.into_iter().map(|d| (d.line, d.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, other("SecComponentSignature", &["OWASP_CRS/3.3.4"])),
            (2, other("SecRuleEngine", &["On"])),
            (3, other("SecRequestBodyAccess", &["On"])),
            (
                4,
                other("Include", &["/etc/modsecurity/crs/crs-setup.conf"])
            ),
            (5, other("SecCollectionTimeout", &["600"])),
            (6, other("SecAuditLogParts", &["ABIJDEFHZ"])),
        ]
    );
}

#[test]
fn directive_names_are_case_insensitive() {
    let d = all(
        "secrule ARGS \"@rx a\" \"id:1\"\nSECMARKER A\nsecAction \"id:2\"\nSecRuleRemoveByID 3",
    );
    assert!(matches!(d[0].kind, DirectiveKind::Rule(_)));
    assert_eq!(d[1].kind, DirectiveKind::Marker("A".into()));
    assert_eq!(d[2].kind, DirectiveKind::Action(vec![act("id", "2")]));
    assert_eq!(d[3].kind, DirectiveKind::RemoveById(ids(&[(3, 3)])));
}

#[test]
fn byte_order_mark_and_blank_input() {
    assert_eq!(all(""), vec![]);
    assert_eq!(all("\n\n  \t\n"), vec![]);
    assert_eq!(
        one("\u{feff}SecMarker A"),
        DirectiveKind::Marker("A".into())
    );
}

// ---------------------------------------------------------------------------
// Errors.

#[test]
fn error_unterminated_double_quote() {
    let e = err("SecMarker A\n\nSecRule ARGS \"@rx foo\" \"id:1\n");
    // The third quote opens an argument that never closes.
    assert_eq!(at(&e), (3, 24), "{e}");
    assert!(e.message.contains("unterminated quoted argument"), "{e}");

    // A quote that spans continued lines points at where it opened.
    let e = err("SecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    pass\n");
    assert_eq!(at(&e), (2, 5), "{e}");
}

#[test]
fn error_unterminated_single_quote() {
    let e = err("SecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    msg:'oops,\\\n    pass\"");
    assert_eq!(at(&e), (3, 9), "{e}");
    assert!(
        e.message
            .contains("unterminated quoted value of action 'msg'"),
        "{e}"
    );

    let e = err("SecRule ARGS:'foo \"@rx a\"");
    assert_eq!(at(&e), (1, 14), "{e}");
    assert!(e.message.contains("unterminated quoted selector"), "{e}");
}

#[test]
fn error_unknown_syntax() {
    let e = err("SecMarker A\n  @rx foo\n");
    assert_eq!(at(&e), (2, 3), "{e}");
    assert_eq!(e.message, "expected a directive name, found '@rx'");

    let e = err("<IfModule security2_module>");
    assert_eq!(at(&e), (1, 1), "{e}");

    let e = err(r#""SecRule" ARGS "@rx a""#);
    assert_eq!(at(&e), (1, 1), "{e}");

    // A trailing comment is not SecLang.
    let e = err("SecMarker A # end");
    assert_eq!(at(&e), (1, 13), "{e}");
    assert!(e.message.contains("extra argument"), "{e}");
}

#[test]
fn error_empty_variable_list() {
    let e = err("\nSecRule \"\" \"@rx a\" \"id:1\"");
    assert_eq!(at(&e), (2, 9), "{e}");
    assert_eq!(e.message, "empty variable list");

    let e = err("SecRule ARGS||ARGS_NAMES \"@rx a\"");
    assert_eq!(at(&e), (1, 14), "{e}");
    assert_eq!(e.message, "empty variable in the variable list");

    let e = err("SecRule ARGS| \"@rx a\"");
    assert_eq!(at(&e), (1, 14), "{e}");
}

#[test]
fn error_wrong_argument_counts() {
    let e = err("SecRule ARGS");
    assert_eq!(at(&e), (1, 1), "{e}");
    assert!(e.message.starts_with("SecRule needs"), "{e}");

    let e = err(r#"SecRule ARGS "@rx a" "id:1" extra"#);
    assert_eq!(at(&e), (1, 29), "{e}");

    let e = err("SecAction");
    assert_eq!(at(&e), (1, 1), "{e}");
}

#[test]
fn error_positions_inside_arguments() {
    // Missing comma between actions, on a continued line.
    let e = err("SecRule ARGS \"@rx a\" \\\n    \"id:1,\\\n    msg:hello world\"");
    assert_eq!(at(&e), (3, 15), "{e}");
    assert_eq!(e.message, "expected ',' after action 'msg', found 'w'");

    let e = err(r#"SecRule ARGS "@rx a" "id:1,,pass""#);
    assert_eq!(at(&e), (1, 28), "{e}");

    let e = err(r#"SecRule AR-GS "@rx a""#);
    assert_eq!(at(&e), (1, 11), "{e}");

    let e = err(r#"SecRule ARGS:'a'b "@rx a""#);
    assert_eq!(at(&e), (1, 17), "{e}");

    let e = err(r#"SecRule ARGS "@ a""#);
    assert_eq!(at(&e), (1, 15), "{e}");
    assert_eq!(e.message, "missing operator name after '@'");

    // After an escaped quote, columns still count source characters.
    let e = err(r#"SecRule ARGS "@rx \"" "id:1,msg:'x'y""#);
    assert_eq!(at(&e), (1, 36), "{e}");

    let e = err(r#"SecRule ARGS "@rx a"x"#);
    assert_eq!(at(&e), (1, 21), "{e}");

    // Non-ASCII text before the error: columns are characters, not bytes.
    let e = err("SecRule ARGS \"@rx é\" \"msg:'ü' x\"");
    assert_eq!(at(&e), (1, 31), "{e}");
}

#[test]
fn error_bad_ids() {
    let e = err("SecRuleRemoveById 1 abc");
    assert_eq!(at(&e), (1, 21), "{e}");
    assert_eq!(e.message, "invalid rule id 'abc'");

    let e = err("SecRuleRemoveById 10-5");
    assert_eq!(at(&e), (1, 19), "{e}");

    let e = err("SecRuleRemoveById 99999999999");
    assert!(e.message.contains("out of range"), "{e}");

    let e = err(r#"SecRuleUpdateActionById 900:x "pass""#);
    assert_eq!(at(&e), (1, 29), "{e}");

    let e = err(r#"SecRuleUpdateTargetById 1 ARGS "ARGS|ARGS_NAMES""#);
    assert_eq!(at(&e), (1, 32), "{e}");
}

// ---------------------------------------------------------------------------
// Real rule files.

/// Checks a whole CRS file: it parses, it has as many `SecRule`s as
/// `grep -cE '^\s*SecRule '` counts, each directive's line is where its name
/// is, and every `id:` is numeric. Returns the ids of rules and actions.
fn check_crs_file(name: &str, text: &str) -> Vec<u32> {
    let directives = parse(text).unwrap_or_else(|e| panic!("{name}:{e}"));
    let lines: Vec<&str> = text.lines().collect();
    let grep_count = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("SecRule "))
        .count();
    let rules = directives
        .iter()
        .filter(|d| matches!(d.kind, DirectiveKind::Rule(_)))
        .count();
    assert_eq!(rules, grep_count, "{name}: SecRule count");

    let mut found = Vec::new();
    for d in &directives {
        let line = lines[d.line as usize - 1].trim_start();
        assert!(line.starts_with("Sec"), "{name}:{}: {line}", d.line);
        let actions = match &d.kind {
            DirectiveKind::Rule(r) => {
                assert!(line.starts_with("SecRule "), "{name}:{}", d.line);
                assert!(!r.targets.is_empty());
                &r.actions
            }
            DirectiveKind::Action(a) | DirectiveKind::DefaultAction(a) => a,
            _ => continue,
        };
        for a in actions.iter().filter(|a| a.name == "id") {
            let id = a.arg.as_deref().unwrap_or("");
            let id: u32 = id
                .parse()
                .unwrap_or_else(|_| panic!("{name}:{}: id {id:?}", d.line));
            found.push(id);
        }
    }
    found
}

fn crs_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let dirs = [
        "/usr/share/modsecurity-crs/rules",
        "/usr/share/modsecurity-crs",
        // crs-setup.conf and the two exclusion-rule templates.
        "/etc/modsecurity/crs",
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_file() && file_name.contains(".conf") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn installed_crs_parses() {
    let files = crs_files();
    if files.is_empty() {
        eprintln!("no CRS installed under /usr/share/modsecurity-crs; skipped");
        return;
    }
    assert!(files.len() >= 30, "only {} CRS files found", files.len());
    assert!(files.iter().any(|f| f.ends_with("crs-setup.conf")));
    let mut all_ids = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        all_ids.extend(check_crs_file(&path.display().to_string(), &text));
    }
    assert!(all_ids.len() > 500, "{} ids", all_ids.len());
    let n = all_ids.len();
    all_ids.sort_unstable();
    all_ids.dedup();
    assert_eq!(all_ids.len(), n, "duplicate rule ids across the CRS");
}

const CRS4_920: &str = include_str!("fixtures/REQUEST-920-PROTOCOL-ENFORCEMENT.conf");
/// The first part (paranoia levels 0-1) of the file; see fixtures/README.md.
const CRS4_942: &str = include_str!("fixtures/REQUEST-942-APPLICATION-ATTACK-SQLI.conf");
const CRS4_911: &str = include_str!("fixtures/REQUEST-911-METHOD-ENFORCEMENT.conf");

fn find_rule(text: &str, id: u32) -> RuleDecl {
    let want = id.to_string();
    parse(text)
        .unwrap()
        .into_iter()
        .find_map(|d| match d.kind {
            DirectiveKind::Rule(r)
                if r.actions
                    .iter()
                    .any(|a| a.name == "id" && a.arg.as_deref() == Some(&want)) =>
            {
                Some(r)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("rule {id} not found"))
}

#[test]
fn crs4_fixtures_parse() {
    let ids_920 = check_crs_file("REQUEST-920", CRS4_920);
    let ids_942 = check_crs_file("REQUEST-942", CRS4_942);
    let ids_911 = check_crs_file("REQUEST-911", CRS4_911);
    assert_eq!((ids_920.len(), ids_942.len(), ids_911.len()), (68, 24, 9));

    let r = find_rule(CRS4_920, 920100);
    assert!(r.operator.negated && r.operator.name == "rx");
    assert!(r
        .operator
        .arg
        .starts_with(r"(?i)^(?:connect (?:(?:[0-9]{1,3}\.){3}"));
    // `\"` in the file is a quote in the regex; `\x5c` stays.
    let r = find_rule(CRS4_920, 920120);
    assert!(
        r.operator.arg.ends_with(r#"|[^"';=\x5c])*$"#),
        "{}",
        r.operator.arg
    );
    assert_eq!(r.targets, vec![var("FILES"), var("FILES_NAMES")]);

    let r = find_rule(CRS4_920, 920274);
    assert_eq!(r.targets.len(), 10);
    assert_eq!(r.targets[0], var("REQUEST_HEADERS"));
    assert_eq!(r.targets[9], not(named("REQUEST_HEADERS", "User-Agent")));

    let r = find_rule(CRS4_920, 920490);
    assert!(r.actions.contains(&act(
        "msg",
        "Request header x-up-devcap-post-charset detected in combination with prefix 'UP' to User-Agent"
    )));

    let r = find_rule(CRS4_942, 942100);
    assert_eq!(r.operator, op(false, "detectsqli", ""));
    assert_eq!(r.targets.last(), Some(&named("XML", "/*")));
    assert!(r.actions.contains(&flag("multimatch")));

    let r = find_rule(CRS4_942, 942220);
    assert!(r.actions.iter().any(|a| a.name == "msg"
        && a.arg
            .as_deref()
            .unwrap()
            .ends_with(r#"is the "magic number" crash"#)));
}

// ---------------------------------------------------------------------------
// Robustness.

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_and_mutated_inputs_do_not_panic() {
    const SPECIAL: &[u8] = b"\"'\\|,:/!&@#\n\r \t-=%{}()[]^$SecRule ";
    let source = CRS4_920.as_bytes();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut failed) = (0u32, 0u32);
    for round in 0..100_000u32 {
        let mut bytes: Vec<u8> = if round % 10 == 0 {
            let len = rng.below(200);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let len = 16 + rng.below(400);
            let start = rng.below(source.len() - len);
            source[start..start + len].to_vec()
        };
        for _ in 0..1 + rng.below(6) {
            let i = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 if i < bytes.len() => bytes[i] = rng.next() as u8,
                1 if i < bytes.len() => bytes[i] = SPECIAL[rng.below(SPECIAL.len())],
                2 if i < bytes.len() => {
                    bytes.remove(i);
                }
                3 => bytes.insert(i, SPECIAL[rng.below(SPECIAL.len())]),
                _ => {
                    // Duplicate up to 32 bytes somewhere else.
                    let j = rng.below(bytes.len() + 1);
                    let (a, b) = (i.min(j), i.max(j));
                    let chunk = bytes[a..b.min(a + 32)].to_vec();
                    let k = rng.below(bytes.len() + 1);
                    bytes.splice(k..k, chunk);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match parse(&text) {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                let lines = text.split('\n').count() as u32;
                assert!(e.line >= 1 && e.line <= lines, "{e} in {text:?}");
                assert!(e.column >= 1, "{e} in {text:?}");
                assert!(!e.message.is_empty());
            }
        }
    }
    // Both outcomes are exercised.
    assert!(ok > 1000 && failed > 1000, "ok {ok}, failed {failed}");
}

#[test]
fn only_ascii_blanks_separate_arguments() {
    // U+00A0 is not a blank to Apache's isspace().
    assert_eq!(
        one("SecMarker A\u{a0}B"),
        DirectiveKind::Marker("A\u{a0}B".into())
    );
    assert_eq!(
        one("SecRuleRemoveById\t1\x0b2"),
        DirectiveKind::RemoveById(ids(&[(1, 1), (2, 2)]))
    );
}
