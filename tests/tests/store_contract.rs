//! The store's contract, one test body run against both backends: sled in a temp dir and a
//! real etcd (the process's shared three-member cluster, a fresh key prefix per test). Also: export and
//! import across backends, and a 3-member etcd cluster that loses a member.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ops::Bound;
use std::sync::Arc;

use lab_coordinator::store::export;
use lab_coordinator::store::kv::{entries, Keys, Op, Order, TreeId};
use lab_coordinator::store::{EtcdOptions, JobBatch, Location, Store, StoreError, StoreOptions};
use lab_proto::store::v1::{JobRecord, NodeRecord, TaskRecord, TokenRecord, UserRecord};
use lab_proto::v1::{job_event, JobEvent, TaskInfo, TaskOutput};
use lab_tests::etcd;

#[derive(Clone, Copy)]
enum Backend {
    Sled,
    Etcd,
}

/// A place for a new store of `backend` (its temp dir lives as long as the returned guard).
fn location(backend: Backend) -> (tempfile::TempDir, Location) {
    let tmp = tempfile::tempdir().unwrap();
    let loc = match backend {
        Backend::Sled => Location::Sled(tmp.path().join("state")),
        Backend::Etcd => etcd_location(&etcd::shared().url()),
    };
    (tmp, loc)
}

fn etcd_location(url: &str) -> Location {
    let mut o = EtcdOptions::parse(url).unwrap();
    o.prefix = etcd::unique_prefix();
    Location::Etcd(o)
}

async fn open(loc: &Location) -> Store {
    let options = StoreOptions {
        min_free_bytes: 0,
        ..Default::default()
    };
    Store::open_at(loc, &options).await.unwrap()
}

