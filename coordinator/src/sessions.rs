//! Live agent sessions: which nodes are connected right now, when each was last heard from, and
//! the handle to close a session (on revocation, on a newer session, on missed heartbeats).
//!
//! Online/offline is this in-memory registry; the store keeps `last_seen` for history.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lab_proto::v1::CoordinatorMessage;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

/// What travels on an agent's queue: a message, or the status that ends the stream.
pub type OutboundItem = Result<CoordinatorMessage, tonic::Status>;

/// The queue towards one agent's stream (bounded; `send` waits for room, `try_send` fails when
/// full). Messages are boxed in the queue: tokio allocates a channel's slots 32 at a time, and a
/// `CoordinatorMessage` is 376 bytes, so an unboxed queue cost every idle session 12 KiB.
#[derive(Clone)]
pub struct Outbound(mpsc::Sender<Result<Box<CoordinatorMessage>, tonic::Status>>);

/// The queue is closed (the session ended) or, for `try_send`, full.
#[derive(Debug)]
pub struct NotSent;

impl Outbound {
    /// A queue of `capacity` messages and the stream that drains it into the agent's response.
    pub fn channel(capacity: usize) -> (Outbound, impl Stream<Item = OutboundItem> + Send) {
        let (tx, rx) = mpsc::channel::<Result<Box<CoordinatorMessage>, tonic::Status>>(capacity);
        let stream = ReceiverStream::new(rx).map(|item| item.map(|m| *m));
        (Outbound(tx), stream)
    }

    /// Queues `item`, waiting for room. A queue with room takes it at once, without a yield
    /// point: an awaited send spends the task's scheduling budget, so a loop queueing one
    /// message to each of 10,000 sessions yielded every 128 messages and waited behind the
    /// sessions it had just woken (about 1 s of a 10,000-node submit).
    pub async fn send(&self, item: OutboundItem) -> Result<(), NotSent> {
        match self.0.try_send(item.map(Box::new)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                self.0.send(item).await.map_err(|_| NotSent)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotSent),
        }
    }

    /// Queues `item` if there is room now.
    pub fn try_send(&self, item: OutboundItem) -> Result<(), NotSent> {
        self.0.try_send(item.map(Box::new)).map_err(|_| NotSent)
    }
}

/// Why a session was closed by the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The node was revoked or removed.
    Revoked,
    /// The same node opened a newer session.
    Replaced,
    /// No message within the heartbeat window.
    MissedHeartbeats,
    /// The agent did not take messages off its queue in time.
    NotReading,
}

struct Entry {
    id: u64,
    outbound: Outbound,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<CloseReason>>>,
    last_seen_ms: Arc<AtomicI64>,
}

/// The handle a session's task holds.
pub struct Session {
    /// Unique id of this session.
    pub id: u64,
    /// Cancelled when the coordinator closes the session.
    pub cancel: CancellationToken,
    reason: Arc<Mutex<Option<CloseReason>>>,
    last_seen_ms: Arc<AtomicI64>,
}

impl Session {
    /// Records that the agent was heard from at `now_ms`.
    pub fn touch(&self, now_ms: i64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }
    /// When the agent was last heard from.
    pub fn last_seen_ms(&self) -> i64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }
    /// Why the session was closed, once cancelled.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All live sessions.
#[derive(Default)]
pub struct Sessions {
    next_id: AtomicU64,
    live: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new session for `node`, closing any older one.
    pub fn open(&self, node: &str, now_ms: i64, outbound: Outbound) -> Session {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session {
            id,
            cancel: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
            last_seen_ms: Arc::new(AtomicI64::new(now_ms)),
        };
        let entry = Entry {
            id,
            outbound,
            cancel: session.cancel.clone(),
            reason: session.reason.clone(),
            last_seen_ms: session.last_seen_ms.clone(),
        };
        if let Some(old) = self.live().insert(node.to_owned(), entry) {
            close(&old, CloseReason::Replaced);
        }
        session
    }

    /// Removes the session `id` of `node` (a newer one stays).
    pub fn remove(&self, node: &str, id: u64) {
        let mut live = self.live();
        if live.get(node).is_some_and(|e| e.id == id) {
            live.remove(node);
        }
    }

    /// Closes the session of `node`; returns whether there was one.
    pub fn close(&self, node: &str, reason: CloseReason) -> bool {
        match self.live().remove(node) {
            Some(entry) => {
                close(&entry, reason);
                true
            }
            None => false,
        }
    }

