use super::*;
use serde_json::json;

fn sel(s: &str) -> Selector {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Matches `s` against labels only.
fn on_labels(s: &str, pairs: &[(&str, &str)]) -> bool {
    sel(s).matches(&labels(pairs), &Value::Null)
}

/// Matches `s` against facts only.
fn on_facts(s: &str, facts: &Value) -> bool {
    sel(s).matches(&BTreeMap::new(), facts)
}

/// The position and message of a syntax error.
fn syntax_error(s: &str) -> (usize, String) {
    match s.parse::<Selector>() {
        Err(SelectorError::Syntax {
            position, message, ..
        }) => (position, message),
        other => panic!("{s:?} should be a syntax error, got {other:?}"),
    }
}

fn assert_error(s: &str, position: usize, fragment: &str) {
    let (at, message) = syntax_error(s);
    assert_eq!(at, position, "position for {s:?} ({message})");
    assert!(
        message.contains(fragment),
        "message for {s:?} is {message:?}, expected it to contain {fragment:?}"
    );
    assert!(
        message.starts_with(|c: char| c.is_lowercase() || c == '\''),
        "{message}"
    );
    assert!(!message.ends_with('.'), "{message}");
}

fn facts() -> Value {
    json!({
        "platform": {"os": "debian", "os_version": "12", "arch": "x86_64", "cpus": 4},
        "memory": {"total_bytes": 17179869184u64, "swap_total_bytes": 0},
        "disks": [
            {"model": "ssd1", "rotational": false},
            {"model": "hdd2", "rotational": true},
        ],
        "load": 1.5,
        "temp": -3,
        "big": 18446744073709551615u64,
        "gone": null,
        "empty": "",
    })
}

// --- empty and structure -------------------------------------------------------------

#[test]
fn empty_selector_matches_everything() {
    for s in ["", " ", "\t\n  "] {
        let selector = sel(s);
        assert!(selector.is_empty());
        assert_eq!(selector, Selector::everything());
        assert!(selector.matches(&BTreeMap::new(), &Value::Null));
        assert!(selector.matches(&labels(&[("a", "b")]), &facts()));
        assert_eq!(selector.to_string(), "");
    }
}

#[test]
fn requirements_are_anded() {
    let node = [("role", "db"), ("os", "debian")];
    assert!(on_labels("role=db,os=debian", &node));
    assert!(!on_labels("role=db,os=nixos", &node));
    assert!(!on_labels("role=web,os=debian", &node));
    assert_eq!(sel("role=db,os=debian").requirements().len(), 2);
}

#[test]
fn requirements_keep_their_order() {
    let selector = sel("b,a");
    let keys: Vec<_> = selector
        .requirements()
        .iter()
        .map(|r| match r {
            Requirement::Label { key, .. } => key.as_str(),
            Requirement::Fact { .. } => "fact",
        })
        .collect();
    assert_eq!(keys, ["b", "a"]);
}

#[test]
fn whitespace_around_tokens() {
    assert_eq!(
        sel("  a = b , c in ( x , y ) ,\t! d , e != f , g notin(z) , h "),
        sel("a=b,c in (x,y),!d,e!=f,g notin (z),h")
    );
    assert_eq!(sel("facts.load >= 1"), sel("facts.load>=1"));
    assert_eq!(sel("a\n=\r\nb"), sel("a=b"));
}

#[test]
fn from_iterator_builds_a_selector() {
    let selector: Selector = [Requirement::Label {
        key: "role".into(),
        op: Operator::Exists,
    }]
    .into_iter()
    .collect();
    assert_eq!(selector, sel("role"));
}

// --- label operators -----------------------------------------------------------------

#[test]
fn equals_on_labels() {
    assert!(on_labels("role=db", &[("role", "db")]));
    assert!(!on_labels("role=db", &[("role", "web")]));
    assert!(!on_labels("role=db", &[]));
    assert!(!on_labels("role=db", &[("role", "db2")]));
}

#[test]
fn double_equals_is_equals() {
    assert_eq!(sel("role==db"), sel("role=db"));
    assert_eq!(sel("role==db").to_string(), "role=db");
}

#[test]
fn not_equals_on_labels() {
    assert!(on_labels("role!=db", &[("role", "web")]));
    assert!(!on_labels("role!=db", &[("role", "db")]));
    assert!(on_labels("role!=db", &[]), "absent key satisfies !=");
}

#[test]
fn empty_values() {
    assert_eq!(
        sel("role="),
        Selector::from_iter([Requirement::Label {
            key: "role".into(),
            op: Operator::Equals(String::new()),
        }])
    );
    assert!(on_labels("role=", &[("role", "")]));
    assert!(!on_labels("role=", &[("role", "x")]));
    assert!(!on_labels("role=", &[]));
    assert!(on_labels("role!=", &[("role", "x")]));
    assert!(!on_labels("role!=", &[("role", "")]));
    assert!(on_labels(
        "role==,os=debian",
        &[("role", ""), ("os", "debian")]
    ));
    assert!(on_labels(
        "role= , os = debian",
        &[("role", ""), ("os", "debian")]
    ));
}

#[test]
fn in_on_labels() {
    let s = "zone in (a,b)";
    assert!(on_labels(s, &[("zone", "a")]));
    assert!(on_labels(s, &[("zone", "b")]));
    assert!(!on_labels(s, &[("zone", "c")]));
    assert!(!on_labels(s, &[]));
}

#[test]
fn notin_on_labels() {
    let s = "zone notin (a)";
    assert!(!on_labels(s, &[("zone", "a")]));
    assert!(on_labels(s, &[("zone", "b")]));
    assert!(on_labels(s, &[]), "absent key satisfies notin");
}

#[test]
fn in_values_are_sorted_and_deduplicated() {
    let selector = sel("zone in (c, a, b, a)");
    assert_eq!(selector, sel("zone in (a,b,c)"));
    assert_eq!(selector.to_string(), "zone in (a,b,c)");
}

#[test]
fn exists_and_does_not_exist() {
    assert!(on_labels("gpu", &[("gpu", "")]));
    assert!(on_labels("gpu", &[("gpu", "nvidia")]));
    assert!(!on_labels("gpu", &[]));
    assert!(on_labels("!gpu", &[]));
    assert!(!on_labels("!gpu", &[("gpu", "")]));
    assert!(on_labels("! gpu", &[]));
}

#[test]
fn label_keys_and_values_charset() {
    let node = [
        ("kubernetes.io/arch", "amd64"),
        ("os-version", "12"),
        ("mac_addr", "52:54:00:12:34:56"),
        ("kernel", "6.1.0-13+deb12"),
    ];
    assert!(on_labels("kubernetes.io/arch=amd64", &node));
    assert!(on_labels("os-version=12", &node));
    assert!(on_labels("mac_addr=52:54:00:12:34:56", &node));
    assert!(on_labels("kernel in (6.1.0-13+deb12, x)", &node));
}

#[test]
fn keywords_can_be_keys_and_values() {
    assert!(on_labels("in in (in)", &[("in", "in")]));
    assert!(on_labels("notin=notin", &[("notin", "notin")]));
    assert!(on_labels("k=in", &[("k", "in")]));
}

#[test]
fn facts_without_a_dot_is_a_label() {
    assert_eq!(
        sel("facts"),
        Selector::from_iter([Requirement::Label {
            key: "facts".into(),
            op: Operator::Exists,
        }])
    );
    assert!(on_labels("factsx=1", &[("factsx", "1")]));
}

// --- fact paths ----------------------------------------------------------------------

#[test]
fn fact_path_is_split_into_segments() {
    assert_eq!(
        sel("facts.memory.total_bytes>=16e9"),
        Selector::from_iter([Requirement::Fact {
            path: vec!["memory".into(), "total_bytes".into()],
            op: Operator::Compare(
                Comparison::GreaterOrEqual,
                Number::new("16e9").expect("number")
            ),
        }])
    );
}

#[test]
fn fact_string_equality() {
    let f = facts();
    assert!(on_facts("facts.platform.os=debian", &f));
    assert!(on_facts("facts.platform.os==debian", &f));
    assert!(!on_facts("facts.platform.os=nixos", &f));
    assert!(on_facts("facts.platform.os!=nixos", &f));
    assert!(!on_facts("facts.platform.os!=debian", &f));
    assert!(on_facts("facts.empty=", &f));
    assert!(on_facts("facts.platform.os in (nixos, debian)", &f));
    assert!(on_facts("facts.platform.os notin (nixos)", &f));
}

#[test]
fn fact_paths_index_arrays() {
    let f = facts();
    assert!(on_facts("facts.disks.0.model=ssd1", &f));
    assert!(on_facts("facts.disks.1.model=hdd2", &f));
    assert!(!on_facts("facts.disks.2.model", &f));
    assert!(!on_facts("facts.disks.x.model", &f));
    assert!(on_facts("facts.disks.1", &f));
}

#[test]
fn fact_path_through_a_scalar_is_absent() {
    let f = facts();
    assert!(!on_facts("facts.platform.os.name", &f));
    assert!(on_facts("!facts.platform.os.name", &f));
}

#[test]
fn fact_number_equals_numerically() {
    let f = facts();
    for s in [
        "facts.platform.cpus=4",
        "facts.platform.cpus=4.0",
        "facts.platform.cpus=4e0",
    ] {
        assert!(on_facts(s, &f), "{s}");
    }
    assert!(on_facts("facts.cpus=4", &json!({"cpus": 4.0})));
    assert!(on_facts("facts.load=1.5", &f));
    assert!(on_facts("facts.load=15e-1", &f));
    assert!(on_facts("facts.temp=-3", &f));
    assert!(!on_facts("facts.platform.cpus=5", &f));
    assert!(!on_facts("facts.platform.cpus=four", &f));
    assert!(on_facts("facts.platform.cpus!=5", &f));
    assert!(!on_facts("facts.platform.cpus!=4.0", &f));
    assert!(on_facts("facts.platform.cpus in (2, 4)", &f));
    assert!(!on_facts("facts.platform.cpus notin (4.0)", &f));
}

#[test]
fn large_integers_compare_exactly() {
    let f = facts();
    assert!(on_facts("facts.big=18446744073709551615", &f));
    assert!(!on_facts("facts.big=18446744073709551614", &f));
    assert!(on_facts("facts.big>18446744073709551614", &f));
    assert!(on_facts("facts.big<18446744073709551616", &f));
}

#[test]
fn fact_string_equality_stays_textual() {
    let f = json!({"v": "4", "w": "4.0"});
    assert!(on_facts("facts.v=4", &f));
    assert!(!on_facts("facts.v=4.0", &f));
    assert!(on_facts("facts.w=4.0", &f));
    assert!(!on_facts("facts.w=4", &f));
}

#[test]
fn fact_booleans_compare_as_words() {
    let f = facts();
    assert!(on_facts("facts.disks.0.rotational=false", &f));
    assert!(on_facts("facts.disks.1.rotational=true", &f));
    assert!(on_facts("facts.disks.1.rotational!=false", &f));
    assert!(!on_facts("facts.disks.1.rotational=1", &f));
    assert!(!on_facts("facts.disks.1.rotational>0", &f));
}

#[test]
fn each_comparison() {
    let f = json!({"n": 10});
    let cases = [
        ("<", 9, false),
        ("<", 10, false),
        ("<", 11, true),
        ("<=", 9, false),
        ("<=", 10, true),
        ("<=", 11, true),
        (">", 9, true),
        (">", 10, false),
        (">", 11, false),
        (">=", 9, true),
        (">=", 10, true),
        (">=", 11, false),
    ];
    for (op, literal, expected) in cases {
        let s = format!("facts.n{op}{literal}");
        assert_eq!(on_facts(&s, &f), expected, "{s}");
    }
}

#[test]
fn number_forms() {
    let f = facts();
    assert!(on_facts("facts.memory.total_bytes>=16e9", &f));
    assert!(on_facts("facts.memory.total_bytes>=1.6E10", &f));
    assert!(on_facts("facts.memory.total_bytes<1.8e+10", &f));
    assert!(!on_facts("facts.memory.total_bytes>=32e9", &f));
    assert!(on_facts("facts.load>1", &f));
    assert!(on_facts("facts.load<1.50001", &f));
    assert!(on_facts("facts.temp<-2.5", &f));
    assert!(on_facts("facts.temp>-3e1", &f));
    assert!(on_facts("facts.memory.swap_total_bytes<=0", &f));
    assert!(on_facts("facts.memory.swap_total_bytes>=-0", &f));
}

#[test]
fn numeric_strings_compare_numerically() {
    let f = json!({"platform": {"os_version": "12", "nixos": "24.05", "name": "bookworm"}});
    assert!(on_facts("facts.platform.os_version>=12", &f));
    assert!(on_facts("facts.platform.os_version>11.5", &f));
    assert!(!on_facts("facts.platform.os_version>12", &f));
    assert!(on_facts("facts.platform.nixos>=23.11", &f));
    assert!(!on_facts("facts.platform.name>0", &f));
    assert!(!on_facts("facts.platform.name<0", &f));
}

#[test]
fn non_numeric_facts_never_compare() {
    let f = json!({"s": "abc", "b": true, "o": {}, "a": [1], "z": null, "e": ""});
    for key in ["s", "b", "o", "a", "z", "e", "missing"] {
        for op in ["<", "<=", ">", ">="] {
            let s = format!("facts.{key}{op}0");
            assert!(!on_facts(&s, &f), "{s}");
        }
    }
}

#[test]
fn missing_facts() {
    let f = facts();
    assert!(!on_facts("facts.nope", &f));
    assert!(on_facts("!facts.nope", &f));
    assert!(!on_facts("facts.nope=x", &f));
    assert!(on_facts("facts.nope!=x", &f));
    assert!(!on_facts("facts.nope in (x)", &f));
    assert!(on_facts("facts.nope notin (x)", &f));
    assert!(!on_facts("facts.nope>=0", &f));
}

#[test]
fn unknown_facts_document() {
    for doc in [Value::Null, json!({}), json!("text"), json!([1, 2])] {
        assert!(!on_facts("facts.platform.os=debian", &doc));
        assert!(on_facts("facts.platform.os!=debian", &doc));
        assert!(on_facts("!facts.platform", &doc));
        assert!(!on_facts("facts.platform", &doc));
    }
}

#[test]
fn null_fact_counts_as_absent() {
    let f = facts();
    assert!(!on_facts("facts.gone", &f));
    assert!(on_facts("!facts.gone", &f));
    assert!(on_facts("facts.gone!=null", &f));
    assert!(!on_facts("facts.gone=null", &f));
}

#[test]
fn objects_and_arrays_exist_but_equal_nothing() {
    let f = facts();
    assert!(on_facts("facts.platform", &f));
    assert!(on_facts("facts.disks", &f));
    assert!(!on_facts("facts.platform=x", &f));
    assert!(on_facts("facts.disks!=x", &f));
}

#[test]
fn labels_and_facts_together() {
    let selector = sel("role=db, facts.platform.cpus>=4, !maintenance");
    let f = facts();
    assert!(selector.matches(&labels(&[("role", "db")]), &f));
    assert!(!selector.matches(&labels(&[("role", "db"), ("maintenance", "")]), &f));
    assert!(!selector.matches(&labels(&[("role", "db")]), &Value::Null));
}

#[test]
fn labels_do_not_see_facts_and_facts_do_not_see_labels() {
    let node = labels(&[("facts.platform.os", "debian")]);
    assert!(!sel("facts.platform.os=debian").matches(&node, &Value::Null));
    assert!(!sel("platform").matches(&BTreeMap::new(), &facts()));
}

#[test]
fn hand_built_label_comparison_never_matches() {
    let selector = Selector::from_iter([Requirement::Label {
        key: "n".into(),
        op: Operator::Compare(Comparison::Less, Number::new("5").expect("number")),
    }]);
    assert!(!selector.matches(&labels(&[("n", "1")]), &Value::Null));
}

#[test]
fn number_literals() {
    for ok in ["0", "-3", "1.5", "16e9", "1E-3", "2e+10", "007", "-0.0e0"] {
        assert!(Number::new(ok).is_some(), "{ok}");
        assert_eq!(Number::new(ok).map(|n| n.to_string()), Some(ok.to_owned()));
    }
    for bad in [
        "", "-", "+1", ".5", "5.", "1e", "1e+", "0x10", "1_000", "inf", "NaN", "1e999", "1.2.3",
        "--1", " 1",
    ] {
        assert!(Number::new(bad).is_none(), "{bad:?}");
    }
    assert_eq!(Number::new("16e9").map(|n| n.to_f64()), Some(16e9));
    assert_eq!(Number::new("16e9").map(|n| n.as_str().len()), Some(4));
}

// --- errors --------------------------------------------------------------------------

#[test]
fn error_double_comma() {
    assert_error("os=debian,,x", 10, "expected a requirement");
}

#[test]
fn error_display_shows_selector_position_and_snippet() {
    let err = "os=debian,,x".parse::<Selector>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "selector \"os=debian,,x\": expected a requirement (a key, '!key' or a fact path) at \
         position 10 (near \",x\")"
    );
    assert_eq!(err.position(), 10);
    let end = "a,".parse::<Selector>().unwrap_err();
    assert!(
        end.to_string()
            .ends_with("at position 2 (the end of the selector)"),
        "{end}"
    );
    let long = format!("a b{}", "c".repeat(40))
        .parse::<Selector>()
        .unwrap_err();
    assert!(
        long.to_string().ends_with("(near \"bccccccccccc\"…)"),
        "{long}"
    );
}

