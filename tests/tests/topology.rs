//! The lab's topology end to end: three agents report facts from fixture roots (`lab-agent run
//! --facts-root`): a Proxmox host `pve1` with three guests, two of them the enrolled nodes
//! `vm1` (k3s server) and `vm2` (k3s agent) by their DMI product UUID (written in another case
//! in the guest config), one not enrolled. The coordinator joins them: `labctl topology` as a
//! tree, JSON, DOT (checked by Graphviz), Mermaid and SVG (checked by xmllint, both from
//! Graphviz and from labctl's own layout), `--under`, the derived `hypervisor=` label in
//! `labctl nodes -l` and `labctl run -l`, and the errors for a bad `--under` and `-o`.
//!
//! Needs `dot` (graphviz) and `xmllint` (libxml2-utils). The outputs are also written to
//! `$CARGO_TARGET_TMPDIR/topology/` (the README's example comes from there).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lab_tests::fixture_root::{pve_host, write};
use lab_tests::{bin, require, stderr, wait_until, Cluster};
use serde_json::Value;

const VM1_UUID: &str = "5c1d7e2a-8b3f-4a6c-9d0e-1f2a3b4c5d6e";
const VM2_UUID: &str = "7e3f9a4c-0d5b-4c8e-9f2a-3b4c5d6e7f80";
const SPARE_UUID: &str = "6d2e8f3b-9c4a-4b7d-8e1f-2a3b4c5d6e7f";