fn key_list(store: &Store, tree: TreeId) -> Vec<Vec<u8>> {
    entries(store.kv().unwrap(), tree)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn scan(store: &Store, tree: TreeId, keys: Keys<'_>, order: Order, limit: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    store
        .kv()
        .unwrap()
        .scan(tree, keys, order, &mut |k, _| {
            out.push(k.to_vec());
            Ok(out.len() < limit)
        })
        .unwrap();
    out
}

async fn key_value_operations(backend: Backend) {
    let (_tmp, loc) = location(backend);
    let store = open(&loc).await;
    let kv = store.kv().unwrap();
    let t = TreeId::Events;
    assert!(kv.is_empty(t).unwrap());
    // In byte order ('b' < 0xff).
    let keys: [&[u8]; 5] = [b"a", b"a\x00\x01", b"ab", b"a\xff", b"b"];
    kv.apply(
        keys.iter()
            .map(|k| Op::Put(t, k.to_vec(), k.to_vec()))
            .collect(),
    )
    .unwrap();
    // Visible at once, before the flush.
    assert_eq!(&*kv.get(t, b"ab").unwrap().unwrap(), b"ab");
    assert!(kv.get(TreeId::Tasks, b"ab").unwrap().is_none());
    store.flush().await.unwrap();
    assert_eq!(key_list(&store, t), keys.map(<[u8]>::to_vec));
    assert_eq!(
        scan(&store, t, Keys::Prefix(b"a"), Order::Forward, 10),
        [&b"a"[..], b"a\x00\x01", b"ab", b"a\xff"].map(<[u8]>::to_vec)
    );
    assert_eq!(
        scan(&store, t, Keys::All, Order::Backward, 2),
        [&b"b"[..], b"a\xff"].map(<[u8]>::to_vec)
    );
    let range = Keys::Range(Bound::Excluded(b"a"), Bound::Included(b"ab"));
    assert_eq!(scan(&store, t, range, Order::Forward, 10).len(), 2);
    let inverted = Keys::Range(Bound::Included(b"b"), Bound::Excluded(b"a"));
    assert!(scan(&store, t, inverted, Order::Forward, 10).is_empty());
    // Compare and swap: absent → value, value → other, a stale expectation fails.
    assert!(kv
        .compare_and_swap(t, b"c", None, Some(b"1".to_vec()))
        .unwrap());
    assert!(!kv
        .compare_and_swap(t, b"c", None, Some(b"2".to_vec()))
        .unwrap());
    assert!(kv
        .compare_and_swap(t, b"c", Some(b"1"), Some(b"2".to_vec()))
        .unwrap());
    assert!(!kv.compare_and_swap(t, b"c", Some(b"1"), None).unwrap());
    assert!(kv.compare_and_swap(t, b"c", Some(b"2"), None).unwrap());
    assert!(kv.get(t, b"c").unwrap().is_none());
    assert!(kv.remove(t, b"b").unwrap());
    assert!(!kv.remove(t, b"b").unwrap());
    // An empty value is a value.
    kv.apply(vec![Op::Put(
        TreeId::NodeTasks,
        b"n\nt".to_vec(),
        Vec::new(),
    )])
    .unwrap();
    // The last write of a key in one flush wins.
    kv.apply(vec![
        Op::Put(t, b"z".to_vec(), b"1".to_vec()),
        Op::Delete(t, b"z".to_vec()),
        Op::Put(t, b"z".to_vec(), b"3".to_vec()),
    ])
    .unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = open(&loc).await;
    let kv = store.kv().unwrap();
    assert_eq!(
        key_list(&store, t),
        [&b"a"[..], b"a\x00\x01", b"ab", b"a\xff", b"z"].map(<[u8]>::to_vec)
    );
    assert_eq!(&*kv.get(t, b"z").unwrap().unwrap(), b"3");
    assert_eq!(
        kv.get(TreeId::NodeTasks, b"n\nt").unwrap().unwrap().len(),
        0
    );
}

async fn large_values_and_large_flushes(backend: Backend) {
    let (_tmp, loc) = location(backend);
    let store = open(&loc).await;
    let kv = store.kv().unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    kv.apply(vec![Op::Put(TreeId::Facts, b"big".to_vec(), big.clone())])
        .unwrap();
    // More writes in one flush than one etcd transaction takes (128 operations).
    let many: Vec<Op> = (0..1000u32)
        .map(|i| Op::Put(TreeId::Tasks, i.to_be_bytes().to_vec(), vec![1; 100]))
        .collect();
    kv.apply(many).unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = open(&loc).await;
    let kv = store.kv().unwrap();
    assert_eq!(&*kv.get(TreeId::Facts, b"big").unwrap().unwrap(), &big[..]);
    assert_eq!(key_list(&store, TreeId::Tasks).len(), 1000);
    // Replaced by another large value, then by a small one, then deleted: each reads back.
    let bigger: Vec<u8> = big.iter().rev().copied().chain([9; 1000]).collect();
    kv.apply(vec![Op::Put(
        TreeId::Facts,
        b"big".to_vec(),
        bigger.clone(),
    )])
    .unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = open(&loc).await;
    let kv = store.kv().unwrap();
    assert_eq!(
        &*kv.get(TreeId::Facts, b"big").unwrap().unwrap(),
        &bigger[..]
    );
    kv.apply(vec![Op::Put(
        TreeId::Facts,
        b"big".to_vec(),
        b"small".to_vec(),
    )])
    .unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = open(&loc).await;
    let kv = store.kv().unwrap();
    assert_eq!(&*kv.get(TreeId::Facts, b"big").unwrap().unwrap(), b"small");
    assert!(kv.remove(TreeId::Facts, b"big").unwrap());
    store.flush().await.unwrap();
    drop(store);
    let store = open(&loc).await;
    assert!(store.kv().unwrap().is_empty(TreeId::Facts).unwrap());
}

fn token() -> TokenRecord {
    TokenRecord {
        token_id: "t1".into(),
        secret_sha256: vec![1; 32],
        expires_unix_ms: 100,
        ..Default::default()
    }
}

async fn records_creates_and_tokens(backend: Backend) {
    let (_tmp, loc) = location(backend);
    let store = open(&loc).await;
    let node = NodeRecord {
        name: "n1".into(),
        ..Default::default()
    };
    store.create_node(node.clone()).await.unwrap();
    assert!(matches!(
        store.create_node(node).await,
        Err(StoreError::Exists(_))
    ));
    store.put_token(token()).await.unwrap();
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
    assert_eq!(wins, 1, "exactly one consumer of a token wins");
    drop(store);
    let store = open(&loc).await;
    let used = &store.tokens().unwrap()[0];
    assert!(used.used_unix_ms != 0 && used.used_by.starts_with('n'));
    assert_eq!(store.nodes().unwrap().len(), 1);
}

async fn jobs_tasks_events_trim_and_remove(backend: Backend) {
    let (_tmp, loc) = location(backend);
    let store = open(&loc).await;
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
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.trim_output("j1", "j1-0000", 1).unwrap(), 4);
    store.flush().await.unwrap();
    drop(store);
    let store = open(&loc).await;
    let stored = store.job("j1").unwrap().unwrap();
    assert_eq!(store.task_ids_of(&stored).unwrap(), ["j1-0000"]);
    assert_eq!(store.unfinished_tasks_of_node("n1").unwrap(), ["j1-0000"]);
    let left = store.events("j1", 1).unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    assert_eq!(store.jobs_newest_first(10).unwrap().len(), 1);
    store.remove_job(&stored).await.unwrap();
    drop(store);
    let store = open(&loc).await;
    assert!(store.job("j1").unwrap().is_none());
    assert!(store.task("j1-0000").unwrap().is_none());
    assert!(store.events("j1", 1).unwrap().is_empty());
    assert!(store.unfinished_tasks_of_node("n1").unwrap().is_empty());
    for tree in TreeId::ALL {
        assert!(key_list(&store, tree).is_empty(), "{tree:?} is empty");
    }
}

