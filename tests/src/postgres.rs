//! Throwaway PostgreSQL clusters for tests: `initdb` as the `postgres` user into a temp dir,
//! listening only on a unix socket in that dir and a free port number, stopped (immediate) when
//! dropped. A standby is made from a running primary with `pg_basebackup -R` through a new
//! physical slot. Needs the Debian `postgresql` package and root (to become `postgres`).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::{free_port, require, stderr};

/// The newest PostgreSQL server binaries of the Debian packages.
pub fn pg_bin() -> PathBuf {
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

/// A PostgreSQL cluster of its own (`data` and `sock` under a temp dir), stopped when dropped.
pub struct Postgres {
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    /// A new cluster (`initdb -A trust`), started.
    pub fn start() -> Postgres {
        Postgres::init(&[]).run(&[])
    }

    /// A new cluster (`initdb -A trust` plus `extra` arguments), not started yet.
    pub fn init(extra: &[&str]) -> Postgres {
        let pg = Postgres::empty();
        let data = pg.path("data");
        let mut args = vec!["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"];
        args.extend_from_slice(extra);
        let out = pg.as_postgres("initdb", &args);
        assert!(out.status.success(), "initdb: {}", stderr(&out));
        pg
    }

    /// A standby of the running `primary`, made with `pg_basebackup -R` through a new physical
    /// slot `slot`; not started yet.
    pub fn standby_of(primary: &Postgres, slot: &str) -> Postgres {
        let pg = Postgres::empty();
        let port = primary.port.to_string();
        let data = pg.path("data");
        let out = pg.as_postgres(
            "pg_basebackup",
            &[
                "-D",
                &data,
                "-h",
                &primary.path("sock"),
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                slot,
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "pg_basebackup: {}", stderr(&out));
        pg
    }

    fn empty() -> Postgres {
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
        std::fs::set_permissions(
            dir.path().join("data"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        Postgres {
            bin,
            dir,
            port: free_port(),
        }
    }

    /// Starts the cluster (`pg_ctl start -w`) on its socket and port, with `settings`
    /// (`name=value`) on top.
    pub fn run(self, settings: &[&str]) -> Postgres {
        let mut opts = format!(
            "-k {} -p {} -c listen_addresses=''",
            self.path("sock"),
            self.port
        );
        for setting in settings {
            opts.push_str(&format!(" -c {setting}"));
        }
        let log = format!("{}/server.log", self.path("sock"));
        let out = self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.path("data"),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            stderr(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self
    }

    /// `sub` of the cluster's temp dir (`data`, `sock`).
    pub fn path(&self, sub: &str) -> String {
        self.dir.path().join(sub).to_str().unwrap().to_owned()
    }

    /// Runs one of the server's tools as `postgres`.
    pub fn as_postgres(&self, tool: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .current_dir("/")
            .output()
            .unwrap()
    }

    /// Runs SQL in `db`; returns psql's unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> String {
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
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.as_postgres(
            "pg_ctl",
            &["-D", &self.path("data"), "-m", "immediate", "stop"],
        );
    }
}