#[test]
fn error_caret_points_at_the_position() {
    let err = "os=debian,,x".parse::<Selector>().unwrap_err();
    assert_eq!(err.caret(), "os=debian,,x\n          ^");
    let err = "a=1,\t,x".parse::<Selector>().unwrap_err();
    assert_eq!(err.caret(), "a=1, ,x\n     ^");
}

#[test]
fn error_leading_and_trailing_commas() {
    assert_error(",", 0, "expected a requirement");
    assert_error(",a", 0, "expected a requirement");
    assert_error("a,", 2, "expected a requirement");
    assert_error("a, ", 3, "expected a requirement");
}

#[test]
fn error_missing_separator() {
    assert_error("a=b c", 4, "expected ',' or the end of the selector");
    assert_error("a b", 2, "expected an operator");
    assert_error("!a b", 3, "'!key' takes no operator");
    assert_error("a in (x) y", 9, "expected ','");
}

#[test]
fn error_bang() {
    assert_error("!", 1, "expected a key after '!'");
    assert_error("!,a", 1, "expected a key after '!'");
    assert_error("!a=b", 2, "'!key' takes no operator");
    assert_error("!a in (b)", 3, "'!key' takes no operator");
    assert_error("a!b", 1, "expected '!='");
    assert_error("a!", 1, "expected '!='");
    assert_error("!!a", 1, "expected a key");
}

