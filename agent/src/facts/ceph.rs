//! Ceph cluster status from `ceph status -f json`: health, monitors, OSDs up/in, PG states, raw
//! usage.
//!
//! Asked only when the `ceph` CLI is installed (the running system, see [`super::probe`]) and a
//! keyring it can use is readable: the `keyring` of `ceph.conf`'s `[client.admin]`, `[client]`
//! or `[global]` section (on Proxmox `/etc/pve/priv/$cluster.$name.keyring`), else Ceph's
//! default places in `/etc/ceph`. A client without a key is an ordinary Ceph client, not an
//! error. `ceph` gets `--connect-timeout` and is killed (with its process group) after
//! [`STATUS_TIMEOUT`]: a cluster without quorum makes it wait forever otherwise.
//!
//! Both JSON layouts are read: Luminous to Nautilus nest `osdmap.osdmap` and list
//! `monmap.mons`; Octopus and later flatten `osdmap` and count `monmap.num_mons`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::fsusage::USAGE_GRANULE;
use super::probe::{failure, Command};
use super::rootfs::resolve;
use super::{Probe, Problems};

/// How long `ceph status` may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Seconds `ceph` waits for a monitor itself, below [`STATUS_TIMEOUT`].
const CONNECT_TIMEOUT: &str = "4";

/// Where Ceph looks for the admin keyring when `ceph.conf` names none (`$cluster` = `ceph`).
const DEFAULT_KEYRINGS: &[&str] = &[
    "etc/ceph/ceph.client.admin.keyring",
    "etc/ceph/ceph.keyring",
    "etc/ceph/keyring",
    "etc/ceph/keyring.bin",
];

/// The cluster as `ceph status` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CephStatus {
    /// `HEALTH_OK`, `HEALTH_WARN` or `HEALTH_ERR`.
    pub health: String,
    /// Names of the health checks that fire (`OSD_DOWN`, `MON_DOWN`), sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Monitors in the monitor map.
    pub mons: u64,
    /// Monitors in quorum, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quorum: Vec<String>,
    /// OSDs in the OSD map.
    pub osds: u64,
    /// OSDs up.
    pub osds_up: u64,
    /// OSDs in.
    pub osds_in: u64,
    /// Placement groups.
    pub pgs: u64,
    /// Placement groups by state (`active+clean`), sorted by state.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pg_states: Vec<PgState>,
    /// Raw capacity, rounded down to 16 MiB (as filesystem usage).
    pub bytes_total: u64,
    /// Raw capacity in use, rounded down to 16 MiB.
    pub bytes_used: u64,
    /// Raw capacity available, rounded down to 16 MiB.
    pub bytes_avail: u64,
}

/// How many placement groups are in one state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PgState {
    /// The state, e.g. `active+clean` or `stale+active+clean`.
    pub state: String,
    /// Placement groups in it.
    pub count: u64,
}

/// The status from `ceph`, or `None` when the CLI or a keyring is missing or it failed (then
/// the reason is in `problems`). `conf` is the text of `etc/ceph/ceph.conf`.
pub fn status(probe: &Probe, conf: &str, problems: &mut Problems) -> Option<CephStatus> {
    let ceph = probe.program("ceph")?;
    if !keyrings(conf)
        .iter()
        .any(|k| readable(probe.root(), k.trim_start_matches('/')))
    {
        return None;
    }
    let ran = probe.run(Command::new(
        &ceph,
        &["status", "-f", "json", "--connect-timeout", CONNECT_TIMEOUT],
        STATUS_TIMEOUT,
    ));
    if !ran.success() {
        problems.add("ceph", failure(&ran, STATUS_TIMEOUT));
        return None;
    }
    match parse_status(&String::from_utf8_lossy(&ran.stdout)) {
        Ok(status) => Some(status),
        Err(e) => {
            problems.add(
                "ceph",
                format!("cannot read the output of '{}': {e}", ran.what),
            );
            None
        }
    }
}

/// Whether `rel` can be opened for reading (a keyring may not be UTF-8).
fn readable(root: &Path, rel: &str) -> bool {
    resolve(root, rel).is_some_and(|p| p.is_file() && std::fs::File::open(p).is_ok())
}

/// The keyrings the admin client would use: `keyring` from the `[client.admin]`, `[client]`
/// and `[global]` sections of `ceph.conf` (with `$cluster` and `$name` filled in), then the
/// defaults.
pub fn keyrings(conf: &str) -> Vec<String> {
    let mut named: Vec<(u8, String)> = Vec::new();
    let mut rank = Some(2);
    for line in conf.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            rank = match section.trim_end_matches(']').trim() {
                "client.admin" => Some(0),
                "client" => Some(1),
                "global" => Some(2),
                _ => None,
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if let Some(rank) = rank {
            if key.trim().replace(' ', "_") == "keyring" {
                for path in value.split(',') {
                    let path = path
                        .trim()
                        .replace("$cluster", "ceph")
                        .replace("$name", "client.admin");
                    if !path.is_empty() {
                        named.push((rank, path));
                    }
                }
            }
        }
    }
    named.sort_by_key(|(rank, _)| *rank);
    let mut all: Vec<String> = named.into_iter().map(|(_, p)| p).collect();
    all.extend(DEFAULT_KEYRINGS.iter().map(|p| format!("/{p}")));
    all
}

/// Parses `ceph status -f json` (either layout, see the module doc).
pub fn parse_status(text: &str) -> Result<CephStatus, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let health = &doc["health"];
    let health_status = health["status"]
        .as_str()
        .or(health["overall_status"].as_str())
        .ok_or("no health status")?
        .to_owned();
    let mut checks: Vec<String> = health["checks"]
        .as_object()
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    checks.sort();
    let monmap = &doc["monmap"];
    let mons = monmap["num_mons"]
        .as_u64()
        .or_else(|| monmap["mons"].as_array().map(|m| m.len() as u64))
        .ok_or("no monitor map")?;
    let osdmap = match &doc["osdmap"]["osdmap"] {
        Value::Object(_) => &doc["osdmap"]["osdmap"],
        _ => &doc["osdmap"],
    };
    let count = |map: &Value, key: &str| map[key].as_u64().unwrap_or(0);
    if !osdmap.is_object() {
        return Err("no OSD map".to_owned());
    }
    let pgmap = &doc["pgmap"];
    let mut pg_states: Vec<PgState> = pgmap["pgs_by_state"]
        .as_array()
        .map(|states| {
            states
                .iter()
                .filter_map(|s| {
                    Some(PgState {
                        state: s["state_name"].as_str()?.to_owned(),
                        count: s["count"].as_u64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    pg_states.sort();
    let bytes = |key: &str| count(pgmap, key) / USAGE_GRANULE * USAGE_GRANULE;
    Ok(CephStatus {
        health: health_status,
        checks,
        mons,
        quorum: doc["quorum_names"]
            .as_array()
            .map(|q| {
                q.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        osds: count(osdmap, "num_osds"),
        osds_up: count(osdmap, "num_up_osds"),
        osds_in: count(osdmap, "num_in_osds"),
        pgs: count(pgmap, "num_pgs"),
        pg_states,
        bytes_total: bytes("bytes_total"),
        bytes_used: bytes("bytes_used"),
        bytes_avail: bytes("bytes_avail"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "ceph_tests.rs"]
mod tests;
