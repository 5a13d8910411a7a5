//! PostgreSQL dumps end to end: a throwaway PostgreSQL cluster (initdb as the `postgres` user,
//! on a unix socket in a temp dir) is dumped by `labctl apply -f` into a real restic repository
//! through stdin (no temporary file), restored into a new database with identical content; an
//! existing database is refused, and a failed dump leaves no snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use backup_util::{apply, job, require, Repo};
use lab_proto::v1::backup_result::Kind;
use lab_tests::{free_port, stderr, Cluster};

/// The newest PostgreSQL server binaries of the Debian packages.
fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|b| b.join("initdb").exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("this test needs the PostgreSQL server; install it with 'apt-get install -y postgresql' (.ci/run does)")
    })
}

/// A PostgreSQL cluster of its own, stopped when dropped.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        require("psql", "postgresql-client");
        require("runuser", "util-linux");
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("lab-pg").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["data", "sock"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            let out = Command::new("chown")
                .args(["postgres:postgres", dir.path().join(sub).to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {}", stderr(&out));
        }
        let pg = Postgres {
            bin,
            dir,
            port: free_port(),
        };
        let data = pg.path("data");
        let out = pg.as_postgres(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(out.status.success(), "initdb: {}", stderr(&out));
        let opts = format!(
            "-k {} -p {} -c listen_addresses=''",
            pg.path("sock"),
            pg.port
        );
        let log = format!("{}/server.log", pg.path("sock"));
        let out = pg.as_postgres(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(out.status.success(), "pg_ctl start: {}", stderr(&out));
        pg
    }

    fn path(&self, sub: &str) -> String {
        self.dir.path().join(sub).to_str().unwrap().to_owned()
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    }

    /// Runs SQL in `db`; returns psql's unaligned output.
    fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.path("sock"),
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The connection fields of a spec operation.
    fn fields(&self) -> String {
        format!(
            "host: {}, port: {}, username: postgres, runAs: postgres",
            self.path("sock"),
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.as_postgres(
            "pg_ctl",
            &["-D", &self.path("data"), "-m", "immediate", "stop"],
        );
    }
}

fn dump_spec(repo: &Repo, pg: &Postgres, database: &str) -> String {
    job(
        "app-db",
        &format!(
            "    backup:\n      postgres: {{{}, {}, database: {database}, tags: [pg]}}\n",
            repo.fields(),
            pg.fields()
        ),
    )
}

fn restore_spec(repo: &Repo, pg: &Postgres, database: &str) -> String {
    job(
        "app-db",
        &format!(
            "    backup:\n      postgresRestore: {{{}, {}, snapshot: latest, filename: app.sql, database: {database}}}\n",
            repo.fields(),
            pg.fields()
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
}
