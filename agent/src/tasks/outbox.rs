//! The outbox: every task update the coordinator has not acknowledged yet, per task in seq
//! order, with a mark of what the current session has already sent.
//!
//! It is plain memory, kept across sessions (not across agent restarts: the journal covers
//! those). Output is bounded per task: past the limit, the oldest unacknowledged output chunks
//! of that task are dropped (never `started` or `finished`); the coordinator tolerates the gap
//! in sequence numbers. No I/O here.

use std::collections::{BTreeMap, VecDeque};

use lab_proto::v1::task_update::Body;
use lab_proto::v1::TaskUpdate;

/// Default bound of unacknowledged output kept per task.
pub const DEFAULT_MAX_OUTPUT_PER_TASK: usize = 8 * 1024 * 1024;

/// Unacknowledged updates of one task.
#[derive(Debug, Default)]
struct TaskBox {
    /// In seq order.
    updates: VecDeque<TaskUpdate>,
    /// Updates from this index on have not been sent in the current session.
    unsent_from: usize,
    /// Bytes of output held.
    output_bytes: usize,
}

fn output_len(u: &TaskUpdate) -> Option<usize> {
    match &u.body {
        Some(Body::Output(chunk)) => Some(chunk.data.len()),
        _ => None,
    }
}

fn is_final(u: &TaskUpdate) -> bool {
    matches!(u.body, Some(Body::Finished(_)))
}

/// All unacknowledged updates of all tasks.
#[derive(Debug)]
pub struct Outbox {
    boxes: BTreeMap<String, TaskBox>,
    max_output_per_task: usize,
    /// Output bytes dropped per unfinished task (a task's box may empty and go in between);
    /// reported in the task's `finished` update.
    dropped: BTreeMap<String, u64>,
}

impl Outbox {
    /// An empty outbox keeping at most `max_output_per_task` bytes of output per task.
    pub fn new(max_output_per_task: usize) -> Self {
        Outbox {
            boxes: BTreeMap::new(),
            max_output_per_task,
            dropped: BTreeMap::new(),
        }
    }

    /// Appends `update` (the next of its task) as not yet sent.
    pub fn push(&mut self, mut update: TaskUpdate) {
        let max = self.max_output_per_task;
        if let Some(Body::Finished(f)) = &mut update.body {
            f.output_dropped_bytes += self.dropped.remove(&update.task_id).unwrap_or(0);
        }
        let b = self.boxes.entry(update.task_id.clone()).or_default();
        if let Some(n) = output_len(&update) {
            b.output_bytes += n;
        }
        let task_id = update.task_id.clone();
        b.updates.push_back(update);
        while b.output_bytes > max {
            let Some(i) = b.updates.iter().position(|u| output_len(u).is_some()) else {
                break;
            };
            if let Some(n) = b.updates.remove(i).as_ref().and_then(output_len) {
                b.output_bytes -= n;
                let dropped = self.dropped.entry(task_id.clone()).or_default();
                if *dropped == 0 {
                    tracing::warn!(task = %task_id, limit = max, "unacknowledged task output exceeds the limit; dropping its oldest chunks");
                }
                *dropped += n as u64;
            }
            if i < b.unsent_from {
                b.unsent_from -= 1;
            }
        }
    }

    /// Marks the `finished` update of `task_id` for sending again; false if it is not here.
    pub fn resend_final(&mut self, task_id: &str) -> bool {
        let Some(b) = self.boxes.get_mut(task_id) else {
            return false;
        };
        match b.updates.iter().rposition(is_final) {
            Some(i) => {
                b.unsent_from = b.unsent_from.min(i);
                true
            }
            None => false,
        }
    }

    /// Drops the updates of `task_id` with seq ≤ `through_seq`; returns the seq of its
    /// `finished` update if that was among them.
    pub fn ack(&mut self, task_id: &str, through_seq: u64) -> Option<u64> {
        let b = self.boxes.get_mut(task_id)?;
        let mut acked_final = None;
        while b.updates.front().is_some_and(|u| u.seq <= through_seq) {
            if let Some(u) = b.updates.pop_front() {
                if let Some(n) = output_len(&u) {
                    b.output_bytes -= n;
                }
                if is_final(&u) {
                    acked_final = Some(u.seq);
                }
                b.unsent_from = b.unsent_from.saturating_sub(1);
            }
        }
        if b.updates.is_empty() {
            self.boxes.remove(task_id);
        }
        acked_final
    }

    /// Every unacknowledged update, per task in seq order, now marked as sent.
    pub fn all_unacked(&mut self) -> Vec<TaskUpdate> {
        let mut out = Vec::new();
        for b in self.boxes.values_mut() {
            out.extend(b.updates.iter().cloned());
            b.unsent_from = b.updates.len();
        }
        out
    }

    /// Marks every unacknowledged update as not sent (a new session starts); true if any.
    pub fn rewind(&mut self) -> bool {
        for b in self.boxes.values_mut() {
            b.unsent_from = 0;
        }
        !self.boxes.is_empty()
    }

