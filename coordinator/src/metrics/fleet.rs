//! The fleet's series, computed at scrape time from the store and the live sessions: per node
//! its online state, last contact and certificate expiry; per node and backup its last success,
//! maximum age, health and last drill; failed tasks by job name. Nothing per node is kept
//! between scrapes, so a removed node's series simply stop.
//!
//! Series (names get the registry's `labfleet_` prefix):
//! - `node_online{node}` 1 or 0, `node_last_seen_timestamp_seconds{node}` (omitted while never
//!   seen), `node_certificate_expiry_timestamp_seconds{node}`: every node that is not revoked;
//!   `node_certificate_lifetime_seconds`: the lifetime this coordinator gives node certificates.
//! - `backup_health{node,backup}` as a number, the `BackupHealth` enum of the API: 0 no maximum
//!   age declared, 1 green, 2 amber, 3 red (a number, so `max by (node)` gives a node's worst);
//!   `backup_max_age_seconds`, `backup_last_success_timestamp_seconds` (omitted while it never
//!   succeeded), `backup_last_drill_timestamp_seconds` and `backup_last_drill_ok` (1 or 0; both
//!   omitted while it was never drilled).
//! - `tasks_failed_total{job_name,state}`: see [`crate::jobs::failures`] for the bounds.
//!
//! Label values are node names (the DNS-like name rule), backup names (`[A-Za-z0-9._-]`) and
//! job names normalised to those characters, so none needs escaping in the exposition.

use std::collections::HashMap;
use std::fmt::Error;

use lab_proto::store::v1::{BackupRecord, NodeRecord};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::jobs::failures::FailedTasks;
use crate::sessions::Sessions;
use crate::store::{Store, StoreError};

/// One node's series.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    /// Node name.
    pub name: String,
    /// Has a live session now.
    pub online: bool,
    /// Last contact, Unix ms (the live session's, else the stored one); 0 when never.
    pub last_seen_ms: i64,
    /// Expiry of its newest certificate, Unix ms; 0 when unknown.
    pub cert_not_after_ms: i64,
}

/// One backup's series.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSample {
    /// Node name.
    pub node: String,
    /// Backup name.
    pub name: String,
    /// `BackupHealth` as its number.
    pub health: i32,
    /// Declared maximum age, ms (0 when none).
    pub max_age_ms: u64,
    /// Last success, Unix ms; 0 when never.
    pub last_success_ms: i64,
    /// Last drill, Unix ms; 0 when never.
    pub last_drill_ms: i64,
    /// Whether the last drill succeeded without problems.
    pub last_drill_ok: bool,
}

/// Everything the fleet's series show at one moment; built by [`FleetView::read`], encoded as
/// a [`Collector`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetView {
    /// Nodes that are not revoked, by name.
    pub nodes: Vec<NodeSample>,
    /// Nodes in the store, revoked ones included.
    pub known_nodes: usize,
    /// Backups, by node and name.
    pub backups: Vec<BackupSample>,
    /// Failed tasks: job name, state, count.
    pub failed_tasks: Vec<(String, &'static str, u64)>,
    /// Lifetime of node certificates, seconds.
    pub cert_lifetime_s: u64,
}

impl FleetView {
    /// Reads the view at `now_ms`: node and backup records from the store, who is online from
    /// the sessions (one lock), failed tasks from the job engine.
    pub fn read(
        store: &Store,
        sessions: &Sessions,
        failed: &FailedTasks,
        cert_lifetime_s: u64,
        now_ms: i64,
    ) -> Result<FleetView, StoreError> {
        let live = sessions.last_seen_all();
        let records = store.nodes()?;
        let known_nodes = records.len();
        Ok(FleetView {
            nodes: node_samples(records, &live),
            known_nodes,
            backups: store
                .backups()?
                .iter()
                .map(|r| backup_sample(r, now_ms))
                .collect(),
            failed_tasks: failed.snapshot(),
            cert_lifetime_s,
        })
    }
}

/// The samples of the nodes that are not revoked, given who is online (`live`: node → last
/// contact). Pure.
pub fn node_samples(records: Vec<NodeRecord>, live: &HashMap<String, i64>) -> Vec<NodeSample> {
    records
        .into_iter()
        .filter(|r| !r.revoked)
        .map(|r| {
            let seen = live.get(&r.name).copied();
            NodeSample {
                online: seen.is_some(),
                last_seen_ms: seen.unwrap_or(r.last_seen_unix_ms),
                cert_not_after_ms: r.cert_not_after_unix_ms,
                name: r.name,
            }
        })
        .collect()
}

