//! A rogue agent: speaks the agent side of the gRPC contract with a real node certificate and
//! sends whatever a test asks for (oversized, too many, too fast), so a test can show that the
//! coordinator's bounds hold against a compromised node. It uses no labfleet client limits of
//! its own: what refuses a message is the coordinator.

use std::time::Duration;

use lab_proto::v1::agent_message::Msg as AgentMsg;
use lab_proto::v1::agent_service_client::AgentServiceClient;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{AgentMessage, CoordinatorMessage, Heartbeat, Hello};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Agent, Cluster};

/// How long [`RogueAgent::next`] waits for the coordinator.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// One `Connect` session opened with a node's certificate.
pub struct RogueAgent {
    tx: mpsc::Sender<AgentMessage>,
    inbound: tonic::Streaming<CoordinatorMessage>,
    heartbeat_seq: u64,
}

impl RogueAgent {
    /// Opens a session as `agent` (stop its process first, or this session replaces its own),
    /// says Hello and returns once the Welcome arrived.
    pub async fn connect(cluster: &Cluster, agent: &Agent) -> RogueAgent {
        let channel = cluster.channel(Some(&agent.identity())).await;
        let mut client = AgentServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(16);
        let hello = Hello {
            agent_version: "rogue".into(),
            ..Default::default()
        };
        tx.send(AgentMessage {
            msg: Some(AgentMsg::Hello(hello)),
        })
        .await
        .expect("queue hello");
        let inbound = client
            .connect(ReceiverStream::new(rx))
            .await
            .expect("open the session")
            .into_inner();
        let mut rogue = RogueAgent {
            tx,
            inbound,
            heartbeat_seq: 0,
        };
        match rogue.next().await {
            Ok(CoordMsg::Welcome(_)) => rogue,
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Sends one message.
    pub async fn send(&self, msg: AgentMsg) {
        self.tx
            .send(AgentMessage { msg: Some(msg) })
            .await
            .expect("session open");
    }

    /// The next message from the coordinator, or the status that ended the session.
    pub async fn next(&mut self) -> Result<CoordMsg, tonic::Status> {
        let next = tokio::time::timeout(ANSWER_TIMEOUT, self.inbound.message())
            .await
            .expect("the coordinator answers in time")?;
        match next {
            Some(CoordinatorMessage { msg: Some(m) }) => Ok(m),
            Some(_) => Err(tonic::Status::internal("empty coordinator message")),
            None => Err(tonic::Status::cancelled(
                "the coordinator ended the session",
            )),
        }
    }

    /// Sends a heartbeat and returns what the coordinator sent before acknowledging it. The
    /// coordinator handles a session's messages in order, so these are its answers to
    /// everything sent before; an error means the session ended.
    pub async fn sync(&mut self) -> Result<Vec<CoordMsg>, tonic::Status> {
        self.heartbeat_seq += 1;
        let seq = self.heartbeat_seq;
        self.send(AgentMsg::Heartbeat(Heartbeat { seq })).await;
        let mut before = Vec::new();
        loop {
            match self.next().await? {
                CoordMsg::HeartbeatAck(ack) if ack.seq == seq => return Ok(before),
                CoordMsg::HeartbeatAck(_) => {}
                m => before.push(m),
            }
        }
    }
}
