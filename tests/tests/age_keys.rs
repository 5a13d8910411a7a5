//! Every node's own age key: made by the agent at enrollment (0600, readable by the real
//! `age-keygen`), reported as its recipient only, listed by `labctl secrets recipients` (plain,
//! JSON, `.sops.yaml`); made at start by an agent whose data dir has none (an upgrade); and a
//! node can only ever set its own recipient, never a malformed one. Needs Debian's `age`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab_proto::v1::agent_message::Msg as AgentMsg;
use lab_proto::v1::Hello;
use lab_tests::rogue::RogueAgent;
use lab_tests::{stderr, wait_until, Cluster};

/// `age-keygen -y FILE`: the recipient of an age key file, by the real age tool.
fn recipient_of(key_file: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(key_file)
        .output()
        .expect("age-keygen not found: install Debian's 'age' package (.ci/run does)");
    assert!(out.status.success(), "age-keygen -y: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `labctl secrets recipients -o json` as (node, recipient) pairs ("" for none).
fn listed(c: &Cluster, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["secrets", "recipients", "-o", "json"];
    args.extend_from_slice(extra);
    let out = c.labctl(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_owned(),
                r["recipient"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn nodes_report_their_own_recipients_and_labctl_lists_them() {
    let mut c = Cluster::builder().agents(2).start();
    let keys: Vec<_> = c.agents.iter().map(|a| a.dir.join("age.key")).collect();
    let key_file = |i: usize| keys[i].clone();
    for i in 0..2 {
        let mode = std::fs::metadata(key_file(i)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "age.key of n{}", i + 1);
    }
    let (r1, r2) = (recipient_of(&key_file(0)), recipient_of(&key_file(1)));
    assert_ne!(r1, r2);
    wait_until(
        || listed(&c, &[]) == [("n1".into(), r1.clone()), ("n2".into(), r2.clone())],
        Duration::from_secs(20),
        "both recipients listed",
    );
    // Nothing secret left the nodes: the coordinator's files never hold a private key.
    let log = std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap();
    assert!(!log.contains("AGE-SECRET-KEY"));

    // Plain (the default): one per line; a selector narrows it.
    let out = c.labctl(&["secrets", "recipients"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{r1}\n{r2}\n")
    );
    assert_eq!(listed(&c, &["-l", "node=n2"]), [("n2".into(), r2.clone())]);

    // -o sops: a .sops.yaml whose rule names both nodes' recipients and the operator's own.
    let own = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";
    let out = c.labctl(&["secrets", "recipients", "-o", "sops", "--add", own]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let age = text
        .split("age: >-\n")
        .nth(1)
        .expect("an age key in the rule");
    let listed_keys: Vec<&str> = age.split(',').map(str::trim).collect();
    assert_eq!(listed_keys, [r1.as_str(), r2.as_str(), own], "{text}");

    // Bad input: a selector nothing matches (1), a malformed --add (2).
    let out = c.labctl(&["secrets", "recipients", "-l", "node=nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no node matches"), "{}", stderr(&out));
    let out = c.labctl(&["secrets", "recipients", "--add", "age1nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--add"), "{}", stderr(&out));

    // An upgraded agent whose data dir has no key makes one at start and reports it.
    c.agents[1].stop(false);
    std::fs::remove_file(key_file(1)).unwrap();
    c.agents[1].start();
    wait_until(
        || key_file(1).exists(),
        Duration::from_secs(20),
        "n2 made a key",
    );
    let r2_new = recipient_of(&key_file(1));
    assert_ne!(r2_new, r2);
    wait_until(
        || listed(&c, &[]) == [("n1".into(), r1.clone()), ("n2".into(), r2_new.clone())],
        Duration::from_secs(20),
        "n2's new recipient listed",
    );
}

#[test]
fn a_node_sets_only_its_own_recipient_and_never_a_malformed_one() {
    let mut c = Cluster::builder().agents(2).start();
    let r1 = recipient_of(&c.agents[0].dir.join("age.key"));
    c.agents[1].stop(false);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rogue = rt.block_on(RogueAgent::connect(&c, &c.agents[1]));
    let hello = |age_recipient: &str| {
        AgentMsg::Hello(Hello {
            agent_version: "rogue".into(),
            age_recipient: age_recipient.into(),
            ..Default::default()
        })
    };
    // n2 claims n1's recipient: it lands on n2's own record only (the node is the certificate's).
    rt.block_on(rogue.send(hello(&r1)));
    rt.block_on(rogue.sync()).unwrap();
    assert_eq!(
        listed(&c, &[]),
        [("n1".into(), r1.clone()), ("n2".into(), r1.clone())]
    );
    // A malformed recipient is ignored (logged), the stored one stays.
    rt.block_on(rogue.send(hello("age1notarecipient")));
    rt.block_on(rogue.sync()).unwrap();
    assert_eq!(listed(&c, &["-l", "node=n2"]), [("n2".into(), r1.clone())]);
    let log = std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap();
    assert!(
        log.contains("ignoring the age recipient"),
        "no warning in the log"
    );
    assert_eq!(listed(&c, &["-l", "node=n1"]), [("n1".into(), r1)]);
}
