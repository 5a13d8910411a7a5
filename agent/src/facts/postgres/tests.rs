//! Unit tests of PostgreSQL discovery on fixture trees shaped like a Debian host, and of reading
//! the query's answer. Real clusters (primary, streaming standby, a refusing one) are tested
//! end to end in `tests/tests/facts_postgres.rs`.

use std::path::Path;

use serde_json::json;

use super::discover::{parse_conf, parse_pid_file, PidFile};
use super::*;
use crate::facts::testutil::{symlink, write};
use crate::facts::CollectorError;

/// A Debian host: cluster 15/main running as PID 4242 (a standby of another host), 15/reports
/// down with a stale `postmaster.pid`, and a cluster started by hand from a home directory.
fn debian_host(root: &Path) {
    write(root, "usr/lib/postgresql/15/bin/postgres", "");
    write(
        root,
        "etc/postgresql/15/main/postgresql.conf",
        "# - Connection Settings -\n\
         data_directory = '/var/lib/postgresql/15/main'\t\t# use data in another directory\n\
         port = 5432\t\t\t\t# (change requires restart)\n\
         unix_socket_directories = '/var/run/postgresql'\n\
         include_dir = 'conf.d'\n",
    );
    write(
        root,
        "etc/postgresql/15/reports/postgresql.conf",
        "port = 5433\n",
    );
    write(root, "var/lib/postgresql/15/main/PG_VERSION", "15\n");
    write(
        root,
        "var/lib/postgresql/15/main/postmaster.pid",
        "4242\n/var/lib/postgresql/15/main\n1716200000\n5432\n/var/run/postgresql\n\
         localhost\n  5432001      2\nready   \n",
    );
    write(root, "proc/4242/comm", "postgres\n");
    symlink(root, "proc/4242/cwd", "/var/lib/postgresql/15/main");
    // a backend of the same cluster
    write(root, "proc/4250/comm", "postgres\n");
    symlink(root, "proc/4250/cwd", "/var/lib/postgresql/15/main");
    write(root, "var/lib/postgresql/15/reports/PG_VERSION", "15\n");
    write(
        root,
        "var/lib/postgresql/15/reports/postmaster.pid",
        "999\n/var/lib/postgresql/15/reports\n1716200000\n5433\n/var/run/postgresql\n",
    );
    // started by hand: found from its process, no /etc/postgresql entry
    write(root, "home/dev/pgdata/PG_VERSION", "16\n");
    write(
        root,
        "home/dev/pgdata/postmaster.pid",
        "5151\n/home/dev/pgdata\n1716200000\n6543\n/tmp\n\n",
    );
    write(root, "proc/5151/comm", "postgres\n");
    write(
        root,
        "proc/5151/cmdline",
        "/usr/lib/postgresql/16/bin/postgres\0-D\0/home/dev/pgdata\0",
    );
    // an unrelated process
    write(root, "proc/77/comm", "sshd\n");
    symlink(root, "proc/77/cwd", "/");
}

fn collect_at(root: &Path) -> (Option<Postgresql>, Vec<CollectorError>) {
    let mut problems = Problems::default();
    let found = collect(&Probe::new(root), &mut problems);
    (found, problems.list().to_vec())
}

#[test]
fn debian_host_clusters() {
    let dir = tempfile::tempdir().unwrap();
    debian_host(dir.path());
    let (found, problems) = collect_at(dir.path());
    assert_eq!(problems, vec![]);
    let clusters = found.unwrap().clusters;
    #[allow(clippy::type_complexity)]
    let summary: Vec<(
        &str,
        Option<&str>,
        Option<&str>,
        Option<u16>,
        Option<&str>,
        bool,
    )> = clusters
        .iter()
        .map(|c| {
            (
                c.data_dir.as_str(),
                c.name.as_deref(),
                c.major_version.as_deref(),
                c.port,
                c.socket_dir.as_deref(),
                c.running,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "/home/dev/pgdata",
                None,
                Some("16"),
                Some(6543),
                Some("/tmp"),
                true
            ),
            (
                "/var/lib/postgresql/15/main",
                Some("15/main"),
                Some("15"),
                Some(5432),
                Some("/var/run/postgresql"),
                true
            ),
            (
                "/var/lib/postgresql/15/reports",
                Some("15/reports"),
                Some("15"),
                Some(5433),
                None,
                false
            ),
        ]
    );
    assert!(
        clusters.iter().all(|c| c.role.is_none()),
        "not asked under a fixture root"
    );
    assert!(clusters[0].owner.is_some());
}

