//! Tests of the fleet gauges computed from node and backup records.

use std::collections::HashMap;

use lab_proto::store::v1::{BackupRecord, NodeRecord};
use lab_proto::v1::TaskState as WireState;

use super::*;
use crate::metrics::text::Format;
use crate::metrics::Metrics;

const HOUR_MS: u64 = 3_600_000;

fn node(name: &str, last_seen: i64, revoked: bool) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        last_seen_unix_ms: last_seen,
        cert_not_after_unix_ms: 2_000_000_000_000,
        revoked,
        ..Default::default()
    }
}

#[test]
fn revoked_nodes_have_no_series_and_live_sessions_give_the_last_contact() {
    let live = HashMap::from([("a".to_owned(), 5_000)]);
    let samples = node_samples(
        vec![
            node("a", 1_000, false),
            node("b", 2_000, false),
            node("c", 3_000, true),
        ],
        &live,
    );
    assert_eq!(
        samples,
        vec![
            NodeSample {
                name: "a".into(),
                online: true,
                last_seen_ms: 5_000,
                cert_not_after_ms: 2_000_000_000_000,
            },
            NodeSample {
                name: "b".into(),
                online: false,
                last_seen_ms: 2_000,
                cert_not_after_ms: 2_000_000_000_000,
            },
        ]
    );
}

#[test]
fn a_backup_sample_carries_the_health_computed_now() {
    let rec = BackupRecord {
        node: "n1".into(),
        name: "home".into(),
        max_age_ms: 26 * HOUR_MS,
        last_success_unix_ms: 1_000,
        last_attempt_unix_ms: 1_000,
        last_attempt_state: WireState::Succeeded as i32,
        ..Default::default()
    };
    assert_eq!(backup_sample(&rec, 2_000).health, 1, "green");
    assert_eq!(
        backup_sample(&rec, 1_000 + 25 * HOUR_MS as i64).health,
        2,
        "amber"
    );
    assert_eq!(
        backup_sample(&rec, 1_000 + 27 * HOUR_MS as i64).health,
        3,
        "red"
    );
    let never = BackupRecord {
        last_success_unix_ms: 0,
        ..rec.clone()
    };
    assert_eq!(
        backup_sample(&never, 2_000).health,
        3,
        "never succeeded is red"
    );
    let undeclared = BackupRecord {
        max_age_ms: 0,
        ..rec
    };
    assert_eq!(backup_sample(&undeclared, 2_000).health, 0);
}

fn view() -> FleetView {
    FleetView {
        nodes: vec![
            NodeSample {
                name: "n1".into(),
                online: true,
                last_seen_ms: 1_700_000_000_500,
                cert_not_after_ms: 1_702_592_000_000,
            },
            NodeSample {
                name: "n2".into(),
                online: false,
                last_seen_ms: 0,
                cert_not_after_ms: 1_702_592_000_000,
            },
        ],
        known_nodes: 3,
        backups: vec![
            BackupSample {
                node: "n1".into(),
                name: "home".into(),
                health: 1,
                max_age_ms: 26 * HOUR_MS,
                last_success_ms: 1_700_000_000_000,
                last_drill_ms: 1_700_000_100_000,
                last_drill_ok: false,
            },
            BackupSample {
                node: "n2".into(),
                name: "db".into(),
                health: 3,
                max_age_ms: HOUR_MS,
                last_success_ms: 0,
                last_drill_ms: 0,
                last_drill_ok: false,
            },
        ],
        failed_tasks: vec![
            ("nightly".into(), "failed", 2),
            ("_unnamed".into(), "lost", 1),
        ],
        cert_lifetime_s: 2_592_000,
    }
}

