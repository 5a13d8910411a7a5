//! Matching: label operators, fact paths, numbers.

use super::*;

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
