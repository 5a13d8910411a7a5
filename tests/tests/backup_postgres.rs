//! PostgreSQL dumps end to end: a throwaway PostgreSQL cluster (initdb as the `postgres` user,
//! on a unix socket in a temp dir) is dumped by `labctl apply -f` into a real restic repository
//! through stdin (no temporary file), restored into a new database with identical content; an
//! existing database is refused, a failed dump leaves no snapshot, and a dump stuck past the
//! task's timeout is killed (pg_dump and restic) without leaving a snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use backup_util::{apply, job, Repo};
use lab_proto::v1::backup_result::Kind;
use lab_tests::postgres::Postgres;
use lab_tests::{stderr, wait_until, Cluster};

/// The connection fields of a spec operation.
fn fields(pg: &Postgres) -> String {
    format!(
        "host: {}, port: {}, username: postgres, runAs: postgres",
        pg.path("sock"),
        pg.port
    )
}

fn dump_spec(repo: &Repo, pg: &Postgres, database: &str) -> String {
    job(
        "app-db",
        &format!(
            "    backup:\n      postgres: {{{}, {}, database: {database}, tags: [pg]}}\n",
            repo.fields(),
            fields(pg)
        ),
    )
}

fn restore_spec(repo: &Repo, pg: &Postgres, database: &str) -> String {
    job(
        "app-db",
        &format!(
            "    backup:\n      postgresRestore: {{{}, {}, snapshot: latest, filename: app.sql, database: {database}}}\n",
            repo.fields(),
            fields(pg)
        ),
    )
}

const CONTENT: &str = "SELECT id, name, amount, note FROM ledger ORDER BY id";

#[test]
fn a_database_is_dumped_through_restic_and_restored_into_a_new_one() {
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE ledger (id int PRIMARY KEY, name text, amount numeric(12,2), note text);
         INSERT INTO ledger SELECT i, 'item ' || i, i * 1.25, md5(i::text) FROM generate_series(1, 5000) i;
         INSERT INTO ledger VALUES (0, 'quote''s & tabs\t', -1, NULL);",
    );
    let original = pg.sql("app", CONTENT);
    assert_eq!(original.lines().count(), 5001);

    let run = apply(&c, &dump_spec(&repo, &pg, "app"));
    run.assert_ok();
    let Some(Kind::Backup(summary)) = run.result().kind else {
        panic!("{}", run.describe())
    };
    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["tags"], serde_json::json!(["pg"]));
    assert_eq!(snapshots[0]["paths"], serde_json::json!(["/app.sql"]));
    assert_eq!(
        summary.snapshot_id,
        snapshots[0]["short_id"].as_str().unwrap()
    );
    let dumped = repo.restic(&["dump", "latest", "/app.sql"]);
    assert!(String::from_utf8_lossy(&dumped.stdout).contains("CREATE TABLE public.ledger"));
    assert_eq!(summary.total_bytes_processed, dumped.stdout.len() as u64);

    let run = apply(&c, &restore_spec(&repo, &pg, "app_restored"));
    run.assert_ok();
    assert_eq!(pg.sql("app_restored", CONTENT), original);

    // An existing database is refused, and left alone.
    pg.sql(
        "app_restored",
        "INSERT INTO ledger VALUES (-5, 'local', 0, 'kept')",
    );
    let run = apply(&c, &restore_spec(&repo, &pg, "app_restored"));
    let error = run.assert_failed();
    assert!(
        error.contains("already exists") && error.contains("replace"),
        "{error}"
    );
    assert_eq!(
        pg.sql("app_restored", "SELECT note FROM ledger WHERE id = -5"),
        "kept\n"
    );

    // A dump that fails (no such database) leaves no snapshot behind.
    let run = apply(&c, &dump_spec(&repo, &pg, "missing_db"));
    let error = run.assert_failed();
    assert!(
        error.contains("pg_dump") && error.contains("missing_db"),
        "{error}"
    );
    assert_eq!(repo.snapshots().len(), 1, "no snapshot of a failed dump");
    let check = repo.restic(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // Without a database: the whole cluster with pg_dumpall.
    let spec = job(
        "cluster",
        &format!(
            "    backup:\n      postgres: {{{}, {}, tags: [cluster]}}\n",
            repo.fields(),
            fields(&pg)
        ),
    );
    apply(&c, &spec).assert_ok();
    let all = repo.restic(&["dump", "--tag", "cluster", "latest", "/pg_dumpall.sql"]);
    assert!(all.status.success(), "{}", stderr(&all));
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(
        all.contains("CREATE DATABASE app ") && all.contains("CREATE DATABASE app_restored "),
        "{}",
        &all[..all.len().min(2000)]
    );
}

#[test]
fn a_dump_past_its_timeout_is_killed_and_leaves_no_snapshot() {
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let pg = Postgres::start();
    pg.sql("postgres", "CREATE DATABASE app");
    pg.sql(
        "app",
        "CREATE TABLE ledger (id int); INSERT INTO ledger VALUES (1)",
    );

    // Another session holds an exclusive lock, so pg_dump waits for it.
    let mut holder = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-h",
            &pg.path("sock"),
            "-p",
            &pg.port.to_string(),
        ])
        .args(["-U", "postgres", "-d", "app"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    stdin
        .write_all(b"BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("locked"), "{line}");

    let spec = dump_spec(&repo, &pg, "app").replace("  task:\n", "  timeout: 3s\n  task:\n");
    let run = apply(&c, &spec);
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert_eq!(
        run.task.state(),
        lab_proto::v1::TaskState::TimedOut,
        "{}",
        run.describe()
    );
    // The agent killed pg_dump (its process group) at the timeout.
    let sock = pg.path("sock");
    wait_until(
        || processes_with(&["pg_dump", &sock]).is_empty(),
        Duration::from_secs(10),
        "the agent's pg_dump is gone",
    );
    stdin.write_all(b"COMMIT;\n").unwrap();
    drop(stdin);
    assert!(holder.wait().unwrap().success());
    assert!(repo.snapshots().is_empty(), "no snapshot of a killed dump");
    let check = repo.restic(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
}

/// Pids of processes whose command line contains every one of `words`.
fn processes_with(words: &[&str]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            words.iter().all(|w| cmdline.contains(w))
        })
        .collect()
}
