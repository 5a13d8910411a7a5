//! Tests of the brief node listings: which facts are read and kept, and refused fact paths.

use super::*;
use serde_json::json;

fn paths(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_platform_part_stands_in_for_the_document_when_it_is_enough() {
    let doc = json!({"platform": {"os": "debian", "cpus": 4}, "hardware": {"disks": [1, 2]}});
    let stored = platform_json(&doc);
    let part = facts_doc(&doc.to_string(), &stored, FactsNeed::Platform);
    assert_eq!(part, json!({"platform": {"os": "debian", "cpus": 4}}));
    assert_eq!(facts_doc(&doc.to_string(), &stored, FactsNeed::Whole), doc);
    // A record from before the platform part was stored: the whole document.
    assert_eq!(facts_doc(&doc.to_string(), "", FactsNeed::Platform), doc);
    // A document without a platform object.
    let bare = json!({"hardware": {}});
    assert_eq!(platform_json(&bare), "null");
    assert_eq!(
        facts_doc(&bare.to_string(), "null", FactsNeed::Platform),
        json!({})
    );
    assert_eq!(facts_doc("not json", "", FactsNeed::Whole), Value::Null);
}

#[test]
fn whole_documents_only_for_terms_or_paths_outside_platform() {
    let need = |sel: &str, keep: Option<&[&str]>| {
        let keep = keep.map(paths);
        facts_need(&sel.parse().unwrap(), keep.as_deref())
    };
    assert_eq!(need("", Some(&[])), FactsNeed::Platform);
    assert_eq!(
        need("os=debian,role=db", Some(&["/platform"])),
        FactsNeed::Platform
    );
    assert_eq!(
        need("facts.platform.cpus>=4", Some(&["/platform/cpus"])),
        FactsNeed::Platform
    );
    assert_eq!(
        need("facts.hardware.memory>=4", Some(&[])),
        FactsNeed::Whole
    );
    assert_eq!(need("", Some(&["/platformx"])), FactsNeed::Whole);
    assert_eq!(need("", Some(&["/hardware"])), FactsNeed::Whole);
    assert_eq!(need("", None), FactsNeed::Whole);
}

#[test]
fn kept_facts_sit_at_their_place() {
    let doc = json!({"platform": {"os": "debian", "cpus": 4, "a/b": 1},
                     "disks": [{"model": "x"}], "big": "…"});
    assert_eq!(
        keep_facts(
            &doc,
            &paths(&["/platform/cpus", "/platform/a~1b", "/nope/x"])
        ),
        json!({"platform": {"cpus": 4, "a/b": 1}})
    );
    assert_eq!(
        keep_facts(&doc, &paths(&["/platform/cpus", "/platform"])),
        json!({"platform": {"os": "debian", "cpus": 4, "a/b": 1}})
    );
    assert_eq!(
        keep_facts(&doc, &paths(&["/disks/0/model"])),
        json!({"disks": {"0": {"model": "x"}}})
    );
    assert_eq!(keep_facts(&Value::Null, &paths(&["/platform"])), json!({}));
}

#[test]
fn bad_fact_paths_and_groupings_are_refused_with_the_reason() {
    assert!(check_fact_paths(&paths(&["/platform", "/a/b"])).is_ok());
    let e = check_fact_paths(&paths(&["platform.cpus"])).unwrap_err();
    assert!(e.contains("not a JSON pointer"), "{e}");
    let many = vec!["/a".to_string(); MAX_FACT_PATHS + 1];
    assert!(check_fact_paths(&many).unwrap_err().contains("at most"));
    let long = vec![format!("/{}", "x".repeat(MAX_FACT_PATH_BYTES))];
    assert!(check_fact_paths(&long).unwrap_err().contains("longer"));

    assert_eq!(
        parse_groupings(&paths(&["os,os-version", "virt"])).unwrap(),
        vec![paths(&["os", "os-version"]), paths(&["virt"])]
    );
    let e = parse_groupings(&paths(&["os,"])).unwrap_err();
    assert!(e.contains("grouping 'os,'"), "{e}");
    assert!(parse_groupings(&vec!["os".into(); MAX_GROUPINGS + 1]).is_err());
}

#[test]
fn counts_by_status_combination_and_version() {
    let mut counts = Counts::new(vec![paths(&["os", "os-version"])]);
    let node = |status: &str, os: Option<&str>| {
        let mut l: BTreeMap<String, String> = [("status".into(), status.into())].into();
        if let Some(os) = os {
            l.insert("os".into(), os.into());
            l.insert("os-version".into(), "12".into());
        }
        l
    };
    counts.add(&node("online", Some("debian")), "0.3.0");
    counts.add(&node("offline", Some("debian")), "0.3.0");
    counts.add(&node("revoked", None), "");
    counts.add(&node("online", Some("alpine")), "0.2.0");
    let r = counts.into_response();
    assert_eq!((r.total, r.online, r.offline, r.revoked), (4, 2, 1, 1));
    let g = &r.groups[0];
    assert_eq!(g.keys, ["os", "os-version"]);
    let got: Vec<(Vec<String>, u32)> = g
        .groups
        .iter()
        .map(|x| (x.values.clone(), x.nodes))
        .collect();
    assert_eq!(
        got,
        [
            (paths(&["debian", "12"]), 2),
            (paths(&["", ""]), 1),
            (paths(&["alpine", "12"]), 1)
        ]
    );
    assert_eq!(g.other_nodes, 0);
    assert_eq!(r.agent_versions["0.3.0"], 2);
    assert_eq!(r.agent_versions[""], 1);
}

#[test]
fn only_the_commonest_combinations_are_listed() {
    let mut counts = Counts::new(vec![paths(&["n"])]);
    for i in 0..MAX_GROUPS + 5 {
        let labels: BTreeMap<String, String> = [("n".into(), format!("{i:04}"))].into();
        counts.add(&labels, "v");
    }
    let r = counts.into_response();
    assert_eq!(r.groups[0].groups.len(), MAX_GROUPS);
    assert_eq!(r.groups[0].other_nodes, 5);
    assert_eq!(r.groups[0].groups[0].values, ["0000"]);
}
