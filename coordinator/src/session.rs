//! One agent's `Connect` session on the coordinator side: welcome, heartbeats, facts, and closing
//! when the coordinator says so (revocation, a newer session, missed heartbeats, shutdown).

use lab_proto::identity::NodeName;
use lab_proto::limits::MAX_FACTS_BYTES;
use lab_proto::store::v1::FactsRecord;
use lab_proto::v1::agent_message::Msg as AgentMsg;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{
    facts, AgentMessage, CoordinatorMessage, Facts, FactsAck, HeartbeatAck, Hello, RequestFacts,
    Welcome,
};
use std::net::IpAddr;
use std::sync::Arc;
use tonic::{Status, Streaming};

use crate::budget::ByteBudget;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::sessions::{CloseReason, Session};
use crate::state::Coordinator;

/// Messages queued towards one agent. When full, heartbeat acks are dropped (the agent only needs
/// some of them); everything else waits.
pub const OUTBOUND_CAPACITY: usize = 64;

use crate::sessions::Outbound;

fn msg(m: CoordMsg) -> Result<CoordinatorMessage, Status> {
    Ok(CoordinatorMessage { msg: Some(m) })
}

/// Registers the session, sends `Welcome`, and spawns the loop that serves it. `peer` is the
/// address the agent connected from; the node's record keeps it (with its `Hello`).
pub async fn start(
    coord: Arc<Coordinator>,
    name: NodeName,
    peer: Option<IpAddr>,
    inbound: Streaming<AgentMessage>,
    tx: Outbound,
) -> Result<(), Status> {
    let labels = coord
        .store
        .node(name.as_str())
        .ok()
        .flatten()
        .map(|n| n.labels)
        .unwrap_or_default();
    let session = coord.sessions.open(name.as_str(), now_ms(), tx.clone());
    coord.metrics.sessions_opened.inc();
    let welcome = Welcome {
        node_name: name.to_string(),
        heartbeat_interval_ms: coord.options.heartbeat_interval.as_millis() as u32,
        labels,
    };
    if tx.send(msg(CoordMsg::Welcome(welcome))).await.is_err() {
        coord.sessions.remove(name.as_str(), session.id);
        return Err(Status::cancelled("agent went away"));
    }
    tracing::info!(node = %name, session = session.id, "agent connected");
    let tasks = coord.tasks.clone();
    let (c, n) = (coord.clone(), name.to_string());
    tasks.spawn(serve(coord, name, peer, session, inbound, tx));
    // Re-send what this node still has to do, and start what waited for it.
    tasks.spawn(async move { crate::jobs::on_session_start(&c.job_cx(), &n).await });
    Ok(())
}

async fn serve(
    coord: Arc<Coordinator>,
    name: NodeName,
    peer: Option<IpAddr>,
    session: Session,
    mut inbound: Streaming<AgentMessage>,
    tx: Outbound,
) {
    let mut facts_budget = facts_budget();
    let ending = loop {
        tokio::select! {
            _ = session.cancel.cancelled() => {
                let status = match session.close_reason() {
                    Some(CloseReason::Revoked) => Status::permission_denied(format!("node '{name}' has been revoked")),
                    Some(CloseReason::Replaced) => Status::aborted("a newer session of this node replaced this one"),
                    Some(CloseReason::NotReading) => Status::unavailable("the agent did not read its messages in time; reconnect"),
                    _ => Status::unavailable("no heartbeat within the allowed window; reconnect"),
                };
                let _ = tx.send(Err(status)).await;
                break "closed by coordinator";
            }
            _ = coord.shutdown.cancelled() => {
                let _ = tx.send(Err(Status::unavailable("coordinator is shutting down"))).await;
                break "coordinator shutdown";
            }
            next = inbound.message() => match next {
                Ok(Some(m)) => {
                    session.touch(now_ms());
                    if let Err(e) = handle(&coord, &name, peer, m, &tx, &mut facts_budget).await {
                        let _ = tx.send(Err(e)).await;
                        break "protocol error";
                    }
                }
                Ok(None) => break "agent closed the stream",
                Err(_) => break "stream error",
            },
        }
    };
    coord.sessions.remove(name.as_str(), session.id);
    if let Ok(Some(mut node)) = coord.store.node(name.as_str()) {
        node.last_seen_unix_ms = session.last_seen_ms();
        if let Err(e) = coord.store.put_node(node).await {
            tracing::warn!(node = %name, error = %e, "cannot record last_seen");
        }
    }
    tracing::info!(node = %name, session = session.id, reason = ending, "agent session ended");
}