/// The basics of any Debian-like host with a DMI product UUID.
fn machine(root: &Path, hostname: &str, uuid: &str) {
    write(root, "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    write(root, "etc/hostname", &format!("{hostname}\n"));
    write(root, "proc/sys/kernel/hostname", &format!("{hostname}\n"));
    write(root, "sys/class/dmi/id/product_uuid", &format!("{uuid}\n"));
}

/// Proxmox VE host `pve1`: guests 100 (vm1), 101 (not enrolled), 102 (vm2), a template 9000;
/// a Ceph client config and a MergerFS pool.
fn pve1(root: &Path) {
    machine(root, "pve1", "0a0b0c0d-0000-4000-8000-000000000001");
    pve_host(root);
    for (vmid, name, uuid) in [
        (100, "vm1", VM1_UUID.to_uppercase()),
        (101, "spare", SPARE_UUID.to_owned()),
        (102, "vm2", VM2_UUID.to_owned()),
    ] {
        write(
            root,
            &format!("etc/pve/qemu-server/{vmid}.conf"),
            &format!("name: {name}\nsmbios1: uuid={uuid},manufacturer=QEMU\nmemory: 4096\n"),
        );
    }
    write(
        root,
        "etc/pve/qemu-server/9000.conf",
        "name: debian-template\ntemplate: 1\n",
    );
    write(
        root,
        "etc/ceph/ceph.conf",
        "[global]\n fsid = 4a1b2c3d-5e6f-4789-8abc-def012345678\n mon_host = 10.0.0.11\n",
    );
    write(
        root,
        "etc/fstab",
        "/mnt/disk* /mnt/pool fuse.mergerfs allow_other 0 0\n",
    );
}

/// A VM running k3s as `role` (`server` starts the cluster, `agent` joins it).
fn k3s_vm(root: &Path, hostname: &str, uuid: &str, role: &str) {
    machine(root, hostname, uuid);
    let (unit, args) = match role {
        "server" => ("k3s.service", "server --cluster-init"),
        _ => ("k3s-agent.service", "agent --server https://vm1:6443"),
    };
    write(
        root,
        &format!("etc/systemd/system/{unit}"),
        &format!("[Service]\nExecStart=/usr/local/bin/k3s {args} --token-file /etc/k3s-token\n"),
    );
    write(root, "etc/k3s-token", "s3cret-token\n");
}

fn names(c: &Cluster, selector: &str) -> Vec<String> {
    c.node_names(selector)
}

fn ok(out: Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `program args` with `input` on stdin.
fn pipe(program: &str, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn save(name: &str, text: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("topology");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn topology_from_fixture_facts() {
    require("dot", "graphviz");
    require("xmllint", "libxml2-utils");
    let mut c = Cluster::builder().agents(0).start();
    for name in ["pve1", "vm1", "vm2"] {
        let root = c.tmp.path().join(format!("root-{name}"));
        match name {
            "pve1" => pve1(&root),
            "vm1" => k3s_vm(&root, name, VM1_UUID, "server"),
            _ => k3s_vm(&root, name, VM2_UUID, "agent"),
        }
        c.add_agent_with_facts_root(name, &root);
    }
    wait_until(
        || names(&c, "hypervisor=pve1") == ["vm1", "vm2"] && c.nodes().len() == 3,
        Duration::from_secs(30),
        &format!("vm1 and vm2 labelled hypervisor=pve1\n{}", c.logs()),
    );
    assert_eq!(names(&c, "hypervisor!=pve1"), ["pve1"]);
    assert_eq!(names(&c, "!hypervisor"), ["pve1"]);

    // tree
    let tree = ok(c.labctl(&["topology"]), "topology");
    save("tree.txt", &tree);
    for line in [
        "pve1 (online) [pve node pve1, cluster homelab, pve 8.2.4]",
        "├─ 100 qemu vm1  → vm1 (online, k3s server)",
        "├─ 101 qemu spare  no enrolled node",
        "├─ 102 qemu vm2  → vm2 (online, k3s agent)",
        "└─ 9000 qemu debian-template  template",
        "servers vm1; agents vm2",
        "ceph 4a1b2c3d-5e6f-4789-8abc-def012345678: health unknown; hosts pve1",
        "mergerfs /mnt/pool on pve1 (not mounted): /mnt/disk*",
        "every control-plane node ('vm1') runs on 'pve1'",
    ] {
        assert!(tree.contains(line), "{line:?} missing in\n{tree}");
    }

    // JSON (and YAML, the same document)
    let json = ok(c.labctl(&["topology", "-o", "json"]), "json");
    save("topology.json", &json);
    let t: Value = serde_json::from_str(&json).unwrap();
    let hv = &t["hypervisors"][0];
    assert_eq!(hv["pve_node"], "pve1");
    let guests: Vec<(u64, Option<&str>)> = hv["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["vmid"].as_u64().unwrap(), g["node"]["name"].as_str()))
        .collect();
    assert_eq!(
        guests,
        [
            (100, Some("vm1")),
            (101, None),
            (102, Some("vm2")),
            (9000, None)
        ]
    );
    assert_eq!(hv["guests"][0]["uuid"], VM1_UUID, "lower case");
    assert_eq!(t["standalone"], Value::Array(vec![]));
    assert_eq!(t["k3s"][0]["servers"][0]["name"], "vm1");
    assert_eq!(t["k3s"][0]["agents"][0]["name"], "vm2");
    assert_eq!(t["k3s"][0]["server_urls"][0], "https://vm1:6443");
    assert_eq!(t["problems"], Value::Array(vec![]));
    let yaml = ok(c.labctl(&["topology", "-o", "yaml"]), "yaml");
    let from_yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, t);

    // DOT, checked by Graphviz
    let dot = ok(c.labctl(&["topology", "-o", "dot"]), "dot");
    save("topology.dot", &dot);
    for edge in [
        r#""n:pve1" -> "g:pve1:100";"#,
        r#""g:pve1:100" -> "n:vm1";"#,
        r#""n:vm2" -> "k3s:"#,
    ] {
        assert!(dot.contains(edge), "{edge} missing in\n{dot}");
    }
    let rendered = pipe("dot", &["-Tsvg"], &dot);
    assert!(rendered.status.success(), "dot: {}", stderr(&rendered));

    // Mermaid
    let mermaid = ok(c.labctl(&["topology", "-o", "mermaid"]), "mermaid");
    save("topology.mmd", &mermaid);
    assert!(mermaid.starts_with("flowchart TB\n"), "{mermaid}");
    assert!(mermaid.contains("\"vm1\""), "{mermaid}");
    assert!(mermaid.contains("not enrolled"), "{mermaid}");
    assert!(mermaid.contains("-->|\"agent\"|"), "{mermaid}");

    // SVG by Graphviz, and by labctl itself when no `dot` is on PATH
    let out = c.labctl(&["topology", "-o", "svg"]);
    assert!(
        stderr(&out).contains("svg rendered by Graphviz dot"),
        "{}",
        stderr(&out)
    );
    let svg = ok(out, "svg");
    save("topology.svg", &svg);
    let lint = pipe("xmllint", &["--noout", "-"], &svg);
    assert!(lint.status.success(), "graphviz svg: {}", stderr(&lint));
    let out = Command::new(bin("labctl"))
        .arg("--config")
        .arg(c.coord.admin_config())
        .args(["topology", "-o", "svg"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("svg rendered by labctl's own layout"),
        "{}",
        stderr(&out)
    );
    let own = ok(out, "own svg");
    save("topology-own.svg", &own);
    let lint = pipe("xmllint", &["--noout", "-"], &own);
    assert!(lint.status.success(), "own svg: {}", stderr(&lint));
    assert!(own.contains(">vm2</text>"), "{own}");

    // --under
    let under = ok(
        c.labctl(&["topology", "--under", "pve1", "-o", "json"]),
        "under",
    );
    let sub: Value = serde_json::from_str(&under).unwrap();
    assert_eq!(sub["hypervisors"].as_array().unwrap().len(), 1);
    assert_eq!(sub["k3s"].as_array().unwrap().len(), 1);
    let out = c.labctl(&["topology", "--under", "vm1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'vm1' is not a hypervisor in the topology; hypervisors: pve1"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    let out = c.labctl(&["topology", "-o", "png"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid value 'png'"),
        "{}",
        stderr(&out)
    );

    // the derived label targets jobs and cannot be set by hand
    let run = ok(
        c.labctl(&["run", "-l", "hypervisor=pve1", "--", "echo", "on-a-guest"]),
        "run",
    );
    let mut lines: Vec<&str> = run.lines().filter(|l| l.contains("on-a-guest")).collect();
    lines.sort_unstable();
    assert_eq!(lines, ["vm1: on-a-guest", "vm2: on-a-guest"], "{run}");
    let out = c.labctl(&["label", "pve1", "hypervisor=pve9"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is reserved"), "{}", stderr(&out));

    // a removed node leaves the topology and its guest is shown as not enrolled
    ok(c.labctl(&["node", "remove", "vm2"]), "remove vm2");
    let t: Value =
        serde_json::from_str(&ok(c.labctl(&["topology", "-o", "json"]), "json")).unwrap();
    assert!(t["hypervisors"][0]["guests"][2]["node"].is_null(), "{t:#}");
    assert_eq!(names(&c, "hypervisor=pve1"), ["vm1"]);
}