#[test]
fn error_bad_operator() {
    assert_error("a (x)", 2, "expected 'in' or 'notin' before '('");
    assert_error("a:b", 1, "expected an operator");
    assert_error("a foo (x)", 2, "expected an operator");
    assert_error("a IN (x)", 2, "expected an operator");
    assert_error("a=>1", 2, "expected a value");
    assert_error("a===b", 3, "expected a value");
    assert_error("a=(b)", 2, "expected a value");
}

#[test]
fn error_lists() {
    assert_error("a in", 4, "expected '(' after 'in'");
    assert_error("a notin x", 8, "expected '(' after 'notin'");
    assert_error("a in (", 6, "expected a value");
    assert_error("a in ()", 6, "expected a value");
    assert_error("a in (x", 7, "to close the list");
    assert_error("a in (x,", 8, "expected a value");
    assert_error("a in (x,)", 8, "expected a value");
    assert_error("a in (x y)", 8, "expected ',' or ')'");
    assert_error("a in (x))", 8, "expected ','");
}

#[test]
fn error_comparison_on_label() {
    assert_error("cores<3", 5, "works only on fact paths");
    assert_error("cores>=3", 5, "label \"cores\" takes");
    assert_error("!cores<3", 6, "'!key' takes no operator");
}

#[test]
fn error_bad_numbers() {
    assert_error("facts.x>", 8, "expected a number");
    assert_error("facts.x> ,a", 9, "expected a number");
    assert_error("facts.x>abc", 8, "expected a number");
    assert_error("facts.x>=1.5.2", 9, "expected a number");
    assert_error("facts.x<.5", 8, "expected a number");
    assert_error("facts.x<+5", 8, "expected a number");
    assert_error("facts.x>1e999", 8, "out of range");
    assert_error("facts.x> = 5", 9, "expected a number");
    assert_error("facts.x<>5", 8, "expected a number");
    assert_error("facts.x>5(", 9, "expected ','");
}

