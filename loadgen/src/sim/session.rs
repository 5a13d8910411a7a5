//! One simulated agent's life: the real agent's session loop (`agent/src/session.rs`) with the
//! task runner and fact collectors replaced by [`SimTasks`] and a small fixed fact document.
//!
//! Per session: dial (own TLS identity, own source address), send `Hello`, read `Welcome`,
//! re-send unacknowledged task updates, then heartbeat at the interval from `Welcome`; answer
//! `RequestFacts` with the full document, `Assign`/`CancelTask`/`Ack` through [`SimTasks`].
//! Between sessions it waits as the real agent does: [`Backoff`] with the same base, cap and
//! jitter, reset after a session that lasted longer than the cap.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lab_agent::backoff::Backoff;
use lab_proto::client::{agent_client, connect, ConnectOptions};
use lab_proto::v1::agent_message::Msg as AgentMsg;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{facts, AgentMessage, Facts, Heartbeat, Hello};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tasks::SimTasks;
use super::Stats;

/// Most task updates sent in one go before the loop looks at other events (as the real agent).
const UPDATE_BATCH: usize = 64;

/// One agent's identity and source address.
pub struct SimAgent {
    /// Node name.
    pub name: String,
    /// mTLS client config with this agent's certificate and key.
    pub tls: Arc<rustls::ClientConfig>,
    /// Source address.
    pub bind: IpAddr,
}

/// What all agents share.
pub struct Shared {
    /// Coordinator HOST:PORT.
    pub addr: String,
    /// First reconnect delay.
    pub reconnect_base: Duration,
    /// Longest reconnect delay.
    pub reconnect_cap: Duration,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Ends every agent.
    pub shutdown: CancellationToken,
    /// Where pretend tasks run.
    pub tracker: TaskTracker,
}

/// Decrements the connected count when a session ends, however it ends.
struct Connected<'a>(&'a Stats);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.note_session_end();
    }
}

/// The fixed fact document of a simulated node: small, but the shape of the real one.
pub fn fact_document(name: &str) -> serde_json::Value {
    serde_json::json!({
        "platform": {
            "hostname": name,
            "os": "debian",
            "os_version": "12",
            "kernel": "6.1.0-lab",
            "arch": "x86_64",
            "virtualization": "none",
        },
        "hardware": {
            "cpu": {"model": "simulated", "cores": 4, "threads": 8},
            "memory": {"total_bytes": 17_179_869_184u64, "swap_bytes": 0},
        },
        "services": {"failed": []},
    })
}

/// Runs one agent until the fleet shuts down.
pub async fn run(agent: SimAgent, shared: Arc<Shared>) {
    let tasks = SimTasks::new(shared.stats.clone());
    let mut backoff = Backoff::new(shared.reconnect_base, shared.reconnect_cap);
    let mut acked_digest = String::new();
    loop {
        let started = Instant::now();
        match session(&agent, &shared, &tasks, &mut acked_digest).await {
            Ok(()) => return,
            Err(e) => {
                shared.stats.note_error(&e);
                if started.elapsed() > shared.reconnect_cap {
                    backoff.reset();
                }
                let delay = backoff.next_delay(rand::random::<f64>());
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// One session; `Ok` only on shutdown.
async fn session(
    agent: &SimAgent,
    shared: &Shared,
    tasks: &SimTasks,
    acked_digest: &mut String,
) -> anyhow::Result<()> {
    shared.stats.note_attempt();
    let options = ConnectOptions {
        bind: Some(agent.bind),
    };
    let channel = tokio::select! {
        _ = shared.shutdown.cancelled() => return Ok(()),
        c = connect(&shared.addr, agent.tls.clone(), &options) => c?,
    };
    let (tx, rx) = mpsc::channel::<AgentMessage>(64);
    let hello = Hello {
        agent_version: format!("{}-loadgen", lab_proto::VERSION),
        boot_id: format!("loadgen-{}", agent.name),
        facts_digest: acked_digest.clone(),
        unacked_task_ids: tasks.unacked_task_ids(),
        labels: Default::default(),
        // Simulated agents decrypt nothing, so they report no age key.
        age_recipient: String::new(),
    };
    tx.send(AgentMessage {
        msg: Some(AgentMsg::Hello(hello)),
    })
    .await?;
    let mut inbound = agent_client(channel)
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| anyhow::anyhow!("coordinator refused the session: {}", s.message()))?
        .into_inner();
    let welcome = match inbound.message().await {
        Ok(Some(m)) => match m.msg {
            Some(CoordMsg::Welcome(w)) => w,
            _ => anyhow::bail!("coordinator did not start the session with a welcome"),
        },
        Ok(None) => anyhow::bail!("coordinator closed the session before welcoming us"),
        Err(s) => anyhow::bail!("session refused: {}", s.message()),
    };
    shared.stats.note_welcome();
    let _connected = Connected(&shared.stats);
    let interval =
        Duration::from_millis(u64::from(welcome.heartbeat_interval_ms).clamp(100, 300_000));
    let silence_limit = interval * lab_proto::limits::MISSED_HEARTBEATS_OFFLINE;
    tasks.rewind();

    let mut heartbeat = tokio::time::interval(interval);
    let mut seq = 0u64;
    let mut last_heard = Instant::now();
    let mut in_flight: Option<String> = None;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return Ok(()),
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > silence_limit {
                    anyhow::bail!("no word from the coordinator for {silence_limit:?}");
                }
                seq += 1;
                tx.send(AgentMessage { msg: Some(AgentMsg::Heartbeat(Heartbeat { seq })) }).await?;
            }
            _ = tasks.changed() => {
                for u in tasks.take_unsent(UPDATE_BATCH) {
                    tx.send(AgentMessage { msg: Some(AgentMsg::TaskUpdate(u)) }).await?;
                }
            }
            next = inbound.message() => {
                last_heard = Instant::now();
                match next {
                    Ok(Some(m)) => match m.msg {
                        Some(CoordMsg::RequestFacts(_)) => {
                            acked_digest.clear();
                            let doc = fact_document(&agent.name);
                            let digest = lab_proto::facts::digest(&doc);
                            in_flight = Some(digest.clone());
                            let body = facts::Body::FullJson(doc.to_string());
                            tx.send(AgentMessage {
                                msg: Some(AgentMsg::Facts(Facts { digest, body: Some(body) })),
                            })
                            .await?;
                        }
                        Some(CoordMsg::FactsAck(ack)) => {
                            if in_flight.as_deref() == Some(ack.digest.as_str()) {
                                *acked_digest = ack.digest;
                                in_flight = None;
                                shared.stats.note_facts_acked();
                            }
                        }
                        Some(CoordMsg::HeartbeatAck(_)) | Some(CoordMsg::Welcome(_)) | None => {}
                        Some(CoordMsg::Assign(a)) => {
                            tasks.on_assign(a, &shared.tracker, &shared.shutdown)
                        }
                        Some(CoordMsg::Cancel(c)) => tasks.on_cancel(c),
                        Some(CoordMsg::Ack(a)) => tasks.on_ack(a),
                    },
                    Ok(None) => anyhow::bail!("coordinator ended the session"),
                    Err(s) => anyhow::bail!("session lost: {}", s.message()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fact_document_is_small_and_digest_is_stable() {
        let doc = fact_document("sim-00001");
        assert!(doc.to_string().len() < 1024);
        assert_eq!(
            lab_proto::facts::digest(&doc),
            lab_proto::facts::digest(&fact_document("sim-00001"))
        );
        assert_ne!(
            lab_proto::facts::digest(&doc),
            lab_proto::facts::digest(&fact_document("sim-00002"))
        );
    }
}
