//! The coordinator's metrics with Debian's Prometheus tools: `promtool check metrics` finds
//! nothing to complain about in a live coordinator's `/metrics` (nodes online and offline,
//! backups green and red with a drill, failed tasks), the fleet series show what happened, and
//! the example alert rules pass `promtool check rules` and their unit test
//! (`deploy/prometheus/labfleet-rules.test.yml`: node offline and backup red fire, and do not
//! fire while healthy). Every series the rules use is one the coordinator serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use backup_util::{apply, job, require, Repo};
use lab_tests::{stderr, wait_until, Cluster};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// GET /metrics with an `Accept` header (or none): (content type, body).
fn scrape(c: &Cluster, accept: Option<&str>) -> (String, String) {
    let mut s = std::net::TcpStream::connect(&c.coord.metrics_addr).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n{accept}\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (content_type, body.to_owned())
}

/// The value of the sample `series` (name with labels, as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (Option<i32>, String) {
    require("promtool", "prometheus");
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_rules_file_passes_promtool_and_its_unit_test() {
    let (code, out) = promtool(&["check", "rules", "labfleet-rules.yml"], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SUCCESS: 4 rules found"), "{out}");
    let (code, out) = promtool(&["test", "rules", "labfleet-rules.test.yml"], None);
    assert_eq!(code, Some(0), "{out}");
    let test = std::fs::read_to_string(rules_dir().join("labfleet-rules.test.yml")).unwrap();
    for alert in ["LabfleetNodeOffline", "LabfleetBackupRed"] {
        assert!(
            test.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels"
            )),
            "the unit test must expect {alert} to fire"
        );
    }
}

#[test]
fn a_live_coordinators_metrics_pass_promtool_and_show_the_fleet() {
    let mut c = Cluster::builder().agents(2).start();
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("home");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "notes\n").unwrap();
    let backup = |name: &str, path: &std::path::Path| {
        job(
            name,
            &format!(
                "    backup:\n      name: {name}\n      maxAge: 26h\n      restic: {{{}, paths: [{}], tags: [{name}]}}\n",
                repo.fields(),
                path.display()
            ),
        )
    };
    // home: a backup and a drill that succeed (green); db: a backup that fails (red).
    apply(&c, &backup("home", &data)).assert_ok();
    apply(
        &c,
        &job(
            "home-drill",
            &format!(
                "    backup:\n      name: home\n      drill: {{{}}}\n",
                repo.fields()
            ),
        ),
    )
    .assert_ok();
    apply(&c, &backup("db", &c.tmp.path().join("no-such-dir"))).assert_failed();
    // Failed tasks: one of an unnamed job on both nodes, one of a named job.
    let out = c.labctl(&["run", "--", "false"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed = apply(
        &c,
        &job("check-disks", "    exec: {argv: [sh, -c, 'exit 3']}\n"),
    );
    assert_eq!(failed.task.exit_code, 3, "{}", failed.describe());
    c.agents[1].stop(true);
    c.wait_online("n2", false, Duration::from_secs(30));

    let (content_type, text) = scrape(&c, None);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let (code, out) = promtool(&["check", "metrics"], Some(&text));
    assert_eq!(code, Some(0), "promtool check metrics:\n{out}\n{text}");
    assert!(out.trim().is_empty(), "promtool has remarks:\n{out}");

    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(value("labfleet_nodes_online"), 1.0);
    assert_eq!(value("labfleet_node_online{node=\"n1\"}"), 1.0);
    assert_eq!(value("labfleet_node_online{node=\"n2\"}"), 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let seen = value("labfleet_node_last_seen_timestamp_seconds{node=\"n2\"}");
    assert!(
        now - seen < 120.0 && seen <= now,
        "last seen {seen}, now {now}"
    );
    let expiry = value("labfleet_node_certificate_expiry_timestamp_seconds{node=\"n1\"}");
    let lifetime = value("labfleet_node_certificate_lifetime_seconds");
    assert_eq!(
        lifetime,
        30.0 * 86400.0,
        "the harness's node certificates live 30 days"
    );
    assert!((expiry - now - lifetime).abs() < 600.0, "expiry {expiry}");
    assert_eq!(
        value("labfleet_backup_health{node=\"n1\",backup=\"home\"}"),
        1.0
    );
    assert_eq!(
        value("labfleet_backup_health{node=\"n1\",backup=\"db\"}"),
        3.0
    );
    assert_eq!(
        value("labfleet_backup_max_age_seconds{node=\"n1\",backup=\"db\"}"),
        26.0 * 3600.0
    );
    let success =
        value("labfleet_backup_last_success_timestamp_seconds{node=\"n1\",backup=\"home\"}");
    assert!(now - success < 600.0, "last success {success}");
    assert!(
        sample(
            &text,
            "labfleet_backup_last_success_timestamp_seconds{node=\"n1\",backup=\"db\"}"
        )
        .is_none(),
        "db never succeeded"
    );
    assert_eq!(
        value("labfleet_backup_last_drill_ok{node=\"n1\",backup=\"home\"}"),
        1.0
    );
    assert_eq!(
        value("labfleet_tasks_failed_total{job_name=\"_unnamed\",state=\"failed\"}"),
        2.0
    );
    assert_eq!(
        value("labfleet_tasks_failed_total{job_name=\"check-disks\",state=\"failed\"}"),
        1.0
    );
    assert_eq!(
        value("labfleet_tasks_failed_total{job_name=\"db\",state=\"failed\"}"),
        1.0
    );
    assert!(
        !text.contains("job_id") && !text.contains("task_id"),
        "no per-job or per-task series"
    );

    // Every series the example rules use is served.
    let rules = std::fs::read_to_string(rules_dir().join("labfleet-rules.yml")).unwrap();
    let used: BTreeSet<&str> = rules
        .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
        .filter(|w| w.starts_with("labfleet_"))
        .collect();
    let served: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &used {
        assert!(
            served.contains(name),
            "the rules use {name}, which /metrics does not serve"
        );
    }

    // Prometheus asks for OpenMetrics and gets it, with the same samples.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, om) = scrape(&c, Some(prometheus_accept));
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("labfleet_node_online{node=\"n2\"} 0"));

    // A node that comes back is online again in the next scrape.
    c.agents[1].start();
    wait_until(
        || sample(&scrape(&c, None).1, "labfleet_node_online{node=\"n2\"}") == Some(1.0),
        Duration::from_secs(30),
        "n2 online in /metrics",
    );
}