#[test]
fn error_fact_paths() {
    assert_error("facts.", 6, "expected a fact path after 'facts.'");
    assert_error("facts.=x", 6, "expected a fact path");
    assert_error("facts..a", 6, "empty segment");
    assert_error("facts.a..b", 8, "empty segment");
    assert_error("facts.a.", 8, "empty segment");
    assert_error("x, !facts.a.", 12, "empty segment");
}

#[test]
fn error_non_ascii_and_control_characters() {
    assert_error("é=1", 0, "expected a requirement");
    assert_error("a=é", 2, "expected a value");
    assert_error("a=bé", 3, "expected ','");
    assert_error("a in (é)", 6, "expected a value");
    assert_error("a\0", 1, "expected an operator");
    assert_error("\u{a0}a", 0, "expected a requirement");
}

#[test]
fn error_too_long() {
    let at_limit = "a".repeat(MAX_SELECTOR_LEN);
    assert!(at_limit.parse::<Selector>().is_ok());
    let over = "a".repeat(MAX_SELECTOR_LEN + 1);
    let err = over.parse::<Selector>().unwrap_err();
    assert_eq!(
        err,
        SelectorError::TooLong {
            len: MAX_SELECTOR_LEN + 1
        }
    );
    assert_eq!(err.position(), MAX_SELECTOR_LEN);
    assert!(err.to_string().contains("the limit is 4096 bytes"), "{err}");
    assert!(err.to_string().len() < 200);
    assert_eq!(err.caret(), err.to_string());
}

