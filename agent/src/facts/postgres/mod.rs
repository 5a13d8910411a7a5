//! PostgreSQL facts: the clusters on this host and, for running ones, their replication role,
//! slots and lag.
//!
//! Clusters are found ([`discover`]) from running postmasters (a `postgres` process's working
//! directory is its data directory, whose `postmaster.pid` names the port and socket
//! directory) and from Debian's `/etc/postgresql/<version>/<name>/postgresql.conf` (clusters
//! that are down included). Nothing is looked for on a host without PostgreSQL installed.
//!
//! A running cluster is asked ([`query`]) over its local socket, as the data directory's owner
//! (the role `initdb` made, which peer authentication lets in without a password), with `psql`
//! run through [`super::probe`] (`-X`, no password prompt, a connect and a statement timeout,
//! killed after [`query::PSQL_TIMEOUT`]). `psql` rather than a Rust client: a Rust client
//! would connect as the agent's user (root), which peer authentication refuses, while the
//! runner already switches users for tasks; and it adds no dependency. A cluster that refuses
//! or does not answer is still listed, and the reason is a collector error.

pub mod discover;
pub mod query;

use serde::Serialize;

use super::{Probe, Problems};

/// The PostgreSQL clusters of this host.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Postgresql {
    /// By data directory.
    pub clusters: Vec<Cluster>,
}

/// One cluster (one data directory, one postmaster).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Cluster {
    /// The data directory.
    pub data_dir: String,
    /// Debian's `<version>/<name>` (`15/main`), for clusters in `/etc/postgresql`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Major version from the data directory's `PG_VERSION` (`15`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_version: Option<String>,
    /// The server's full version (`15.8 (Debian 15.8-0+deb12u1)`); only when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// TCP port (from `postmaster.pid` when running, else `postgresql.conf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Directory of its unix socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_dir: Option<String>,
    /// Owner of the data directory: the operating system user and the superuser role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A postmaster runs for it.
    pub running: bool,
    /// Primary or standby; only when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Its replication slots.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<Slot>,
    /// Standbys streaming from it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub standbys: Vec<Standby>,
    /// On a standby: where it streams from and how far behind it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

/// Replication role.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepts writes (not in recovery).
    Primary,
    /// In recovery: a streaming or log-shipping standby.
    Standby,
}

/// A replication slot.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Slot {
    /// Slot name.
    pub name: String,
    /// `physical` or `logical`.
    #[serde(rename = "type")]
    pub slot_type: String,
    /// A consumer is connected.
    pub active: bool,
    /// WAL kept for it (current position minus its restart position); only on a primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_bytes: Option<u64>,
}

/// A standby connected to this cluster (`pg_stat_replication`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Standby {
    /// Its `application_name` (the cluster name or `walreceiver`).
    pub application_name: String,
    /// Its address; absent over a unix socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, `backup`, …
    pub state: String,
    /// `async`, `sync`, `potential` or `quorum`.
    pub sync_state: String,
    /// The slot it streams through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// WAL it has not replayed yet: the current position minus its replay position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// Seconds behind in replay (`replay_lag`, whole seconds); 0 when it has replayed
    /// everything; absent when not measured yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<u64>,
}

/// What a standby streams from, and its own lag.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Upstream {
    /// WAL receiver state (`streaming`, `catchup`, …); absent when no receiver runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The primary's host (or socket directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The primary's port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The slot it streams through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// WAL the primary has that this standby has not received yet (as last told by the
    /// primary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_lag_bytes: Option<u64>,
    /// WAL received but not replayed yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lag_bytes: Option<u64>,
    /// Seconds since the last replayed transaction's commit while WAL waits to be replayed;
    /// 0 when everything received is replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lag_seconds: Option<u64>,
    /// Replay is paused (`pg_wal_replay_pause()`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay_paused: bool,
}

/// Collects the clusters of this host; `None` when there are none (or PostgreSQL is not
/// installed). Running clusters are asked in parallel, each within its deadline.
pub fn collect(probe: &Probe, problems: &mut Problems) -> Option<Postgresql> {
    let mut clusters = discover::clusters(probe.root(), problems);
    if clusters.is_empty() {
        return None;
    }
    let found: Vec<Result<(), String>> = std::thread::scope(|s| {
        let running: Vec<_> = clusters
            .iter_mut()
            .filter(|c| c.running)
            .map(|cluster| s.spawn(|| query::ask(probe, cluster)))
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the query thread failed".to_owned()))
            })
            .collect()
    });
    for message in found.into_iter().filter_map(Result::err) {
        problems.add("postgresql", message);
    }
    Some(Postgresql { clusters })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "tests.rs"]
mod tests;