    /// The queue towards `node`'s live session.
    pub fn sender(&self, node: &str) -> Option<Outbound> {
        self.live().get(node).map(|e| e.outbound.clone())
    }

    /// Whether `node` has a live session.
    pub fn is_online(&self, node: &str) -> bool {
        self.live().contains_key(node)
    }

    /// When `node` was last heard from in its live session.
    pub fn last_seen_ms(&self, node: &str) -> Option<i64> {
        self.live()
            .get(node)
            .map(|e| e.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Number of live sessions.
    pub fn count(&self) -> usize {
        self.live().len()
    }

    /// Every node with a live session and when it was last heard from, taken under one lock.
    pub fn last_seen_all(&self) -> HashMap<String, i64> {
        self.live()
            .iter()
            .map(|(n, e)| (n.clone(), e.last_seen_ms.load(Ordering::Relaxed)))
            .collect()
    }

    /// Closes every session not heard from since `cutoff_ms`; returns their nodes.
    pub fn close_silent(&self, cutoff_ms: i64) -> Vec<String> {
        let mut live = self.live();
        let silent: Vec<String> = live
            .iter()
            .filter(|(_, e)| e.last_seen_ms.load(Ordering::Relaxed) < cutoff_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for node in &silent {
            if let Some(entry) = live.remove(node) {
                close(&entry, CloseReason::MissedHeartbeats);
            }
        }
        silent
    }
}

fn close(entry: &Entry, reason: CloseReason) {
    *entry.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    entry.cancel.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Outbound {
        Outbound::channel(1).0
    }

    #[tokio::test]
    async fn the_queue_delivers_messages_and_the_final_status_in_order() {
        use lab_proto::v1::coordinator_message::Msg;
        use lab_proto::v1::HeartbeatAck;
        let (tx, stream) = Outbound::channel(2);
        let ack = |seq| CoordinatorMessage {
            msg: Some(Msg::HeartbeatAck(HeartbeatAck { seq })),
        };
        tx.send(Ok(ack(1))).await.unwrap();
        tx.try_send(Ok(ack(2))).unwrap();
        assert!(tx.try_send(Ok(ack(3))).is_err(), "full queue must refuse");
        let mut stream = Box::pin(stream);
        assert_eq!(stream.next().await.unwrap().unwrap(), ack(1));
        assert_eq!(stream.next().await.unwrap().unwrap(), ack(2));
        tx.send(Err(tonic::Status::unavailable("bye")))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(stream.next().await.unwrap().unwrap_err().message(), "bye");
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn send_waits_only_for_a_full_queue_and_fails_on_a_closed_one() {
        let (tx, stream) = Outbound::channel(1);
        let mut stream = Box::pin(stream);
        tx.send(Ok(CoordinatorMessage::default())).await.unwrap();
        // Full: the second send completes once the first message was taken.
        let second = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(Ok(CoordinatorMessage::default())).await }
        });
        assert!(stream.next().await.unwrap().is_ok());
        second.await.unwrap().unwrap();
        assert!(stream.next().await.unwrap().is_ok());
        drop(stream);
        assert!(tx.send(Ok(CoordinatorMessage::default())).await.is_err());
    }

    #[test]
    fn newer_session_replaces_older() {
        let s = Sessions::default();
        let a = s.open("n1", 0, q());
        let b = s.open("n1", 0, q());
        assert!(a.cancel.is_cancelled());
        assert_eq!(a.close_reason(), Some(CloseReason::Replaced));
        s.remove("n1", a.id);
        assert!(
            s.is_online("n1"),
            "removing the old session must keep the new one"
        );
        s.remove("n1", b.id);
        assert!(!s.is_online("n1"));
    }

    #[test]
    fn silent_sessions_are_closed() {
        let s = Sessions::default();
        let quiet = s.open("quiet", 0, q());
        let chatty = s.open("chatty", 0, q());
        chatty.touch(100);
        assert_eq!(s.close_silent(50), vec!["quiet".to_string()]);
        assert_eq!(quiet.close_reason(), Some(CloseReason::MissedHeartbeats));
        assert!(s.is_online("chatty"));
    }

    #[test]
    fn close_reports_revocation() {
        let s = Sessions::default();
        let a = s.open("n1", 0, q());
        assert!(s.close("n1", CloseReason::Revoked));
        assert_eq!(a.close_reason(), Some(CloseReason::Revoked));
        assert!(!s.close("n1", CloseReason::Revoked));
    }
}
