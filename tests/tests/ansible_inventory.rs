//! `labctl inventory ansible` end to end with Debian's Ansible: a real coordinator with labelled
//! agents, the documented two-line inventory script (labctl found on PATH, its config from
//! LABCTL_CONFIG) and the documented ansible.cfg line, read by `ansible-inventory --list`,
//! `--graph` and `--host`, and an ad-hoc `ansible` run with the local connection (the hosts'
//! ansible_host is the loopback address they connected from, so no ssh is needed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lab_tests::{bin, stderr, wait_until, Cluster};
use serde_json::Value;

/// The inventory script README documents, in `dir`, with ansible.cfg pointing at it.
fn write_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("labfleet");
    std::fs::write(&script, "#!/bin/sh\nexec labctl inventory ansible \"$@\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("ansible.cfg"),
        "[defaults]\ninventory = ./labfleet\n",
    )
    .unwrap();
    script
}

/// Runs an Ansible tool in `dir` with labctl on PATH, the admin config, and `env`.
fn ansible(c: &Cluster, dir: &Path, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    backup_util::require(tool, "ansible");
    let bin_dir = bin("labctl").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("LABCTL_CONFIG", c.coord.admin_config())
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("HOME", dir)
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env_remove("LAB_INVENTORY_SELECTOR")
        .env_remove("LAB_INVENTORY_FACTS")
        .env_remove("LAB_INVENTORY_ADDRESS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn list(c: &Cluster, dir: &Path, env: &[(&str, &str)]) -> Value {
    let out = ansible(c, dir, "ansible-inventory", &["--list"], env);
    assert!(
        out.status.success(),
        "ansible-inventory --list: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The hosts of `group` in an `ansible-inventory --list` document, sorted.
fn hosts(doc: &Value, group: &str) -> Vec<String> {
    let mut hosts: Vec<String> = doc[group]["hosts"]
        .as_array()
        .map(|a| a.iter().map(|h| h.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    hosts.sort();
    hosts
}

#[test]
fn ansible_reads_groups_and_hostvars_from_labels_and_facts() {
    let mut c = Cluster::builder().agents(3).start();
    let label = |args: &[&str]| {
        let out = c.labctl(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    label(&["label", "n1", "role=k3s", "rack=r1"]);
    label(&["label", "n2", "role=k3s", "site=attic"]);
    label(&["label", "n3", "role=nas"]);
    // The os label is derived from facts, which arrive just after the session starts.
    wait_until(
        || c.nodes().iter().all(|n| n["labels"]["os"] == "debian"),
        Duration::from_secs(20),
        "facts of every node",
    );
    let dir = c.tmp.path().join("ansible");
    std::fs::create_dir_all(&dir).unwrap();
    write_script(&dir);

    let doc = list(
        &c,
        &dir,
        &[(
            "LAB_INVENTORY_FACTS",
            "platform.cpus,hardware.memory.total_bytes",
        )],
    );
    assert_eq!(hosts(&doc, "role_k3s"), ["n1", "n2"], "{doc:#}");
    assert_eq!(hosts(&doc, "role_nas"), ["n3"]);
    assert_eq!(hosts(&doc, "rack_r1"), ["n1"]);
    assert_eq!(hosts(&doc, "site_attic"), ["n2"]);
    assert_eq!(hosts(&doc, "os_debian"), ["n1", "n2", "n3"]);
    assert_eq!(hosts(&doc, "status_online"), ["n1", "n2", "n3"]);
    assert!(doc.get("node_n1").is_none(), "no group per node: {doc:#}");
    let children: Vec<&str> = doc["all"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    for group in ["role_k3s", "role_nas", "os_debian", "rack_r1"] {
        assert!(
            children.contains(&group),
            "{group} not under all: {children:?}"
        );
    }
    let facts = c.node("n1").unwrap();
    let shown = Command::new(bin("labctl"))
        .args([
            "--config",
            c.coord.admin_config().to_str().unwrap(),
            "node",
            "show",
            "n1",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let n1 = &doc["_meta"]["hostvars"]["n1"];
    assert_eq!(
        n1["ansible_host"], "127.0.0.1",
        "the address n1 connected from: {n1:#}"
    );
    assert_eq!(n1["labfleet_session_address"], "127.0.0.1");
    assert_eq!(n1["labfleet_os"], "debian");
    assert_eq!(n1["labfleet_os_version"], facts["os_version"]);
    assert_eq!(n1["labfleet_online"], true);
    assert!(n1["labfleet_last_seen"].as_str().unwrap().ends_with('Z'));
    assert_eq!(n1["labfleet_labels"]["role"], "k3s");
    assert_eq!(n1["labfleet_labels"]["rack"], "r1");
    assert_eq!(
        n1["labfleet_facts"]["platform"]["cpus"],
        shown["facts"]["platform"]["cpus"]
    );
    assert_eq!(
        n1["labfleet_facts"]["hardware"]["memory"]["total_bytes"],
        shown["facts"]["hardware"]["memory"]["total_bytes"]
    );
    assert!(
        n1["labfleet_facts"]["hardware"].get("nics").is_none(),
        "only the chosen facts"
    );

    // --graph draws the same groups.
    let out = ansible(&c, &dir, "ansible-inventory", &["--graph"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let graph = String::from_utf8_lossy(&out.stdout).into_owned();
    let section = |group: &str| -> Vec<String> {
        let start = graph
            .lines()
            .position(|l| l.trim_start_matches(['|', '-', ' ']) == format!("@{group}:"))
            .unwrap_or_else(|| panic!("no @{group} in\n{graph}"));
        let indent = graph.lines().nth(start).unwrap().find('@').unwrap();
        graph
            .lines()
            .skip(start + 1)
            .take_while(|l| {
                l.find(|ch: char| ch.is_alphanumeric() || ch == '@')
                    .unwrap_or(0)
                    > indent
            })
            .map(|l| l.trim_start_matches(['|', '-', ' ']).to_owned())
            .collect()
    };
    assert_eq!(section("role_k3s"), ["n1", "n2"], "{graph}");
    assert_eq!(section("rack_r1"), ["n1"], "{graph}");

    // --host prints one host's variables (Ansible itself never needs it: _meta is there).
    let out = ansible(&c, &dir, "ansible-inventory", &["--host", "n3"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let n3: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n3["labfleet_labels"]["role"], "nas");
    assert_eq!(n3["ansible_host"], "127.0.0.1");

    // The selector from the environment narrows the inventory.
    let doc = list(&c, &dir, &[("LAB_INVENTORY_SELECTOR", "role=k3s")]);
    let listed: Vec<&String> = doc["_meta"]["hostvars"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(listed, ["n1", "n2"], "{doc:#}");
    assert!(doc.get("role_nas").is_none());

    // With the address from facts, ansible_host is an address of the node's default-route
    // interface (or, on a machine without a default route, the session's).
    let doc = list(&c, &dir, &[("LAB_INVENTORY_ADDRESS", "facts")]);
    let host = doc["_meta"]["hostvars"]["n1"]["ansible_host"]
        .as_str()
        .unwrap()
        .to_owned();
    let own: Vec<String> = shown["facts"]["hardware"]["nics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|nic| nic["default_route"] == true)
        .flat_map(|nic| nic["addresses"].as_array().cloned().unwrap_or_default())
        .map(|a| a.as_str().unwrap().split('/').next().unwrap().to_owned())
        .collect();
    assert!(
        own.contains(&host) || (own.is_empty() && host == "127.0.0.1"),
        "{host} not among {own:?}"
    );

    // An ad-hoc command through the inventory, with the local connection.
    let out = ansible(
        &c,
        &dir,
        "ansible",
        &[
            "role_k3s",
            "-c",
            "local",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "var=labfleet_labels.role",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "ansible: {}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        text.matches("\"labfleet_labels.role\": \"k3s\"").count(),
        2,
        "{text}"
    );
    let out = ansible(
        &c,
        &dir,
        "ansible",
        &["n1", "-c", "local", "-m", "ansible.builtin.ping"],
        &[],
    );
    assert!(
        out.status.success(),
        "ansible ping: {}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ping\": \"pong\""));

    // A node that goes offline moves to status_offline.
    c.agents[2].stop(true);
    c.wait_online("n3", false, Duration::from_secs(30));
    let doc = list(&c, &dir, &[]);
    assert_eq!(hosts(&doc, "status_offline"), ["n3"], "{doc:#}");
    assert_eq!(doc["_meta"]["hostvars"]["n3"]["labfleet_online"], false);
}

#[test]
fn bad_inventory_input_is_refused_with_the_right_exit_code() {
    let c = Cluster::builder().agents(1).start();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(bin("labctl"));
        cmd.arg("--config").arg(c.coord.admin_config()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let out = run(
        &["inventory", "ansible", "--list"],
        &[("LAB_INVENTORY_FACTS", "platform..cpus")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--facts: 'platform..cpus'"),
        "{}",
        stderr(&out)
    );
    let out = run(&["inventory", "ansible", "--list", "-l", "role in ("], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&["inventory", "ansible"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "neither --list nor --host: {}",
        stderr(&out)
    );
    let out = run(&["inventory", "ansible", "--host", "Bad_Name"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&["inventory", "ansible", "--host", "nosuch"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no node named 'nosuch'"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &["inventory", "ansible", "--host", "n1", "-l", "role=k3s"],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "n1 does not match: {}",
        stderr(&out)
    );
    let out = run(&["inventory", "ansible", "--host", "n1"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}
