//! Asking a running cluster about replication: one `psql` run over the local socket as the
//! data directory's owner, one SQL statement that returns a JSON document ([`SQL`]), parsed by
//! [`apply`]. Needs PostgreSQL 10 or later (`pg_wal_*` functions, `pg_stat_replication` lag
//! columns); the WAL receiver's columns are read through `to_jsonb` so that 10 to 17 all work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{Cluster, Role, Slot, Standby, Upstream};
use crate::facts::probe::Command;
use crate::facts::Probe;
use crate::process::FinalState;

/// How long `psql` may take in all.
pub const PSQL_TIMEOUT: Duration = Duration::from_secs(5);

/// `PGCONNECT_TIMEOUT`, seconds.
const CONNECT_TIMEOUT: &str = "3";

/// The one statement: everything as a JSON object (see [`apply`] for the keys). Differences of
/// WAL positions and times may be NULL (nothing measured yet) or negative (positions reported
/// at different moments); [`apply`] leaves out the first and counts the second as 0.
pub const SQL: &str = "\
SELECT json_build_object(
 'version', current_setting('server_version'),
 'standby', pg_is_in_recovery(),
 'slots', coalesce((SELECT json_agg(json_build_object(
     'name', slot_name, 'type', slot_type, 'active', active,
     'retained_bytes', CASE WHEN NOT pg_is_in_recovery()
       THEN pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END)
     ORDER BY slot_name) FROM pg_replication_slots), '[]'),
 'standbys', coalesce((SELECT json_agg(json_build_object(
     'application_name', r.application_name, 'client_addr', host(r.client_addr),
     'state', r.state, 'sync_state', r.sync_state, 'slot', s.slot_name,
     'lag_bytes', CASE WHEN NOT pg_is_in_recovery()
       THEN pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint END,
     'lag_seconds', floor(extract(epoch FROM r.replay_lag))::bigint)
     ORDER BY r.application_name, r.pid)
   FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid), '[]'),
 'receiver', (SELECT json_build_object(
     'status', w.status, 'host', to_jsonb(w)->>'sender_host', 'port', to_jsonb(w)->>'sender_port',
     'slot', w.slot_name,
     'receive_lag_bytes', pg_wal_lsn_diff(w.latest_end_lsn,
       coalesce(to_jsonb(w)->>'flushed_lsn', to_jsonb(w)->>'received_lsn')::pg_lsn)::bigint)
   FROM pg_stat_wal_receiver w),
 'replay_lag_bytes', CASE WHEN pg_is_in_recovery()
   THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint END,
 'replay_lag_seconds', CASE WHEN NOT pg_is_in_recovery() THEN NULL
   WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
   ELSE floor(extract(epoch FROM now() - pg_last_xact_replay_timestamp()))::bigint END,
 'replay_paused', CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END)";