async fn export_and_import_round_trip(backend: Backend) {
    let (_tmp, from) = location(backend);
    let store = open(&from).await;
    store
        .create_user(UserRecord {
            name: "admin".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let big = vec![5u8; 700 * 1024];
    store
        .kv()
        .unwrap()
        .apply(vec![
            Op::Put(TreeId::Facts, b"n1".to_vec(), big),
            Op::Put(TreeId::Events, b"j\x00\x00".to_vec(), b"e".to_vec()),
        ])
        .unwrap();
    store.flush().await.unwrap();
    let before = export::summarize(&store).unwrap();
    drop(store);
    let file = _tmp.path().join("store.export");
    let exported = export::export_store(&from, &file).await.unwrap();
    assert_eq!(exported, before);
    // Into the other backend and back into this one.
    let other = match backend {
        Backend::Sled => Backend::Etcd,
        Backend::Etcd => Backend::Sled,
    };
    for target in [other, backend] {
        let (_t2, to) = location(target);
        let imported = export::import_store(&to, &file).await.unwrap();
        assert_eq!(imported, before);
        // A second import into the now non-empty store is refused, naming the problem.
        let again = export::import_store(&to, &file).await.unwrap_err();
        assert!(again.to_string().contains("is not empty"), "{again}");
        let store = open(&to).await;
        assert_eq!(export::summarize(&store).unwrap(), before);
        assert!(store.user("admin").unwrap().is_some());
    }
    // A damaged or missing file is refused before anything is written: the same target then
    // takes the good file (import needs an empty store).
    let good = std::fs::read(&file).unwrap();
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let (_t3, to) = location(backend);
    let err = export::import_store(&to, &file).await.unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let missing = file.with_extension("missing");
    let err = export::import_store(&to, &missing).await.unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    std::fs::write(&file, good).unwrap();
    let imported = export::import_store(&to, &file).await.unwrap();
    assert_eq!(imported, before);
}

macro_rules! both_backends {
    ($($body:ident),* $(,)?) => {
        mod on_sled {
            $(#[tokio::test]
            async fn $body() {
                super::$body(super::Backend::Sled).await
            })*
        }
        mod on_etcd {
            $(#[tokio::test]
            async fn $body() {
                super::$body(super::Backend::Etcd).await
            })*
        }
    };
}

both_backends!(
    key_value_operations,
    large_values_and_large_flushes,
    records_creates_and_tokens,
    jobs_tasks_events_trim_and_remove,
    export_and_import_round_trip,
);

/// A store on a 3-member cluster keeps committing with one member down, refuses (with an
/// error naming etcd) once a quorum is gone, and what it acknowledged is there afterwards.
#[tokio::test]
async fn three_members_lose_one_then_the_quorum() {
    let mut cluster = etcd::Etcd::cluster(3);
    let loc = etcd_location(&cluster.url());
    let store = open(&loc).await;
    store.put_token(token()).await.unwrap();
    cluster.kill_member(0);
    for i in 0..20 {
        let node = NodeRecord {
            name: format!("n{i}"),
            ..Default::default()
        };
        store.create_node(node).await.unwrap();
    }
    cluster.kill_member(1);
    let node = NodeRecord {
        name: "late".into(),
        ..Default::default()
    };
    let err = store.create_node(node).await.unwrap_err();
    assert!(err.to_string().contains("etcd"), "{err}");
    // From now on this process refuses writes; it starts afresh once etcd has a quorum again.
    assert!(store.failed());
    drop(store);
    cluster.start_member(0);
    cluster.start_member(1);
    cluster.wait_healthy();
    let store = open(&loc).await;
    // Every acknowledged write is there. The refused one may be too: the leader may have had it
    // in its log and committed it once the members were back (an error says "not known to be
    // stored", never "not stored"); nothing was acknowledged for it.
    let names: Vec<String> = store.nodes().unwrap().into_iter().map(|n| n.name).collect();
    for i in 0..20 {
        assert!(names.contains(&format!("n{i}")), "n{i} in {names:?}");
    }
    assert!(names.len() == 20 || (names.len() == 21 && names.contains(&"late".to_owned())));
    assert_eq!(store.tokens().unwrap().len(), 1);
}