/// The sample of one backup record at `now_ms`. Pure.
pub fn backup_sample(rec: &BackupRecord, now_ms: i64) -> BackupSample {
    BackupSample {
        node: rec.node.clone(),
        name: rec.name.clone(),
        health: crate::backups::health(rec, now_ms) as i32,
        max_age_ms: rec.max_age_ms,
        last_success_ms: rec.last_success_unix_ms,
        last_drill_ms: rec.last_drill_unix_ms,
        last_drill_ok: rec.last_drill_ok,
    }
}

/// Seconds of a millisecond time or duration, as Prometheus wants timestamps.
fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// One family: its descriptor, then a gauge sample per item that has a value (nothing when no
/// item has one).
fn gauges<'a, T: 'a, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    items: &'a [T],
    labels: impl Fn(&'a T) -> L,
    value: impl Fn(&'a T) -> Option<f64>,
) -> Result<(), Error> {
    if !items.iter().any(|i| value(i).is_some()) {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for item in items {
        if let Some(v) = value(item) {
            family.encode_family(&labels(item))?.encode_gauge(&v)?;
        }
    }
    Ok(())
}

fn node_labels(n: &NodeSample) -> [(&'static str, &str); 1] {
    [("node", n.name.as_str())]
}

fn backup_labels(b: &BackupSample) -> [(&'static str, &str); 2] {
    [("node", b.node.as_str()), ("backup", b.name.as_str())]
}

fn counter(encoder: MetricEncoder, value: u64) -> Result<(), Error> {
    ConstCounter::new(value).encode(encoder)
}

impl Collector for FleetView {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), Error> {
        let s = Some(&Unit::Seconds);
        let (nodes, backups) = (&self.nodes, &self.backups);
        let timestamp = |ms: i64| (ms > 0).then(|| secs(ms));
        gauges(
            &mut e,
            (
                "node_online",
                "Whether the node has a live session (1) or not (0).",
                None,
            ),
            nodes,
            node_labels,
            |n| Some(if n.online { 1.0 } else { 0.0 }),
        )?;
        gauges(
            &mut e,
            (
                "node_last_seen_timestamp",
                "When the coordinator last heard from the node.",
                s,
            ),
            nodes,
            node_labels,
            |n| timestamp(n.last_seen_ms),
        )?;
        gauges(
            &mut e,
            ("node_certificate_expiry_timestamp", "When the node's newest certificate expires; agents renew at two thirds of its lifetime.", s),
            nodes,
            node_labels,
            |n| timestamp(n.cert_not_after_ms),
        )?;
        e.encode_descriptor(
            "node_certificate_lifetime",
            "Lifetime of the node certificates this coordinator issues.",
            s,
            MetricType::Gauge,
        )?
        .encode_gauge(&(self.cert_lifetime_s as f64))?;
        gauges(
            &mut e,
            (
                "backup_health",
                "Health of a backup: 0 no maximum age declared, 1 green, 2 amber, 3 red.",
                None,
            ),
            backups,
            backup_labels,
            |b| Some(f64::from(b.health)),
        )?;
        gauges(
            &mut e,
            (
                "backup_max_age",
                "The backup's declared maximum age (maxAge).",
                s,
            ),
            backups,
            backup_labels,
            |b| (b.max_age_ms > 0).then(|| b.max_age_ms as f64 / 1000.0),
        )?;
        gauges(
            &mut e,
            (
                "backup_last_success_timestamp",
                "When the backup last succeeded.",
                s,
            ),
            backups,
            backup_labels,
            |b| timestamp(b.last_success_ms),
        )?;
        gauges(
            &mut e,
            (
                "backup_last_drill_timestamp",
                "When the backup's last restore drill ended.",
                s,
            ),
            backups,
            backup_labels,
            |b| timestamp(b.last_drill_ms),
        )?;
        gauges(
            &mut e,
            ("backup_last_drill_ok", "Whether the backup's last restore drill succeeded without problems (1) or not (0).", None),
            backups,
            backup_labels,
            |b| (b.last_drill_ms > 0).then_some(if b.last_drill_ok { 1.0 } else { 0.0 }),
        )?;
        if !self.failed_tasks.is_empty() {
            let mut family = e.encode_descriptor(
                "tasks_failed",
                "Tasks that ended failed, timed out or lost, by job name (metadata.name, the schedule, or _unnamed; names past the first 100 count as _other).",
                None,
                MetricType::Counter,
            )?;
            for (job_name, state, n) in &self.failed_tasks {
                let labels = [("job_name", job_name.as_str()), ("state", *state)];
                counter(family.encode_family(&labels)?, *n)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