// --- display -------------------------------------------------------------------------

#[test]
fn display_is_canonical() {
    let cases = [
        ("role==db", "role=db"),
        (" role = db ", "role=db"),
        ("a in ( y , x )", "a in (x,y)"),
        ("a notin(x)", "a notin (x)"),
        ("! a", "!a"),
        ("a , b", "a,b"),
        ("a!= ", "a!="),
        ("facts.a.b >= 16e9", "facts.a.b>=16e9"),
        ("facts.a<-1.5E+3", "facts.a<-1.5E+3"),
        ("!facts.x", "!facts.x"),
    ];
    for (input, canonical) in cases {
        assert_eq!(sel(input).to_string(), canonical, "{input}");
    }
}

#[test]
fn display_round_trips() {
    let selectors = [
        "",
        "role=db",
        "role==db",
        "role!=db",
        "role=",
        "role!=",
        "zone in (a,b,c)",
        "zone notin (a)",
        "gpu",
        "!gpu",
        "kubernetes.io/arch=amd64,os-version=12",
        "mac=52:54:00:12:34:56",
        "kernel=6.1.0-13+deb12",
        "facts.memory.total_bytes>=16e9",
        "facts.platform.os=debian",
        "facts.platform.cpus<4",
        "facts.platform.cpus<=4",
        "facts.platform.cpus>4",
        "facts.load>-1.5e-3",
        "facts.disks.0.model in (ssd1,hdd2)",
        "facts.disks.0.model notin (x)",
        "facts.a",
        "!facts.a.b.c",
        "in in (in)",
        "facts",
        " a = b , c in ( x , y ) , ! d ",
        "role=db,facts.platform.cpus>=4,!maintenance,zone in (a,b)",
    ];
    for s in selectors {
        let parsed = sel(s);
        let shown = parsed.to_string();
        assert_eq!(sel(&shown), parsed, "{s:?} displayed as {shown:?}");
        assert_eq!(
            sel(&shown).to_string(),
            shown,
            "display is a fixed point for {s:?}"
        );
    }
}

