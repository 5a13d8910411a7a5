//! Facts and inventory end to end: `lab-agent facts` agrees with the machine, labels come from
//! tokens, agent config and `labctl label`, and `labctl nodes -l` selects with every operator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use lab_tests::{bin, stderr, wait_until, Cluster};

#[test]
fn lab_agent_facts_agrees_with_the_system() {
    let out = Command::new(bin("lab-agent"))
        .args(["facts", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let nproc = Command::new("nproc").output().unwrap();
    let nproc: u64 = String::from_utf8_lossy(&nproc.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(facts["platform"]["cpus"], nproc);

    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(facts["hardware"]["memory"]["total_bytes"], kib * 1024);

    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    assert!(os_release.contains("ID=debian"));
    assert_eq!(facts["platform"]["os"], "debian");
    let version = os_release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_ID="))
        .unwrap()
        .trim_matches('"');
    assert_eq!(facts["platform"]["os_version"], version);

    // Every mounted filesystem of a real (block or overlay) type is reported.
    let reported: BTreeSet<String> = facts["hardware"]["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["mount_point"].as_str().unwrap().to_owned())
        .collect();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mount_point, fs_type) = (fields[1].replace("\\040", " "), fields[2]);
        if ["ext4", "ext3", "xfs", "btrfs", "zfs", "vfat", "overlay"].contains(&fs_type) {
            assert!(
                reported.contains(&mount_point),
                "{mount_point} ({fs_type}) missing: {reported:?}"
            );
        }
    }

    // Usage of `/` as df shows it (ours is rounded down to 16 MiB).
    let fs_root = facts["hardware"]["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["mount_point"] == "/")
        .unwrap();
    let df = Command::new("df")
        .args(["-B1", "--output=size", "/"])
        .output()
        .unwrap();
    let df_size: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let size = fs_root["size_bytes"].as_u64().unwrap();
    assert!(
        size <= df_size && df_size - size < 16 << 20,
        "{fs_root} vs df {df_size}"
    );
    assert!(fs_root["used_bytes"].as_u64().unwrap() <= size);
    assert!(fs_root["available_bytes"].as_u64().unwrap() <= size);

    // Every address `ip` shows is reported on its interface; the default route's interface
    // is marked.
    let nic = |name: &str| {
        facts["hardware"]["nics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
    };
    let ip = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&ip.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, addr) = (f[1], f[3]);
        if name == "lo" || name.starts_with("veth") {
            continue;
        }
        let n = nic(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(
            n["addresses"].as_array().unwrap().iter().any(|a| a == addr),
            "{addr} not in {n}"
        );
    }
    let route = std::fs::read_to_string("/proc/net/route").unwrap();
    if let Some(default) = route
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000"))
    {
        assert_eq!(nic(default[0]).unwrap()["default_route"], true);
    }

    let yaml = Command::new(bin("lab-agent"))
        .args(["facts", "-o", "yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&yaml.stdout).contains("os: debian"));
}

#[test]
fn lab_agent_facts_with_a_missing_root_is_a_usage_error() {
    let out = Command::new(bin("lab-agent"))
        .args(["facts", "--root", "/nonexistent-lab"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "error: --root /nonexistent-lab is not a directory; give the root of a mounted system, or leave it out for /"
    );
    assert!(out.stdout.is_empty());
}

fn names(c: &Cluster, selector: &str) -> Vec<String> {
    let out = c.labctl(&["nodes", "-l", selector, "-o", "json"]);
    assert!(out.status.success(), "{selector}: {}", stderr(&out));
    let nodes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    nodes
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn selectors_pick_the_right_nodes() {
    let c = Cluster::builder().agents(0).start();
    // web: labels from its token; db: labels from its agent config file.
    let mut web = c.new_agent("web");
    let out = web.enroll_output(
        &c.coord.addr,
        &c.token(&["--label", "role=web", "--label", "gpu=yes"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    web.start();
    let mut db = c.new_agent("db");
    let out = db.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(out.status.success(), "{}", stderr(&out));
    let config = c.tmp.path().join("db-agent.toml");
    std::fs::write(&config, "[labels]\nrole = \"storage\"\ntier = \"gold\"\n").unwrap();
    db.start_with(&["--config", config.to_str().unwrap()]);
    wait_until(
        || names(&c, "role,os=debian").len() == 2,
        Duration::from_secs(20),
        &format!("both nodes online with facts and labels\n{}", c.logs()),
    );

    assert_eq!(names(&c, "role=web"), ["web"]);
    assert_eq!(names(&c, "role==storage"), ["db"]);
    assert_eq!(names(&c, "role!=web"), ["db"]);
    assert_eq!(names(&c, "role in (storage,k3s)"), ["db"]);
    assert_eq!(names(&c, "role notin (storage)"), ["web"]);
    assert_eq!(names(&c, "gpu"), ["web"]);
    assert_eq!(names(&c, "!gpu"), ["db"]);
    assert_eq!(names(&c, "os=debian,arch=x86_64"), ["db", "web"]);
    assert_eq!(
        names(&c, "facts.hardware.memory.total_bytes>=1e6"),
        ["db", "web"]
    );
    assert_eq!(
        names(&c, "facts.hardware.memory.total_bytes<1e6"),
        Vec::<String>::new()
    );
    assert_eq!(names(&c, "facts.platform.cpus>=1,tier=gold"), ["db"]);
    assert_eq!(names(&c, ""), ["db", "web"]);

    // labctl label: operator labels override and can be removed again.
    let out = c.labctl(&["label", "db", "role=k3s", "zone=a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&c, "role=k3s,zone=a"), ["db"]);
    let out = c.labctl(&["label", "db", "role-", "zone-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&c, "role=storage"), ["db"]);
    let out = c.labctl(&["label", "db", "nosuch-"]);
    assert_eq!(out.status.code(), Some(1));

    // Bad selectors: exit 2 with a message that points at the problem.
    for bad in ["role=web,,x", "role in (a", "facts.cpus>>1", "role<3"] {
        let out = c.labctl(&["nodes", "-l", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("position"), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains('^'), "{bad}: {}", stderr(&out));
    }
    let out = c.labctl(&["label", "db", "justakey"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn node_show_has_all_facts() {
    let c = Cluster::builder().agents(1).start();
    wait_until(
        || c.node("n1").is_some_and(|n| n["os"].is_string()),
        Duration::from_secs(10),
        "facts of n1",
    );
    let out = c.labctl(&["node", "show", "n1", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        node["facts"]["hardware"]["memory"]["total_bytes"].is_u64(),
        "{node}"
    );
    assert!(
        node["facts"]["debian"]["packages_installed"].is_u64(),
        "{node}"
    );
    assert_eq!(node["labels"]["os"], "debian");
    let out = c.labctl(&["node", "show", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no node named 'nosuch'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_node_cannot_take_another_nodes_identity_label() {
    let c = Cluster::builder().agents(0).start();
    // n1 is rogue: its agent config claims n2's identity and a derived fact label.
    let mut n1 = c.new_agent("n1");
    let out = n1.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(out.status.success(), "{}", stderr(&out));
    let config = c.tmp.path().join("n1-agent.toml");
    std::fs::write(
        &config,
        "[labels]\nnode = \"n2\"\nhostname = \"n2\"\nstatus = \"offline\"\nrole = \"web\"\n",
    )
    .unwrap();
    n1.start_with(&["--config", config.to_str().unwrap()]);
    let mut n2 = c.new_agent("n2");
    let out = n2.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(out.status.success(), "{}", stderr(&out));
    n2.start();
    wait_until(
        || names(&c, "role=web,os").len() == 1 && c.online("n2"),
        Duration::from_secs(20),
        &format!(
            "n1 with its config labels and facts, n2 online\n{}",
            c.logs()
        ),
    );

    // Selection and `labctl nodes` use the same effective labels: derived ones win.
    assert_eq!(names(&c, "node=n2"), ["n2"]);
    assert_eq!(names(&c, "node=n1"), ["n1"]);
    let n1_labels = c.node("n1").unwrap()["labels"].clone();
    assert_eq!(n1_labels["node"], "n1", "{n1_labels}");
    assert_ne!(n1_labels["hostname"], "n2", "{n1_labels}");
    assert_eq!(n1_labels["role"], "web", "{n1_labels}");
    // `status` is derived from the session, whatever the agent's config says.
    assert_eq!(n1_labels["status"], "online", "{n1_labels}");
    assert_eq!(names(&c, "status=offline"), Vec::<String>::new());

    // A job for n2 runs on n2 alone.
    let out = c.labctl(&[
        "run",
        "-l",
        "node=n2",
        "--",
        "sh",
        "-c",
        "echo job on $LAB_NODE",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "n2: job on n2");
    // The labels were dropped when its Hello arrived, before n1 showed its other labels.
    let log = std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap();
    assert!(log.contains("ignoring reserved labels"), "{log}");
    // The agent says so on its side too, at start.
    let log = std::fs::read_to_string(c.tmp.path().join("agent-n1.log")).unwrap();
    assert!(log.contains("label 'node' is reserved"), "{log}");

    // Operators cannot set reserved labels either: on a node or through a token.
    for args in [
        &["label", "n1", "node=n2"][..],
        &["label", "n1", "os=windows"],
        &["token", "create", "--label", "node=n2"],
    ] {
        let out = c.labctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is reserved"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(names(&c, "node=n2"), ["n2"]);
}

/// Every node with whole fact documents, through the API.
async fn full_listing(
    admin: &mut lab_proto::v1::operator_service_client::OperatorServiceClient<
        tonic::transport::Channel,
    >,
    selector: &str,
) -> Vec<lab_proto::v1::Node> {
    lab_proto::pages::all_nodes(admin, selector).await.unwrap()
}

#[test]
fn brief_listings_counts_and_a_nodes_jobs_agree_with_the_whole_inventory() {
    use lab_proto::v1::{CountNodesRequest, ListJobsRequest, ListNodesRequest};
    use serde_json::{json, Value};

    let mut c = Cluster::builder().agents(3).start();
    assert!(c.labctl(&["label", "n1", "role=db"]).status.success());
    let first = c.labctl(&["run", "-l", "node=n1", "--", "true"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let everywhere = c.labctl(&["run", "--", "true"]);
    assert!(everywhere.status.success(), "{}", stderr(&everywhere));
    c.agents[2].stop(false);
    c.wait_online("n3", false, Duration::from_secs(15));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut admin = c.coord.admin_client().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let full = loop {
            let full = full_listing(&mut admin, "").await;
            if full.iter().all(|n| !n.facts_json.is_empty()) {
                break full;
            }
            assert!(std::time::Instant::now() < deadline, "facts of every node");
            tokio::time::sleep(Duration::from_millis(100)).await; // sleep-ok: poll interval under the deadline above
        };
        assert_eq!(full.len(), 3);

        // Without facts but the paths asked for; labels and state as in the whole listing.
        let paths = ["/platform/cpus", "/hardware/memory/total_bytes", "/nope"];
        let brief = lab_proto::pages::all_nodes_brief(&mut admin, "", &paths)
            .await
            .unwrap();
        assert_eq!(brief.len(), 3);
        for (b, f) in brief.iter().zip(&full) {
            assert_eq!((&b.name, &b.labels, b.online), (&f.name, &f.labels, f.online));
            let whole: Value = serde_json::from_str(&f.facts_json).unwrap();
            let kept: Value = serde_json::from_str(&b.facts_json).unwrap();
            assert_eq!(
                kept,
                json!({"platform": {"cpus": whole["platform"]["cpus"]},
                       "hardware": {"memory": {"total_bytes": whole["hardware"]["memory"]["total_bytes"]}}}),
                "{}",
                b.name
            );
            assert!(b.facts_json.len() < f.facts_json.len() / 4, "{}", b.facts_json);
        }
        let bare = admin
            .list_nodes(ListNodesRequest {
                omit_facts: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(bare.nodes.iter().all(|n| n.facts_json.is_empty()));
        assert!(bare.nodes.iter().all(|n| n.facts_collected_unix_ms > 0));
        // Selectors pick the same nodes either way, fact terms included.
        for selector in [
            "os=debian,role=db",
            "facts.platform.cpus>=1,status=online",
            "facts.hardware.memory.total_bytes>=1,!role",
        ] {
            let names = |nodes: Vec<lab_proto::v1::Node>| {
                nodes.into_iter().map(|n| n.name).collect::<Vec<_>>()
            };
            let brief = lab_proto::pages::all_nodes_brief(&mut admin, selector, &["/platform"])
                .await
                .unwrap();
            let whole = names(full_listing(&mut admin, selector).await);
            assert!(!whole.is_empty(), "{selector}");
            assert_eq!(names(brief), whole, "{selector}");
        }
        let bad = admin
            .list_nodes(ListNodesRequest {
                omit_facts: true,
                fact_paths: vec!["platform.cpus".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().contains("not a JSON pointer"), "{}", bad.message());

        // Counts: two online, one offline, by OS and role as the labels say.
        let counts = admin
            .count_nodes(CountNodesRequest {
                selector: String::new(),
                group_by: vec!["os,os-version".into(), "role".into()],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (counts.total, counts.online, counts.offline, counts.revoked),
            (3, 2, 1, 0)
        );
        let os = &full[0].labels;
        assert_eq!(counts.groups[0].keys, ["os", "os-version"]);
        assert_eq!(counts.groups[0].groups.len(), 1);
        assert_eq!(
            counts.groups[0].groups[0].values,
            [os["os"].clone(), os["os-version"].clone()]
        );
        assert_eq!(counts.groups[0].groups[0].nodes, 3);
        let roles: Vec<(Vec<String>, u32)> = counts.groups[1]
            .groups
            .iter()
            .map(|g| (g.values.clone(), g.nodes))
            .collect();
        assert_eq!(roles, [(vec![String::new()], 2), (vec!["db".into()], 1)]);
        assert_eq!(counts.agent_versions.values().sum::<u32>(), 3);
        let online_db = admin
            .count_nodes(CountNodesRequest {
                selector: "role=db,status=online".into(),
                group_by: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((online_db.total, online_db.online), (1, 1));
        let bad = admin
            .count_nodes(CountNodesRequest {
                selector: String::new(),
                group_by: vec!["os,".into()],
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);

        sorted_listings_page_by_offset_and_count_every_match(&mut admin).await;

        // A node's jobs: each with that node's task only, newest first.
        let jobs = |node: &str| ListJobsRequest {
            node: node.into(),
            ..Default::default()
        };
        let of_n2 = admin.list_jobs(jobs("n2")).await.unwrap().into_inner().jobs;
        assert_eq!(of_n2.len(), 1);
        assert_eq!(of_n2[0].counts.unwrap().total, 3);
        assert_eq!(of_n2[0].tasks.len(), 1);
        assert_eq!(of_n2[0].tasks[0].node, "n2");
        let of_n1 = admin.list_jobs(jobs("n1")).await.unwrap().into_inner().jobs;
        assert_eq!(of_n1.len(), 2);
        assert!(of_n1[0].submitted_unix_ms >= of_n1[1].submitted_unix_ms);
        assert_eq!(of_n1[1].counts.unwrap().total, 1);
        assert!(of_n1.iter().all(|j| j.tasks.len() == 1 && j.tasks[0].node == "n1"));
        let bad = admin.list_jobs(jobs("../n1")).await.unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    });
}

/// Sorted `ListNodes` over n1 (role=db), n2 and n3 (offline): pages by offset in the order
/// asked, the counts of the whole listing, and clear errors.
async fn sorted_listings_page_by_offset_and_count_every_match(
    admin: &mut lab_proto::v1::operator_service_client::OperatorServiceClient<
        tonic::transport::Channel,
    >,
) {
    use lab_proto::v1::ListNodesRequest;

    let ask = |selector: &str, order_by: &str, descending: bool, offset: u32, page_size: u32| {
        ListNodesRequest {
            selector: selector.into(),
            omit_facts: true,
            fact_paths: vec!["/platform".into()],
            order_by: order_by.into(),
            descending,
            offset,
            page_size,
            ..Default::default()
        }
    };
    let cases = [
        // Page 2 of 1 by name; the whole listing counted.
        (ask("", "name", false, 1, 1), "n2", 3, 2),
        (ask("", "name", true, 0, 2), "n3,n2", 3, 2),
        // Offline first, then by name.
        (ask("", "status", false, 0, 0), "n3,n1,n2", 3, 2),
        (ask("", "status", false, 1, 5), "n1,n2", 3, 2),
        (ask("", "status", true, 0, 1), "n2", 3, 2),
        // Nodes without the label first.
        (ask("", "label:role", false, 0, 0), "n2,n3,n1", 3, 2),
        (ask("", "cpus", false, 2, 1), "n3", 3, 2),
        // Offset alone: by name.
        (ask("", "", false, 2, 0), "n3", 3, 2),
        (ask("status=online", "name", true, 0, 0), "n2,n1", 2, 2),
        (
            ask("facts.platform.cpus>=1,!role", "os", false, 0, 0),
            "n2,n3",
            2,
            1,
        ),
        (ask("", "name", false, 3, 10), "", 3, 2),
    ];
    for (request, names, total, online) in cases {
        let what = format!("{request:?}");
        let page = admin.list_nodes(request).await.unwrap().into_inner();
        let got: Vec<&str> = page.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(got.join(","), names, "{what}");
        assert_eq!((page.total, page.online), (total, online), "{what}");
        assert!(page.next_page_token.is_empty(), "{what}");
        assert!(
            page.nodes
                .iter()
                .all(|n| n.facts_json.contains("\"platform\"")),
            "{what}"
        );
    }
    let bad = admin
        .list_nodes(ask("", "nmae", false, 0, 0))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(
        bad.message().contains("order_by 'nmae'")
            && bad.message().contains("status")
            && bad.message().contains("label:KEY"),
        "{}",
        bad.message()
    );
    let mixed = admin
        .list_nodes(ListNodesRequest {
            page_token: "n2".into(),
            ..ask("", "status", false, 0, 0)
        })
        .await
        .unwrap_err();
    assert_eq!(mixed.code(), tonic::Code::InvalidArgument);
    assert!(mixed.message().contains("offset"), "{}", mixed.message());
}
