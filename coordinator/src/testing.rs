//! Test support: a real coordinator (initialized data directory, real store, no listeners) with
//! some nodes enrolled, for tests that drive the job engine and schedules directly.

use lab_proto::store::v1::NodeRecord;
use tokio_util::sync::CancellationToken;

use crate::init::{init, InitOptions};
use crate::state::{Coordinator, ServeOptions};
use crate::DataDir;

/// A coordinator in `dir` with the nodes `nodes` in its inventory (none online).
pub async fn coordinator(dir: &std::path::Path, nodes: &[&str]) -> Coordinator {
    let data_dir = DataDir::new(dir.join("coord"));
    init(&InitOptions {
        data_dir: data_dir.clone(),
        advertise: "127.0.0.1:7443".into(),
        trust_domain: "test.lab".into(),
        extra_sans: vec![],
        force: false,
        store: None,
    })
    .await
    .unwrap();
    let coord =
        Coordinator::open(&data_dir, ServeOptions::default(), CancellationToken::new()).unwrap();
    for name in nodes {
        coord
            .store
            .create_node(NodeRecord {
                name: (*name).into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    coord
}