/// Asks `cluster` (running, with a socket directory and port) and fills in what it says.
/// Nothing happens where programs are not run (another root); an error says why it could not
/// be asked.
pub fn ask(probe: &Probe, cluster: &mut Cluster) -> Result<(), String> {
    let Some(psql) = psql(probe, cluster.major_version.as_deref()) else {
        return Ok(());
    };
    let place = format!("the cluster in {}", cluster.data_dir);
    if cluster
        .major_version
        .as_deref()
        .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
        .is_some_and(|major| major < 10)
    {
        return Err(format!(
            "{place} is PostgreSQL {}; replication facts need 10 or later",
            cluster.major_version.as_deref().unwrap_or("")
        ));
    }
    let (Some(socket_dir), Some(port)) = (&cluster.socket_dir, cluster.port) else {
        return Err(format!(
            "{place} has no unix socket (unix_socket_directories is empty); its replication \
             state is only read over the local socket"
        ));
    };
    let Some(owner) = cluster.owner.clone() else {
        return Err(format!("cannot tell who owns {place}"));
    };
    let me = crate::accounts::user_name(nix::unistd::geteuid().as_raw());
    let user = if nix::unistd::geteuid().is_root() {
        owner.clone()
    } else if me == owner {
        String::new()
    } else {
        return Err(format!(
            "cannot ask {place} as its owner '{owner}': the agent runs as '{me}', not root"
        ));
    };
    let port = port.to_string();
    let cmd = Command::new(
        &psql,
        &[
            "-X",
            "-A",
            "-t",
            "-q",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            socket_dir,
            "-p",
            &port,
            "-U",
            &owner,
            "-d",
            "postgres",
            "-c",
            SQL,
        ],
        PSQL_TIMEOUT,
    )
    .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)
    .env("PGOPTIONS", "-c statement_timeout=3000")
    .env("PGAPPNAME", "lab-agent-facts")
    .user(&user);
    let ran = probe.run(cmd);
    let asked = format!("cannot ask {place} (port {port}) as '{owner}'");
    if ran.state == FinalState::TimedOut {
        return Err(format!(
            "{asked}: psql did not answer within {}",
            humantime::format_duration(PSQL_TIMEOUT)
        ));
    }
    if !ran.success() {
        let why = if ran.error.is_empty() {
            ran.tail()
        } else {
            ran.error.clone()
        };
        return Err(format!("{asked}: {why}"));
    }
    let doc: Value = serde_json::from_str(&ran.stdout_text())
        .map_err(|e| format!("{asked}: psql printed something that is not JSON ({e})"))?;
    apply(&doc, cluster);
    Ok(())
}

/// The cluster's own `psql` (Debian keeps one per major version), else the one on the path.
fn psql(probe: &Probe, major: Option<&str>) -> Option<PathBuf> {
    let own = major
        .filter(|_| probe.live())
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/psql")))
        .filter(|p| Path::new(p).is_file());
    own.or_else(|| probe.program("psql"))
}

/// Fills `cluster` from the document [`SQL`] returns.
pub fn apply(doc: &Value, cluster: &mut Cluster) {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    // NULL: unknown, left out; negative: reported at different moments, no lag
    let number = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str()?.parse().ok())
            .map(|n| n.max(0).unsigned_abs())
    };
    cluster.server_version = text(&doc["version"]);
    let standby = doc["standby"].as_bool().unwrap_or(false);
    cluster.role = Some(if standby {
        Role::Standby
    } else {
        Role::Primary
    });
    cluster.slots = doc["slots"]
        .as_array()
        .map(|slots| {
            slots
                .iter()
                .map(|s| Slot {
                    name: text(&s["name"]).unwrap_or_default(),
                    slot_type: text(&s["type"]).unwrap_or_default(),
                    active: s["active"].as_bool().unwrap_or(false),
                    retained_bytes: number(&s["retained_bytes"]),
                })
                .collect()
        })
        .unwrap_or_default();
    cluster.standbys = doc["standbys"]
        .as_array()
        .map(|standbys| {
            standbys
                .iter()
                .map(|s| {
                    let lag_bytes = number(&s["lag_bytes"]);
                    Standby {
                        application_name: text(&s["application_name"]).unwrap_or_default(),
                        client_addr: text(&s["client_addr"]),
                        state: text(&s["state"]).unwrap_or_default(),
                        sync_state: text(&s["sync_state"]).unwrap_or_default(),
                        slot: text(&s["slot"]),
                        lag_bytes,
                        // replayed everything: no lag, whatever the last measurement was
                        lag_seconds: if lag_bytes == Some(0) {
                            Some(0)
                        } else {
                            number(&s["lag_seconds"])
                        },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    cluster.upstream = standby.then(|| {
        let receiver = &doc["receiver"];
        Upstream {
            status: text(&receiver["status"]),
            host: text(&receiver["host"]),
            port: number(&receiver["port"]).and_then(|p| u16::try_from(p).ok()),
            slot: text(&receiver["slot"]),
            receive_lag_bytes: number(&receiver["receive_lag_bytes"]),
            replay_lag_bytes: number(&doc["replay_lag_bytes"]),
            replay_lag_seconds: number(&doc["replay_lag_seconds"]),
            replay_paused: doc["replay_paused"].as_bool().unwrap_or(false),
        }
    });
}
