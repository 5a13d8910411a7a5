//! Backup status end to end: restic backups and drills applied with `labctl apply -f` (text
//! mode, so the plain progress lines and the result lines are what a person sees when stderr is
//! not a terminal) feed the coordinator's backup index, and `labctl backups` reports per node
//! and name the last success (snapshot, size), the last drill and the health against the
//! declared maxAge; a failed attempt turns it amber, a backup that never succeeded is red. On a
//! terminal (a pseudo-terminal from util-linux `script`) labctl draws progress bars instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::path::Path;

use backup_util::{job, random_file, require, Repo};
use lab_tests::{bin, stderr, Cluster};
use serde_json::Value;

/// A backup named `name` of `paths` with a maximum age of 26h.
fn backup_spec(metadata_name: &str, name: &str, repo: &Repo, paths: &[&Path]) -> String {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    job(
        metadata_name,
        &format!(
            "    backup:\n      name: {name}\n      maxAge: 26h\n      restic: {{{}, paths: [{}], tags: [{name}]}}\n",
            repo.fields(),
            paths.join(", ")
        ),
    )
}

/// `labctl apply -f SPEC` in text mode: (exit code, stdout, stderr).
fn apply_text(c: &Cluster, spec: &str, file: &str) -> (Option<i32>, String, String) {
    let path = c.tmp.path().join(file);
    std::fs::write(&path, spec).unwrap();
    let out = c.labctl(&["apply", "-f", path.to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

/// `labctl backups -o json` with extra arguments.
fn backups(c: &Cluster, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["backups", "-o", "json"];
    args.extend_from_slice(extra);
    let out = c.labctl(&args);
    assert!(out.status.success(), "labctl backups: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn entry<'a>(list: &'a [Value], node: &str, name: &str) -> &'a Value {
    list.iter()
        .find(|b| b["node"] == node && b["name"] == name)
        .unwrap_or_else(|| panic!("no backup {node}/{name} in {list:?}"))
}

#[test]
fn backups_and_drills_show_in_labctl_backups_with_health() {
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("home");
    std::fs::create_dir_all(&data).unwrap();
    // Big enough that restic reports progress while it reads.
    random_file(&data.join("photos.bin"), 96 << 20);
    std::fs::write(data.join("notes.txt"), "notes\n").unwrap();

    // Nothing recorded yet.
    assert!(backups(&c, &[]).is_empty());
    let out = c.labctl(&["backups"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no backups recorded yet"));

    // A backup in text mode: progress lines on stderr (not a terminal), the result on stdout.
    let spec = backup_spec("home-nightly", "home", &repo, &[&data]);
    let (code, out, err) = apply_text(&c, &spec, "home.yaml");
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    let progress_line = err.lines().find(|l| {
        l.strip_prefix("n1: ")
            .and_then(|rest| rest.split_once("% "))
            .is_some_and(|(pct, rest)| pct.parse::<u32>().is_ok() && rest.contains("B/"))
    });
    assert!(
        progress_line.is_some(),
        "no plain progress line on stderr: {err}"
    );
    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 1);
    let short_id = snapshots[0]["short_id"].as_str().unwrap().to_owned();
    assert!(
        out.contains(&format!(
            "n1: backup home: snapshot {short_id} — 2 files new, 0 changed, "
        )),
        "{out}"
    );

    // labctl backups: the node, name, snapshot, size and green.
    let list = backups(&c, &[]);
    assert_eq!(list.len(), 1, "{list:?}");
    let b = entry(&list, "n1", "home");
    assert_eq!(b["health"], "green", "{b}");
    assert_eq!(b["snapshot_id"], short_id.as_str());
    assert!(b["size_bytes"].as_u64().unwrap() >= 96 << 20, "{b}");
    assert_eq!(b["max_age_seconds"], 26 * 3600);
    assert!(b["last_success"].is_string() && b["age_seconds"].as_u64().unwrap() < 600);
    assert_eq!(b["last_attempt_state"], "succeeded");
    assert_eq!(b["last_drill"], Value::Null);
    let out = c.labctl(&["backups", "-l", "node=n1"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("n1 "))
        .unwrap_or_else(|| panic!("{table}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[1], "home", "{table}");
    assert_eq!(words[5], short_id.as_str(), "{table}");
    assert_eq!(*words.last().unwrap(), "green", "{table}");
    assert!(!table.contains('\x1b'), "no colors when not on a terminal");

    // A drill with the same backup name shows as that backup's drill.
    let spec = job(
        "home-drill",
        &format!(
            "    backup:\n      name: home\n      drill: {{{}}}\n",
            repo.fields()
        ),
    );
    let (code, out, err) = apply_text(&c, &spec, "drill.yaml");
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("n1: drill home: ok (verified 2/2 files, "),
        "{out}"
    );
    let b = entry(&backups(&c, &[]), "n1", "home").clone();
    assert_eq!(b["last_drill_ok"], true, "{b}");
    assert_eq!(b["drill"]["files_verified"], 2);
    assert!(b["drill"]["problems"].as_array().unwrap().is_empty());
    assert_eq!(b["health"], "green");

    // A failed attempt keeps the last success and turns it amber.
    let missing = c.tmp.path().join("no-such-dir");
    let spec = backup_spec("home-nightly", "home", &repo, &[&missing]);
    let (code, _, err) = apply_text(&c, &spec, "broken.yaml");
    assert_eq!(code, Some(1), "{err}");
    let b = entry(&backups(&c, &[]), "n1", "home").clone();
    assert_eq!(b["health"], "amber", "{b}");
    assert_eq!(b["last_attempt_state"], "failed");
    assert!(
        b["last_attempt_error"]
            .as_str()
            .unwrap()
            .contains("no-such-dir"),
        "{b}"
    );
    assert_eq!(
        b["snapshot_id"],
        short_id.as_str(),
        "the last success stays"
    );

    // A backup that never succeeded is red; --fail-on-red makes that exit 1.
    let out = c.labctl(&["backups", "--fail-on-red"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "amber is not red: {}",
        stderr(&out)
    );
    let spec = backup_spec("db", "db", &repo, &[&missing]);
    let (code, _, err) = apply_text(&c, &spec, "db.yaml");
    assert_eq!(code, Some(1), "{err}");
    let list = backups(&c, &[]);
    assert_eq!(list.len(), 2);
    let db = entry(&list, "n1", "db");
    assert_eq!(db["health"], "red", "{db}");
    assert_eq!(db["last_success"], Value::Null);
    let out = c.labctl(&["backups", "--fail-on-red"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("n1/db"), "{}", stderr(&out));

    // Selectors filter by node; a bad one is a usage error.
    assert!(backups(&c, &["-l", "node=other"]).is_empty());
    assert_eq!(backups(&c, &["-l", "node=n1"]).len(), 2);
    let out = c.labctl(&["backups", "-l", "role in ("]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn on_a_terminal_apply_draws_progress_bars_and_clears_them_before_the_result() {
    require("script", "bsdutils");
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("home");
    std::fs::create_dir_all(&data).unwrap();
    random_file(&data.join("photos.bin"), 96 << 20);
    let spec = c.tmp.path().join("home.yaml");
    std::fs::write(&spec, backup_spec("home", "home", &repo, &[&data])).unwrap();

    // stdout and stderr are the pseudo-terminal; everything labctl drew comes out of script.
    let command = format!(
        "'{}' --config '{}' apply -f '{}'",
        bin("labctl").display(),
        c.coord.admin_config().display(),
        spec.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{screen}\n{}", stderr(&out));
    // A bar: the node prefix, the bar in brackets, then percent and bytes.
    let bar = screen
        .rfind("n1: [")
        .unwrap_or_else(|| panic!("no progress bar drawn: {screen:?}"));
    let after_bar = &screen[bar..];
    let close = after_bar
        .find("] ")
        .unwrap_or_else(|| panic!("{after_bar:?}"));
    let (pct, _) = after_bar[close + 2..]
        .split_once("% ")
        .unwrap_or_else(|| panic!("{after_bar:?}"));
    assert!(pct.parse::<u32>().is_ok(), "{after_bar:?}");
    // No plain progress lines on a terminal, and the result comes after the last bar.
    assert!(
        !screen
            .lines()
            .any(|l| l.starts_with("n1: 0% ") || l.starts_with("n1: 100% ")),
        "{screen:?}"
    );
    let result = screen
        .find("n1: backup home: snapshot ")
        .unwrap_or_else(|| panic!("no result line: {screen:?}"));
    assert!(
        result > bar,
        "the result is printed after the bars: {screen:?}"
    );
}

#[test]
fn a_scheduled_backup_without_a_name_is_listed_under_the_schedule() {
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("etc");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("hosts"), "127.0.0.1 localhost\n").unwrap();
    let doc = format!(
        "apiVersion: labfleet/v1\nkind: Schedule\nmetadata: {{name: etc-often}}\nspec:\n  cron: '*/2 * * * * *'\n  job:\n    selector: node=n1\n    task:\n      backup:\n        maxAge: 1h\n        restic: {{{}, paths: [{}]}}\n",
        repo.fields(),
        data.display()
    );
    let file = c.tmp.path().join("schedule.yaml");
    std::fs::write(&file, doc).unwrap();
    let out = c.labctl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut last = Vec::new();
    lab_tests::wait_until(
        || {
            last = backups(&c, &[]);
            last.iter().any(|b| b["last_success"].is_string())
        },
        std::time::Duration::from_secs(60),
        "a scheduled backup recorded in labctl backups",
    );
    let out = c.labctl(&["schedule", "pause", "etc-often"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(last.len(), 1, "{last:?}");
    let b = entry(&last, "n1", "etc-often");
    assert_eq!(b["health"], "green", "{b}");
    assert_eq!(b["max_age_seconds"], 3600);
    let snapshot = b["snapshot_id"].as_str().unwrap();
    assert!(
        repo.snapshots()
            .iter()
            .any(|s| s["short_id"].as_str() == Some(snapshot)),
        "{snapshot} is not in the repository"
    );
}

#[test]
fn a_removed_nodes_red_backups_are_forgotten_so_fail_on_red_passes_again() {
    let c = Cluster::builder().agents(2).start();
    let repo = Repo::init(c.tmp.path());
    let missing = c.tmp.path().join("no-such-dir");
    // A backup that never succeeds on n1 and n2: red on both.
    let spec = backup_spec("db", "db", &repo, &[&missing]).replace("node=n1", "node in (n1,n2)");
    let (code, _, err) = apply_text(&c, &spec, "db.yaml");
    assert_eq!(code, Some(1), "{err}");
    let list = backups(&c, &[]);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(entry(&list, "n2", "db")["health"], "red");
    assert_eq!(
        c.labctl(&["backups", "--fail-on-red"]).status.code(),
        Some(1)
    );

    // A viewer cannot forget; nothing changes.
    let viewer_cfg = c.tmp.path().join("viewer.toml");
    let viewer_cfg = viewer_cfg.to_str().unwrap();
    let out = c.labctl(&[
        "user", "create", "vera", "--role", "viewer", "--out", viewer_cfg,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab_tests::labctl(Path::new(viewer_cfg), &["backups", "forget", "n1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("has role viewer"), "{}", stderr(&out));
    assert_eq!(backups(&c, &[]).len(), 2);

    // An unknown node, or a name the node has no record of: exit 2 naming it, nothing changes.
    let out = c.labctl(&["backups", "forget", "ghost"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no backup records of node 'ghost'"),
        "{}",
        stderr(&out)
    );
    let out = c.labctl(&["backups", "forget", "n1", "home"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("backup 'home' of node 'n1'"),
        "{}",
        stderr(&out)
    );
    assert_eq!(backups(&c, &[]).len(), 2);

    // Removing n1 without --forget-backups keeps its records and names the command.
    let out = c.labctl(&["node", "remove", "n1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("`labctl backups forget n1`"), "{text}");
    assert_eq!(backups(&c, &[]).len(), 2);
    let out = c.labctl(&["backups", "forget", "n1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("forgot 1 backup record(s) of node 'n1'"),
        "{text}"
    );
    assert_eq!(
        c.labctl(&["backups", "--fail-on-red"]).status.code(),
        Some(1)
    );

    // Removing n2 with --forget-backups forgets its records: nothing red is left.
    let out = c.labctl(&["node", "remove", "n2", "--forget-backups"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("forgot 1 backup record(s) of node 'n2'"),
        "{text}"
    );
    assert!(backups(&c, &[]).is_empty());
    let out = c.labctl(&["backups", "--fail-on-red"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