async fn handle(
    coord: &Coordinator,
    name: &NodeName,
    peer: Option<IpAddr>,
    m: AgentMessage,
    tx: &Outbound,
    facts_budget: &mut ByteBudget,
) -> Result<(), Status> {
    match m.msg {
        Some(AgentMsg::Hello(hello)) => on_hello(coord, name, peer, hello, tx).await,
        Some(AgentMsg::Heartbeat(hb)) => {
            // A full queue means the agent is not reading; skipping an ack is harmless.
            let _ = tx.try_send(msg(CoordMsg::HeartbeatAck(HeartbeatAck { seq: hb.seq })));
            Ok(())
        }
        Some(AgentMsg::Facts(f)) => on_facts(coord, name, f, tx, facts_budget).await,
        Some(AgentMsg::TaskUpdate(update)) => {
            let ack = crate::jobs::on_update(&coord.job_cx(), name.as_str(), update).await?;
            if let Some(ack) = ack {
                if tx.send(msg(CoordMsg::Ack(ack))).await.is_err() {
                    return Err(Status::cancelled("agent went away"));
                }
            }
            Ok(())
        }
        None => Err(Status::invalid_argument("empty agent message")),
    }
}

async fn on_hello(
    coord: &Coordinator,
    name: &NodeName,
    peer: Option<IpAddr>,
    hello: Hello,
    tx: &Outbound,
) -> Result<(), Status> {
    if let Ok(Some(mut node)) = coord.store.node(name.as_str()) {
        node.agent_version = hello.agent_version.chars().take(64).collect();
        node.boot_id = hello.boot_id.chars().take(64).collect();
        let (agent_labels, reserved) = lab_proto::labels::split_reserved(hello.labels);
        if !reserved.is_empty() {
            tracing::warn!(node = %name, keys = %reserved.join(","),
                "ignoring reserved labels in the agent's config: the coordinator derives them");
        }
        match crate::error::validate_labels(&agent_labels) {
            Ok(()) => node.agent_labels = agent_labels.into_iter().collect(),
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "ignoring the agent's config labels")
            }
        }
        node.age_recipient = age_recipient(name, &hello.age_recipient, node.age_recipient);
        node.last_seen_unix_ms = now_ms();
        if let Some(peer) = peer {
            node.last_address = peer.to_string();
        }
        coord.store.put_node(node).await.map_err(ApiError::from)?;
    }
    let known = coord
        .store
        .facts(name.as_str())
        .ok()
        .flatten()
        .map(|f| f.digest)
        .unwrap_or_default();
    if hello.facts_digest.is_empty() || hello.facts_digest != known {
        let _ = tx.send(msg(CoordMsg::RequestFacts(RequestFacts {}))).await;
    }
    Ok(())
}

/// The age recipient to keep for `name` after its agent reported `reported` in `Hello`: the
/// report when it is a valid recipient or empty (an agent from before node age keys), else
/// (logged) the one kept before. It only ever lands on the record of the node whose certificate
/// opened the session, so no agent can set another node's recipient.
fn age_recipient(name: &NodeName, reported: &str, before: String) -> String {
    if reported.is_empty() {
        return String::new();
    }
    match reported.parse::<lab_proto::recipient::AgeRecipient>() {
        Ok(r) => {
            if !before.is_empty() && before != r.as_str() {
                tracing::warn!(node = %name, before = %before, now = %r,
                    "the node's age recipient changed; secrets encrypted to the old one cannot be read there any more");
            }
            r.to_string()
        }
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "ignoring the age recipient in the agent's hello");
            before
        }
    }
}

/// Bytes of fact documents one session may have stored at once, and regains a second: a
/// normal agent stores a document of tens of KiB once a minute; a node that sends megabytes
/// in a loop is held to a quarter MiB a second (its reports are refused, not stored).
const FACTS_BUDGET_BYTES: u64 = 4 * 1024 * 1024;
const FACTS_REFILL_PER_SEC: u64 = 256 * 1024;

/// A fresh per-session budget for storing fact documents.
fn facts_budget() -> ByteBudget {
    ByteBudget::new(FACTS_BUDGET_BYTES, FACTS_REFILL_PER_SEC, now_ms())
}