    /// Up to `max` updates not sent in this session yet, now marked as sent, and whether more
    /// remain.
    pub fn take_unsent(&mut self, max: usize) -> (Vec<TaskUpdate>, bool) {
        let mut out = Vec::new();
        for b in self.boxes.values_mut() {
            while b.unsent_from < b.updates.len() {
                if out.len() == max {
                    return (out, true);
                }
                if let Some(u) = b.updates.get(b.unsent_from) {
                    out.push(u.clone());
                }
                b.unsent_from += 1;
            }
        }
        (out, false)
    }

    /// Ids of the tasks with unacknowledged updates.
    pub fn task_ids(&self) -> impl Iterator<Item = &str> {
        self.boxes.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{TaskChunk, TaskFinished, TaskStarted};

    fn upd(id: &str, seq: u64, body: Body) -> TaskUpdate {
        TaskUpdate {
            task_id: id.into(),
            seq,
            body: Some(body),
        }
    }
    fn out(id: &str, seq: u64, n: usize) -> TaskUpdate {
        upd(
            id,
            seq,
            Body::Output(TaskChunk {
                stream: 1,
                data: vec![b'x'; n],
            }),
        )
    }
    fn seqs(v: &[TaskUpdate]) -> Vec<(String, u64)> {
        v.iter().map(|u| (u.task_id.clone(), u.seq)).collect()
    }

    #[test]
    fn send_ack_and_resend() {
        let mut o = Outbox::new(1000);
        o.push(upd("a", 1, Body::Started(TaskStarted { unix_ms: 1 })));
        o.push(out("a", 2, 10));
        o.push(out("b", 1, 10));
        let (first, more) = o.take_unsent(2);
        assert_eq!(seqs(&first), [("a".into(), 1), ("a".into(), 2)]);
        assert!(more);
        let (rest, more) = o.take_unsent(10);
        assert_eq!(seqs(&rest), [("b".into(), 1)]);
        assert!(!more);
        assert!(o.take_unsent(10).0.is_empty());
        // A new session re-sends everything unacked.
        assert_eq!(o.all_unacked().len(), 3);
        assert!(o.take_unsent(10).0.is_empty());
        assert!(o.rewind());
        assert_eq!(
            seqs(&o.take_unsent(10).0),
            [("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]
        );
        assert_eq!(o.ack("a", 1), None);
        o.push(upd("a", 3, Body::Finished(TaskFinished::default())));
        assert_eq!(seqs(&o.take_unsent(10).0), [("a".into(), 3)]);
        assert!(o.resend_final("a"));
        assert!(!o.resend_final("b"));
        assert_eq!(seqs(&o.take_unsent(10).0), [("a".into(), 3)]);
        assert_eq!(o.ack("a", 3), Some(3));
        assert_eq!(o.task_ids().collect::<Vec<_>>(), ["b"]);
        assert_eq!(o.ack("b", 5), None);
        assert_eq!(o.task_ids().count(), 0);
    }

    #[test]
    fn drops_oldest_output_over_the_bound() {
        let mut o = Outbox::new(25);
        o.push(upd("a", 1, Body::Started(TaskStarted { unix_ms: 1 })));
        o.push(out("a", 2, 10));
        o.push(out("a", 3, 10));
        assert_eq!(o.take_unsent(10).0.len(), 3);
        o.push(out("a", 4, 10)); // 30 > 25: seq 2 goes
        o.push(upd("a", 5, Body::Finished(TaskFinished::default())));
        let all = o.all_unacked();
        assert_eq!(all.iter().map(|u| u.seq).collect::<Vec<_>>(), [1, 3, 4, 5]);
        o.push(out("a", 6, 30)); // alone over the bound: everything but started/finished goes
        assert_eq!(
            o.all_unacked().iter().map(|u| u.seq).collect::<Vec<_>>(),
            [1, 5]
        );
    }

    #[test]
    fn the_finished_update_reports_the_output_dropped() {
        let mut o = Outbox::new(25);
        o.push(out("a", 1, 20));
        o.push(out("a", 2, 20)); // drops seq 1
        assert_eq!(o.ack("a", 2), None); // the box empties and goes
        o.push(out("a", 3, 20));
        o.push(out("a", 4, 20)); // drops seq 3
        o.push(upd("a", 5, Body::Finished(TaskFinished::default())));
        let finished = o.all_unacked().into_iter().find(|u| u.seq == 5);
        let Some(Body::Finished(f)) = finished.and_then(|u| u.body) else {
            panic!("finished update kept");
        };
        assert_eq!(f.output_dropped_bytes, 40);
        assert!(
            o.dropped.is_empty(),
            "the count goes with the finished update"
        );
    }

    #[test]
    fn dropping_keeps_the_unsent_mark() {
        let mut o = Outbox::new(20);
        o.push(out("a", 1, 10));
        o.push(out("a", 2, 10));
        assert_eq!(o.take_unsent(1).0.len(), 1); // seq 1 sent
        o.push(out("a", 3, 10)); // drops seq 1
        assert_eq!(
            o.take_unsent(10)
                .0
                .iter()
                .map(|u| u.seq)
                .collect::<Vec<_>>(),
            [2, 3]
        );
    }
}
