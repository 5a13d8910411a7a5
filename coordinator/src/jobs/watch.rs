//! Watching a job: stored events from a sequence number, then live ones. Live events go through
//! one broadcast channel per job; a watcher that falls behind re-reads the store, so a slow
//! watcher never blocks agents or other watchers.

use lab_proto::v1::{job_event, JobEvent};
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use crate::error::ApiError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Cx, Jobs};

/// Live events kept per job for watchers that are a little behind.
const LIVE_CAPACITY: usize = 1024;
/// Events queued towards one watcher.
const WATCHER_QUEUE: usize = 256;

fn watchers(
    jobs: &Jobs,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, broadcast::Sender<JobEvent>>> {
    jobs.watchers.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends a committed event to the job's live watchers.
pub fn publish(jobs: &Jobs, job_id: &str, event: JobEvent) {
    if let Some(tx) = watchers(jobs).get(job_id) {
        let _ = tx.send(event);
    }
}

/// Drops the live channel of a finished job (its watchers read the rest from the store).
pub fn close(jobs: &Jobs, job_id: &str) {
    watchers(jobs).remove(job_id);
}

/// A receiver of the job's live events.
pub fn subscribe(jobs: &Jobs, job_id: &str) -> broadcast::Receiver<JobEvent> {
    watchers(jobs)
        .entry(job_id.to_owned())
        .or_insert_with(|| broadcast::channel(LIVE_CAPACITY).0)
        .subscribe()
}

fn wanted(event: &JobEvent, node: &str) -> bool {
    if node.is_empty() {
        return true;
    }
    match &event.body {
        Some(job_event::Body::Task(t)) => t.node == node,
        Some(job_event::Body::Output(o)) => o.node == node,
        Some(job_event::Body::Progress(p)) => p.node == node,
        _ => true,
    }
}

/// Streams the events of `job_id` from `from_seq` until its JobDone event; with `stored_only`,
/// only the events stored so far. The streaming task runs on `tasks` and ends at `shutdown`.
pub fn stream(
    cx: &Cx<'_>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    job_id: String,
    from_seq: u64,
    node: String,
    stored_only: bool,
) -> mpsc::Receiver<Result<JobEvent, Status>> {
    let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
    // Subscribe before reading the store, so no event falls between the two.
    let done = stored_only || cx.store.job(&job_id).ok().flatten().is_none_or(|j| j.done);
    let mut live = (!done).then(|| subscribe(cx.jobs, &job_id));
    let store = cx.store.clone();
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let mut next = from_seq.max(1);
        loop {
            // Everything stored from `next` on.
            let stored = match store.events(&job_id, next) {
                Ok(events) => events,
                Err(e) => {
                    let _ = tx.send(Err(ApiError::from(e).into())).await;
                    return;
                }
            };
            for event in stored {
                next = event.seq + 1;
                let done = matches!(event.body, Some(job_event::Body::Done(_)));
                if wanted(&event, &node) && tx.send(Ok(event)).await.is_err() {
                    return;
                }
                if done {
                    return;
                }
            }
            // Then live events, until a gap sends us back to the store.
            let Some(rx) = live.as_mut() else {
                return; // the job was finished and the store had everything
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("coordinator is shutting down; resume from the last sequence number"))).await;
                        return;
                    }
                    received = rx.recv() => match received {
                        Ok(event) if event.seq < next => continue,
                        Ok(event) if event.seq == next => {
                            next += 1;
                            let done = matches!(event.body, Some(job_event::Body::Done(_)));
                            if wanted(&event, &node) && tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                            if done {
                                return;
                            }
                        }
                        // A gap, a lag, or the channel closed because the job finished.
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            live = None;
                            break;
                        }
                    },
                }
            }
        }
    });
    rx
}
