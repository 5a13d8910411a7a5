//! Store tests against a real sled database in a temporary directory.

use std::sync::Arc;

use lab_proto::store::v1::{CertificateRecord, NodeRecord, TokenRecord};

use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    (dir, store)
}

fn token(expires: i64) -> TokenRecord {
    TokenRecord {
        token_id: "t1".into(),
        secret_sha256: vec![1; 32],
        expires_unix_ms: expires,
        ..Default::default()
    }
}

#[tokio::test]
async fn records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let store = Store::open(&path).unwrap();
        store
            .create_node(NodeRecord {
                name: "n1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        store.put_token(token(10)).await.unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.node("n1").unwrap().unwrap().version, RECORD_VERSION);
    assert_eq!(store.tokens().unwrap().len(), 1);
}

#[tokio::test]
async fn create_refuses_duplicates() {
    let (_d, store) = open();
    let rec = NodeRecord {
        name: "n1".into(),
        ..Default::default()
    };
    store.create_node(rec.clone()).await.unwrap();
    assert!(matches!(
        store.create_node(rec).await,
        Err(StoreError::Exists(_))
    ));
}

#[tokio::test]
async fn tokens_are_checked_and_consumed_once() {
    let (_d, store) = open();
    store.put_token(token(100)).await.unwrap();
    let bad = store.consume_token("t1", &[2; 32], 1, "n1").await;
    assert!(matches!(bad, Err(StoreError::Token(TokenError::Unknown))));
    let late = store.consume_token("t1", &[1; 32], 100, "n1").await;
    assert!(matches!(late, Err(StoreError::Token(TokenError::Expired))));
    store.consume_token("t1", &[1; 32], 1, "n1").await.unwrap();
    let again = store.consume_token("t1", &[1; 32], 1, "n2").await;
    assert!(matches!(again, Err(StoreError::Token(TokenError::AlreadyUsed(n))) if n == "n1"));
}

#[tokio::test]
async fn concurrent_consumers_exactly_one_wins() {
    let (_d, store) = open();
    store.put_token(token(100)).await.unwrap();
    let store = Arc::new(store);
    let mut handles = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .consume_token("t1", &[1; 32], 1, &format!("n{i}"))
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn revocation_covers_every_certificate_of_an_identity() {
    let (_d, store) = open();
    for (uri, serial) in [
        ("spiffe://l/node/a", "01"),
        ("spiffe://l/node/a", "02"),
        ("spiffe://l/node/ab", "03"),
    ] {
        store
            .put_certificate(CertificateRecord {
                serial: serial.into(),
                identity_uri: uri.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .revoke_certificates("spiffe://l/node/a")
            .await
            .unwrap(),
        2
    );
    assert!(
        store
            .certificate("spiffe://l/node/a", "02")
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !store
            .certificate("spiffe://l/node/ab", "03")
            .unwrap()
            .unwrap()
            .revoked
    );
}

#[test]
fn newer_records_are_refused() {
    let (_d, store) = open();
    let rec = NodeRecord {
        version: RECORD_VERSION + 1,
        name: "n".into(),
        ..Default::default()
    };
    Store::put(store.t().unwrap(), TreeId::Nodes, b"n", rec.encode_to_vec()).unwrap();
    assert!(matches!(
        store.node("n"),
        Err(StoreError::NewerVersion { .. })
    ));
}

#[tokio::test]
async fn removing_a_job_removes_its_tasks_events_and_indexes() {
    use lab_proto::store::v1::{JobRecord, TaskRecord};
    use lab_proto::v1::{job_event, JobEvent, TaskInfo, TaskOutput};

    let (_d, store) = open();
    let job = JobRecord {
        job_id: "j1".into(),
        task_ids: vec!["j1-0000".into()],
        ..Default::default()
    };
    let task = TaskRecord {
        job_id: "j1".into(),
        info: Some(TaskInfo {
            task_id: "j1-0000".into(),
            node: "n1".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let output = |seq: u64, data: &[u8]| JobEvent {
        seq,
        unix_ms: 0,
        body: Some(job_event::Body::Output(TaskOutput {
            task_id: "j1-0000".into(),
            node: "n1".into(),
            stream: 1,
            data: data.to_vec(),
        })),
    };
    store
        .commit_jobs(JobBatch {
            jobs: vec![job.clone()],
            tasks: vec![task],
            events: vec![
                ("j1".into(), output(1, b"aaaa")),
                ("j1".into(), output(2, b"bbbb")),
            ],
            active_add: vec![("n1".into(), "j1-0000".into())],
            active_remove: vec![],
            node_jobs: vec![("n1".into(), "j1".into(), "j1-0000".into())],
            backups: vec![],
            dropped_events: vec![],
        })
        .await
        .unwrap();
    assert_eq!(store.events("j1", 1).unwrap().len(), 2);
    let of_n1 = store.node_jobs_newest_from("n1", None, 10).unwrap();
    assert_eq!(of_n1.len(), 1);
    assert_eq!(
        (of_n1[0].0.job_id.as_str(), of_n1[0].1.as_str()),
        ("j1", "j1-0000")
    );
    assert_eq!(store.unfinished_tasks_of_node("n1").unwrap(), ["j1-0000"]);
    // The record rewritten with every update holds the count; the ids live in `job_tasks`.
    let stored = store.job("j1").unwrap().unwrap();
    assert!(stored.task_ids.is_empty());
    assert_eq!(stored.task_count, 1);
    assert_eq!(store.task_ids_of(&stored).unwrap(), ["j1-0000"]);
    assert_eq!(store.tasks_of(&stored).unwrap().len(), 1);

    // Trimming drops the oldest output first.
    assert_eq!(store.trim_output("j1", "j1-0000", 1).unwrap(), 4);
    let left = store.events("j1", 1).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, 2);

    store.remove_job(&job).await.unwrap();
    assert!(store.job("j1").unwrap().is_none());
    assert!(store.task("j1-0000").unwrap().is_none());
    assert!(store.events("j1", 1).unwrap().is_empty());
    assert!(store.unfinished_tasks_of_node("n1").unwrap().is_empty());
    assert!(store
        .node_jobs_newest_from("n1", None, 10)
        .unwrap()
        .is_empty());
    assert!(store.jobs_newest_first(10).unwrap().is_empty());
    assert!(store.task_ids_of(&stored).unwrap().is_empty());
}

#[tokio::test]
async fn job_records_with_their_task_ids_inside_are_still_read() {
    use lab_proto::store::v1::JobRecord;

    let (_d, store) = open();
    // The shape written before the ids moved to their own tree.
    let old = JobRecord {
        version: RECORD_VERSION,
        job_id: "j0".into(),
        task_ids: vec!["j0-0000".into(), "j0-0001".into()],
        ..Default::default()
    };
    Store::put(store.t().unwrap(), TreeId::Jobs, b"j0", old.encode_to_vec()).unwrap();
    let job = store.job("j0").unwrap().unwrap();
    assert_eq!(job.task_count, 2);
    assert_eq!(store.task_ids_of(&job).unwrap(), ["j0-0000", "j0-0001"]);
    assert_eq!(store.unfinished_jobs().unwrap()[0].task_count, 2);
    // Written back (as the engine does on the next update), it takes the new shape.
    store
        .commit_jobs(JobBatch {
            jobs: vec![job],
            ..Default::default()
        })
        .await
        .unwrap();
    let job = store.job("j0").unwrap().unwrap();
    assert!(job.task_ids.is_empty());
    assert_eq!(job.task_count, 2);
    assert_eq!(store.task_ids_of(&job).unwrap(), ["j0-0000", "j0-0001"]);
}

#[tokio::test]
async fn a_nodes_jobs_newest_first_survive_reopen() {
    use lab_proto::store::v1::{JobRecord, TaskRecord};
    use lab_proto::v1::TaskInfo;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let store = Store::open(&path).unwrap();
        for (job, node) in [("j1", "n1"), ("j2", "n10"), ("j3", "n1"), ("j4", "n1")] {
            let task = TaskRecord {
                job_id: job.into(),
                info: Some(TaskInfo {
                    task_id: format!("{job}-0000"),
                    node: node.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let record = JobRecord {
                job_id: job.into(),
                task_ids: vec![format!("{job}-0000")],
                ..Default::default()
            };
            let batch = JobBatch {
                jobs: vec![record],
                tasks: vec![task],
                node_jobs: vec![(node.into(), job.into(), format!("{job}-0000"))],
                ..Default::default()
            };
            store.commit_jobs(batch).await.unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let of = |node: &str, start: Option<&str>, limit| -> Vec<(String, String)> {
        store
            .node_jobs_newest_from(node, start, limit)
            .unwrap()
            .into_iter()
            .map(|(job, task)| (job.job_id, task))
            .collect()
    };
    let pair = |j: &str| (j.to_owned(), format!("{j}-0000"));
    assert_eq!(of("n1", None, 10), [pair("j4"), pair("j3"), pair("j1")]);
    assert_eq!(of("n1", None, 2), [pair("j4"), pair("j3")]);
    assert_eq!(of("n1", Some("j3"), 10), [pair("j3"), pair("j1")]);
    // "n1" is not a prefix of "n10"'s entries, nor the other way round.
    assert_eq!(of("n10", None, 10), [pair("j2")]);
    assert!(of("n", None, 10).is_empty());
}

#[tokio::test]
async fn events_stored_in_runs_are_read_from_any_seq() {
    use lab_proto::v1::{job_event::Body, JobDone, JobEvent, TaskInfo, TaskOutput};
    let (_d, store) = open();
    let event = |seq: u64, body: Body| {
        (
            "j1".to_owned(),
            JobEvent {
                seq,
                unix_ms: 0,
                body: Some(body),
            },
        )
    };
    let task = |seq: u64| {
        let info = TaskInfo {
            task_id: format!("j1-{seq:04}"),
            ..Default::default()
        };
        event(seq, Body::Task(info))
    };
    let mut batch = JobBatch::default();
    batch.events.extend((1..=300).map(task));
    let out = TaskOutput {
        task_id: "j1-0001".into(),
        data: b"hi\n".to_vec(),
        ..Default::default()
    };
    batch.events.push(event(301, Body::Output(out)));
    batch
        .events
        .push(event(302, Body::Progress(Default::default())));
    batch.events.extend((303..=305).map(task));
    batch
        .events
        .push(event(306, Body::Done(JobDone::default())));
    // Another job's event ends nothing of j1's.
    batch.events.push(("j2".to_owned(), task(1).1));
    store.commit_jobs(batch).await.unwrap();
    let t = store.t().unwrap();
    // Runs of at most 256: 1-256, 257-300; output and progress alone; 303-306; j2's one.
    assert_eq!(kv::entries(t, TreeId::Events).unwrap().len(), 6);
    for from in [0, 1, 2, 255, 256, 257, 300, 301, 302, 303, 304, 306, 307] {
        let seqs: Vec<u64> = store
            .events("j1", from)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let want: Vec<u64> = (from.max(1)..=306).collect();
        assert_eq!(seqs, want, "from {from}");
    }
    assert_eq!(store.events("j2", 1).unwrap().len(), 1);
    // A replaced progress event is deleted alone.
    let dropped = JobBatch {
        dropped_events: vec![("j1".into(), 302)],
        ..Default::default()
    };
    store.commit_jobs(dropped).await.unwrap();
    let seqs: Vec<u64> = store
        .events("j1", 300)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [300, 301, 303, 304, 305, 306]);
}