#[test]
fn nasty_inputs_never_panic() {
    // One input per line; the blank and space-only lines are inputs too.
    let printable = r#"
!
!!
= == != < >= , ,, ( ) () (((( ))))
a in ((
a in (()
a in (a,,b)
facts
facts.
facts..
facts.x>
facts.x>-
facts.x>1e
facts.x>1e+
facts.x>-.
- -- 1e5 --1
é
a=é
é=é
🦀
a=🦀
a in (🦀)
facts.🦀
a=b,
a=b,,
'a'="b"
a="b c"
a=b;c
a=b|c
a==b==c
a!==b
a=!b
a<=>b
facts.x>=1.5.5
facts.x=1e400
facts.x>1e308
facts.x>-1e308
facts.x<4.9e-324
facts.0.1.2>0
facts.x in ()
a notin
notin
in
in in
in in (
!in
! ! a
a ,
 , 
facts.a.b.c.d.e.f.g.h.i.j.k
"#;
    let escaped = [
        "\0",
        "\u{1}\u{7f}",
        "\u{feff}a=b",
        "a=b\u{feff}",
        "a\u{300}=b",
        "\u{202e}a=b",
        "a\r\n=b",
        "\t\t",
        "a=\u{a0}b",
        "\u{2028}",
    ];
    let mut inputs: Vec<String> = printable
        .lines()
        .chain(printable.split_whitespace())
        .chain(escaped)
        .map(str::to_owned)
        .collect();
    inputs.push("a".repeat(MAX_SELECTOR_LEN + 1));
    inputs.push("é".repeat(MAX_SELECTOR_LEN / 2));
    inputs.push("é".repeat(MAX_SELECTOR_LEN / 2 + 1));
    inputs.push("a=b,".repeat(MAX_SELECTOR_LEN / 4));
    inputs.push(format!("a in ({})", "x,".repeat(2000)));
    inputs.push(format!("facts.x>={}", "9".repeat(400)));
    inputs.push(format!("facts.x>={}", "9".repeat(40)));
    inputs.push(format!("facts.x={}", "9".repeat(40)));
    inputs.push(format!("facts.{}", "a.".repeat(2000)));
    inputs.push("(".repeat(MAX_SELECTOR_LEN));
    inputs.push("!".repeat(MAX_SELECTOR_LEN));
    inputs.push(format!("{}é", "a".repeat(MAX_SELECTOR_LEN - 2)));

    let f = facts();
    let node = labels(&[("a", "b"), ("in", "in")]);
    for input in &inputs {
        match input.parse::<Selector>() {
            Ok(selector) => {
                let shown = selector.to_string();
                assert_eq!(sel(&shown), selector, "{input:?}");
                let _ = selector.matches(&node, &f);
                let _ = selector.matches(&node, &Value::Null);
            }
            Err(err) => {
                let message = err.to_string();
                assert!(!message.is_empty());
                let _ = err.caret();
                assert!(err.position() <= input.len().max(MAX_SELECTOR_LEN));
            }
        }
    }
}

/// A cheap stand-in for the fuzz target: token soup from a fixed xorshift seed.
#[test]
fn generated_selectors_round_trip() {
    let tokens = [
        "a", "b", "facts.", "facts.x", ".", "=", "==", "!=", "!", "<", "<=", ">", ">=", " ", ",",
        "(", ")", " in ", " notin ", "in", "1", "-", "e", "+", "1.5", "16e9", "é", "\t", ":", "/",
        "_",
    ];
    let f = facts();
    let node = labels(&[("a", "b")]);
    let mut state: u64 = 0x1234_5678_9abc_def0;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 1024).unwrap_or(0)
    };
    let mut parsed = 0;
    for _ in 0..20_000 {
        let input: String = (0..next() % 12)
            .map(|_| tokens[next() % tokens.len()])
            .collect();
        match input.parse::<Selector>() {
            Ok(selector) => {
                parsed += 1;
                let shown = selector.to_string();
                assert_eq!(sel(&shown), selector, "{input:?} displayed as {shown:?}");
                let _ = selector.matches(&node, &f);
            }
            Err(err) => {
                let _ = err.caret();
            }
        }
    }
    assert!(parsed > 1000, "only {parsed} generated selectors parsed");
}

#[test]
fn numbers_compare_equal_only_by_literal() {
    // Selectors compare their text; 16e9 and 16000000000 select the same nodes but differ.
    assert_ne!(sel("facts.m>=16e9"), sel("facts.m>=16000000000"));
    let f = json!({"m": 16_000_000_000u64});
    assert!(on_facts("facts.m>=16e9", &f));
    assert!(on_facts("facts.m>=16000000000", &f));
}