/// Logs why a fact report is not stored. The session goes on and the previous facts stay; the
/// agent gets no `FactsAck`, so its next report is again a patch against the document the
/// coordinator still has.
fn refuse_facts(name: &NodeName, reason: String) -> Result<(), Status> {
    tracing::warn!(node = %name, reason = %reason, "fact report refused; the previous facts stay");
    Ok(())
}

async fn on_facts(
    coord: &Coordinator,
    name: &NodeName,
    f: Facts,
    tx: &Outbound,
    budget: &mut ByteBudget,
) -> Result<(), Status> {
    let doc = match f.body {
        Some(facts::Body::FullJson(text)) => {
            if text.len() > MAX_FACTS_BYTES {
                return refuse_facts(
                    name,
                    format!(
                        "fact document is {} bytes, over the limit of {MAX_FACTS_BYTES}",
                        text.len()
                    ),
                );
            }
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Status::invalid_argument(format!("facts are not valid JSON: {e}")))?;
            if !doc.is_object() {
                return Err(Status::invalid_argument("facts must be a JSON object"));
            }
            doc
        }
        Some(facts::Body::Patch(patch)) => {
            let stored = coord.store.facts(name.as_str()).map_err(ApiError::from)?;
            let Some(stored) = stored.filter(|s| s.digest == patch.base_digest) else {
                // We do not have the base; ask for everything.
                let _ = tx.send(msg(CoordMsg::RequestFacts(RequestFacts {}))).await;
                return Ok(());
            };
            if patch.merge_patch_json.len() > MAX_FACTS_BYTES {
                return refuse_facts(
                    name,
                    format!(
                        "fact patch is {} bytes, over the limit of {MAX_FACTS_BYTES}",
                        patch.merge_patch_json.len()
                    ),
                );
            }
            let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&stored.json) else {
                tracing::error!(node = %name, "stored facts are not valid JSON; asking the agent for all of them");
                let _ = tx.send(msg(CoordMsg::RequestFacts(RequestFacts {}))).await;
                return Ok(());
            };
            let p: serde_json::Value =
                serde_json::from_str(&patch.merge_patch_json).map_err(|e| {
                    Status::invalid_argument(format!("fact patch is not valid JSON: {e}"))
                })?;
            lab_proto::facts::merge_patch(&mut doc, &p);
            doc
        }
        None => return Err(Status::invalid_argument("facts message without a body")),
    };
    let digest = lab_proto::facts::digest(&doc);
    if digest != f.digest {
        let _ = tx.send(msg(CoordMsg::RequestFacts(RequestFacts {}))).await;
        return Ok(());
    }
    // The cap holds for the document as stored, whatever the patches that built it.
    let json = doc.to_string();
    if json.len() > MAX_FACTS_BYTES {
        return refuse_facts(
            name,
            format!(
                "the fact document would be {} bytes, over the limit of {MAX_FACTS_BYTES}",
                json.len()
            ),
        );
    }
    if !budget.take(json.len() as u64, now_ms()) {
        return refuse_facts(
            name,
            format!(
                "fact reports arrive faster than {} bytes a second",
                budget.refill_per_sec()
            ),
        );
    }
    for why in crate::inventory::invalid_derived_labels(&doc) {
        tracing::warn!(node = %name, error = %why, "a derived label is left out: its fact value is not a valid label value");
    }
    coord
        .store
        .put_facts(
            name.as_str(),
            FactsRecord {
                digest: digest.clone(),
                json,
                platform_json: crate::listing::platform_json(&doc),
                collected_unix_ms: now_ms(),
                ..Default::default()
            },
        )
        .await
        .map_err(ApiError::from)?;
    coord.topology.update(name.as_str(), &doc);
    let _ = tx.send(msg(CoordMsg::FactsAck(FactsAck { digest }))).await;
    Ok(())
}

/// Closes sessions that missed their heartbeats, every interval, until shutdown.
pub async fn sweep_silent(coord: Arc<Coordinator>) {
    let interval = coord.options.heartbeat_interval;
    let window = interval * lab_proto::limits::MISSED_HEARTBEATS_OFFLINE;
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = coord.shutdown.cancelled() => return,
            _ = tick.tick() => {
                let cutoff = now_ms() - window.as_millis() as i64;
                for node in coord.sessions.close_silent(cutoff) {
                    tracing::warn!(node = %node, "missed heartbeats; marked offline");
                }
            }
        }
    }
}
