//! Jobs: one operator request becomes one task per selected node; task updates from agents are
//! de-duplicated, stored and fanned out to watchers; the rollout planner decides what starts.
//!
//! Every change goes through [`JobBatch`](crate::store::JobBatch): written and flushed before any
//! agent is acknowledged or any watcher sees it. Changes are serialized by one lock; decisions
//! are the pure functions of [`state`] and [`rollout`], recomputed from the store on every
//! change and every tick, so a coordinator restart is harmless.

mod assign;
mod bounds;
pub mod failures;
pub mod rollout;
pub mod secrets;
pub mod spec;
pub mod spec_backup;
pub mod spec_config;
pub mod spec_secrets;
pub mod state;
pub mod watch;

mod engine;
mod records;
mod submit;
mod tick;
#[cfg(test)]
mod unsent_tests;
mod update;
mod update_batch;

pub use engine::{cancel, on_session_start, schedule};
pub use submit::{submit, submit_once, Submitted};
pub use tick::run_ticker;
pub use update::{apply_update, Applied};
pub use update_batch::on_update;
pub use watch::subscribe;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use lab_proto::v1::JobEvent;
use tokio::sync::broadcast;

use crate::sessions::Sessions;
use crate::store::Store;

/// Tunables of the job engine.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Output kept per task; older output is dropped first (the tail is kept).
    pub output_limit_per_task: u64,
    /// Deadline for tasks of offline nodes when the job names none.
    pub default_deadline: Duration,
    /// Finished jobs older than this are deleted.
    pub retention_age: Duration,
    /// At most this many finished jobs are kept.
    pub retention_count: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            output_limit_per_task: 1024 * 1024,
            default_deadline: Duration::from_secs(3600),
            retention_age: Duration::from_secs(30 * 24 * 3600),
            retention_count: 1000,
        }
    }
}

/// What the job engine works with: the store, its own in-memory part and the live sessions
/// (which nodes are online, and their queues). The coordinator lends it (`Coordinator::job_cx`).
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    /// The store every change is committed to.
    pub store: &'a Store,
    /// The engine's lock, settings, secrets and watchers.
    pub jobs: &'a Jobs,
    /// Live agent sessions.
    pub sessions: &'a Sessions,
    /// The lab's topology (the derived `hypervisor` label).
    pub topology: &'a crate::topology::TopologyIndex,
}

impl crate::inventory::Live for Cx<'_> {
    fn online(&self, node: &str) -> bool {
        self.sessions.is_online(node)
    }

    fn hypervisor(&self, node: &str) -> Option<String> {
        self.topology.hypervisor_of(node)
    }
}

/// In-memory part of the job engine.
pub struct Jobs {
    /// Tunables.
    pub settings: JobSettings,
    /// Secret file content of submitted jobs until it is delivered (memory only).
    pub secrets: secrets::Secrets,
    /// Failed tasks by job name, for the metrics (memory only).
    pub failed_tasks: failures::FailedTasks,
    lock: tokio::sync::Mutex<()>,
    /// Agent updates waiting for the lock (applied in batches).
    updates: update_batch::UpdateQueue,
    watchers: Mutex<HashMap<String, broadcast::Sender<JobEvent>>>,
}

impl Jobs {
    /// An engine with `settings`.
    pub fn new(settings: JobSettings) -> Self {
        Jobs {
            settings,
            secrets: secrets::Secrets::default(),
            failed_tasks: failures::FailedTasks::default(),
            lock: tokio::sync::Mutex::new(()),
            updates: update_batch::UpdateQueue::default(),
            watchers: Mutex::new(HashMap::new()),
        }
    }
}