#[test]
fn malformed_files_are_reported_and_the_cluster_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    debian_host(root);
    write(
        root,
        "var/lib/postgresql/15/main/postmaster.pid",
        "not a pid\n",
    );
    write(
        root,
        "etc/postgresql/15/reports/postgresql.conf",
        "port = fifty\n",
    );
    let (found, problems) = collect_at(root);
    let clusters = found.unwrap().clusters;
    assert_eq!(clusters.len(), 3);
    assert!(!clusters[1].running);
    assert_eq!(clusters[2].port, None);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "/etc/postgresql/15/reports/postgresql.conf: port 'fifty' is not a port",
            "/var/lib/postgresql/15/main/postmaster.pid cannot be read: its first line is not a process id; is it a PostgreSQL data directory?",
        ]
    );
}

#[test]
fn nothing_without_postgresql_installed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "proc/1/comm", "postgres\n");
    assert_eq!(collect_at(dir.path()), (None, vec![]));
}

#[test]
fn pid_file_and_conf_parsing() {
    assert_eq!(
        parse_pid_file("12\n/d\n1\n5432\n\n*\n"),
        Ok(PidFile {
            pid: 12,
            port: Some(5432),
            socket_dir: None
        })
    );
    assert_eq!(
        parse_pid_file("12\n/d\n1\nx\n").unwrap_err(),
        "its port line 'x' is not a port"
    );
    let conf = parse_conf(
        "port=5434 # comment\nlisten_addresses = '*'\n#port = 1\nshared_buffers 128MB\nPort = 5435\n",
    );
    assert_eq!(conf.get("port").map(String::as_str), Some("5435"));
    assert_eq!(conf.get("listen_addresses").map(String::as_str), Some("*"));
    assert_eq!(
        conf.get("shared_buffers").map(String::as_str),
        Some("128MB")
    );
}

#[test]
fn a_primary_with_a_lagging_standby() {
    let mut cluster = Cluster::default();
    query::apply(
        &json!({
            "version": "15.8 (Debian 15.8-0+deb12u1)",
            "standby": false,
            "slots": [
                {"name": "standby1", "type": "physical", "active": true, "retained_bytes": 16384},
                {"name": "old", "type": "physical", "active": false, "retained_bytes": null}
            ],
            "standbys": [
                {"application_name": "walreceiver", "client_addr": "10.0.0.2", "state": "streaming",
                 "sync_state": "async", "slot": "standby1", "lag_bytes": 8192, "lag_seconds": 3},
                {"application_name": "ahead", "client_addr": null, "state": "streaming",
                 "sync_state": "async", "slot": null, "lag_bytes": -40, "lag_seconds": null},
                {"application_name": "caught-up", "client_addr": null, "state": "streaming",
                 "sync_state": "async", "slot": null, "lag_bytes": 0, "lag_seconds": 12}
            ],
            "receiver": null,
            "replay_lag_bytes": null,
            "replay_lag_seconds": null,
            "replay_paused": null
        }),
        &mut cluster,
    );
    assert_eq!(cluster.role, Some(Role::Primary));
    assert_eq!(cluster.upstream, None);
    assert_eq!(cluster.slots[0].retained_bytes, Some(16384));
    assert_eq!(cluster.slots[1].retained_bytes, None);
    assert_eq!(
        (
            cluster.standbys[0].lag_bytes,
            cluster.standbys[0].lag_seconds
        ),
        (Some(8192), Some(3))
    );
    assert_eq!(
        (
            cluster.standbys[1].lag_bytes,
            cluster.standbys[1].lag_seconds
        ),
        (Some(0), Some(0)),
        "a replay position reported after the current one read is no lag"
    );
    assert_eq!(
        cluster.standbys[2].lag_seconds,
        Some(0),
        "nothing left to replay is no lag"
    );
    let doc = serde_json::to_value(&cluster).unwrap();
    assert_eq!(doc["standbys"][1].get("client_addr"), None);
    assert_eq!(doc["slots"][0]["type"], "physical");
}

#[test]
fn a_paused_standby() {
    let mut cluster = Cluster::default();
    query::apply(
        &json!({
            "version": "15.8", "standby": true, "slots": [], "standbys": [],
            "receiver": {"status": "streaming", "host": "/tmp/sock", "port": "5433",
                         "slot": "standby1", "receive_lag_bytes": 0},
            "replay_lag_bytes": 65536, "replay_lag_seconds": 7, "replay_paused": true
        }),
        &mut cluster,
    );
    assert_eq!(cluster.role, Some(Role::Standby));
    assert_eq!(
        cluster.upstream,
        Some(Upstream {
            status: Some("streaming".into()),
            host: Some("/tmp/sock".into()),
            port: Some(5433),
            slot: Some("standby1".into()),
            receive_lag_bytes: Some(0),
            replay_lag_bytes: Some(65536),
            replay_lag_seconds: Some(7),
            replay_paused: true,
        })
    );
}