/// The sample lines of `text` (no comments), for comparing.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn the_fleet_series_are_rendered_with_their_labels_and_units() {
    let text = Metrics::default().render(1, Some(view()), Format::OpenMetrics);
    let fleet: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| {
            l.starts_with("labfleet_node")
                || l.starts_with("labfleet_backup")
                || l.starts_with("labfleet_tasks")
        })
        .collect();
    assert_eq!(
        fleet,
        vec![
            "labfleet_nodes_online 1",
            "labfleet_nodes_known 3",
            "labfleet_node_online{node=\"n1\"} 1.0",
            "labfleet_node_online{node=\"n2\"} 0.0",
            "labfleet_node_last_seen_timestamp_seconds{node=\"n1\"} 1700000000.5",
            "labfleet_node_certificate_expiry_timestamp_seconds{node=\"n1\"} 1702592000.0",
            "labfleet_node_certificate_expiry_timestamp_seconds{node=\"n2\"} 1702592000.0",
            "labfleet_node_certificate_lifetime_seconds 2592000.0",
            "labfleet_backup_health{node=\"n1\",backup=\"home\"} 1.0",
            "labfleet_backup_health{node=\"n2\",backup=\"db\"} 3.0",
            "labfleet_backup_max_age_seconds{node=\"n1\",backup=\"home\"} 93600.0",
            "labfleet_backup_max_age_seconds{node=\"n2\",backup=\"db\"} 3600.0",
            "labfleet_backup_last_success_timestamp_seconds{node=\"n1\",backup=\"home\"} 1700000000.0",
            "labfleet_backup_last_drill_timestamp_seconds{node=\"n1\",backup=\"home\"} 1700000100.0",
            "labfleet_backup_last_drill_ok{node=\"n1\",backup=\"home\"} 0.0",
            "labfleet_tasks_failed_total{job_name=\"nightly\",state=\"failed\"} 2",
            "labfleet_tasks_failed_total{job_name=\"_unnamed\",state=\"lost\"} 1",
        ]
    );
    assert!(text.contains("# UNIT labfleet_node_last_seen_timestamp_seconds seconds\n"));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
}

#[test]
fn the_prometheus_text_format_has_the_same_samples() {
    let m = Metrics::default();
    let om = m.render(1, Some(view()), Format::OpenMetrics);
    let text = m.render(1, Some(view()), Format::PrometheusText);
    assert_eq!(samples(&om[..om.len() - "# EOF\n".len()]), samples(&text));
    assert!(
        text.contains("# TYPE labfleet_tasks_failed_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
}

#[test]
fn without_the_store_only_the_registry_is_rendered() {
    let text = Metrics::default().render(2, None, Format::PrometheusText);
    assert!(text.contains("labfleet_nodes_online 2\n"), "{text}");
    assert!(!text.contains("labfleet_node_online"), "{text}");
}

#[tokio::test]
async fn the_view_reads_nodes_backups_sessions_and_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store.create_node(node("n1", 1_000, false)).await.unwrap();
    store.create_node(node("n2", 2_000, true)).await.unwrap();
    store
        .write_jobs(crate::store::JobBatch {
            backups: vec![BackupRecord {
                node: "n1".into(),
                name: "home".into(),
                max_age_ms: HOUR_MS,
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
    store.flush().await.unwrap();
    let sessions = Sessions::default();
    let _session = sessions.open("n1", 9_000, crate::sessions::Outbound::channel(1).0);
    let failed = FailedTasks::default();
    failed.record("x", crate::jobs::state::TaskState::TimedOut);
    let v = FleetView::read(&store, &sessions, &failed, 60, 10_000).unwrap();
    assert_eq!(v.known_nodes, 2);
    assert_eq!(v.nodes.len(), 1, "the revoked node has no series");
    assert!(v.nodes[0].online && v.nodes[0].last_seen_ms == 9_000);
    assert_eq!(v.backups.len(), 1);
    assert_eq!(v.backups[0].health, 3);
    assert_eq!(v.failed_tasks, vec![("x".to_owned(), "timed_out", 1)]);
    assert_eq!(v.cert_lifetime_s, 60);
}
