//! `lab-agent run`: one `Connect` session at a time, kept alive with heartbeats, re-established
//! with capped, jittered backoff, with the certificate renewed at two thirds of its lifetime.
//!
//! Facts go out in full when the coordinator asks, then as merge patches against the last
//! acknowledged document, and only when something changed. `lab-agent run` collects them in a
//! child process ([`RunOptions::facts_program`]): an idle agent then holds none of the
//! collectors' threads, heap or code pages (issue 18: idle RSS).
//!
//! Coordinators: the enrollment lists one or several; each session dials them through
//! [`Endpoints`] (the last one that served first, a standby's hint to the leader next), which
//! lives across sessions. The pause between sessions is the jittered [`Backoff`], so a fleet
//! that lost its leader does not arrive at the new one all at once.
//!
//! Tasks: one [`Tasks`] runner lives across sessions (created in [`run`]). A session hands it
//! `Assign`, `CancelTask` and `Ack`, sends every unacknowledged task update right after
//! `Welcome`, then forwards new updates as the runner produces them. Updates produced while
//! disconnected wait in the runner's outbox.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use lab_proto::client::{agent_client, ConnectOptions};
use lab_proto::endpoints::{DialError, Endpoints};
use lab_proto::pem::cert_info_from_pem;
use lab_proto::tls::client_config;
use lab_proto::v1::agent_message::Msg as AgentMsg;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{
    facts, AgentMessage, BootstrapRequest, CoordinatorMessage, Facts, FactsPatch, Heartbeat, Hello,
    TaskUpdate, Welcome,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::Streaming;

use crate::backoff::Backoff;
use crate::datadir::AgentDir;
use crate::renewal::{renew, renew_at_ms};
use crate::secrets::key::{NodeKey, Origin};
use crate::tasks::{Tasks, TasksOptions};

/// Most task updates forwarded in one go before the session loop looks at other events.
const UPDATE_BATCH: usize = 64;

/// Tunables of `lab-agent run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Root the fact collectors read from.
    pub facts_root: PathBuf,
    /// How often facts are re-collected (changes only are sent).
    pub facts_interval: Duration,
    /// First reconnect delay.
    pub reconnect_base: Duration,
    /// Longest reconnect delay.
    pub reconnect_cap: Duration,
    /// Source address and such.
    pub connect: ConnectOptions,
    /// Labels from the agent's config file, reported in every hello.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Most tasks running at once.
    pub max_tasks: usize,
    /// Coordinator addresses that replace the enrolled ones (`lab-agent run --coordinator`).
    pub coordinators: Option<Vec<String>>,
    /// The `lab-agent` program that collects facts in a child process (`PROGRAM facts --root
    /// ROOT`), so that the collectors' threads, allocations and code pages come and go with the
    /// child instead of staying in the daemon's memory; `None` collects in this process (for
    /// programs that embed the agent, such as `labctl dev`). `lab-agent run` passes
    /// `/proc/self/exe`, which stays the running binary even after a package upgrade replaced
    /// the file.
    pub facts_program: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            facts_root: PathBuf::from("/"),
            facts_interval: Duration::from_secs(60),
            reconnect_base: Duration::from_millis(500),
            reconnect_cap: Duration::from_secs(30),
            connect: ConnectOptions::default(),
            labels: Default::default(),
            max_tasks: 8,
            coordinators: None,
            facts_program: None,
        }
    }
}

/// The coordinator refuses this node's certificate (revoked, removed, or never issued there):
/// retrying cannot help, so [`run`] ends with this error instead of reconnecting, and
/// `lab-agent run` exits with [`crate::AgentError::Refused`]'s code (4), which the systemd unit
/// lists in `RestartPreventExitStatus=`.
#[derive(Debug, thiserror::Error)]
#[error("the coordinator refuses this node: {0}; stopping instead of retrying (enroll the machine again with 'lab-agent enroll' if it should rejoin)")]
pub struct Refused(pub String);

/// `status` as a [`Refused`] when it says the coordinator refuses this node's identity
/// (`UNAUTHENTICATED` from the authorization layer, `PERMISSION_DENIED` when a session is
/// closed because the node was revoked).
pub(crate) fn refusal(status: &tonic::Status) -> Option<Refused> {
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    )
    .then(|| Refused(status.message().to_owned()))
}

/// A failed call or stream: [`Refused`] when it is one, else `context: message`.
fn session_error(context: &str, status: tonic::Status) -> anyhow::Error {
    match refusal(&status) {
        Some(refused) => refused.into(),
        None => anyhow::anyhow!("{context}: {}", status.message()),
    }
}

/// How one session ended.
enum SessionEnd {
    /// Our own shutdown.
    Shutdown,
    /// The certificate was renewed; reconnect with it at once.
    Renewed,
}

/// Facts the coordinator has acknowledged, kept across sessions.
#[derive(Default)]
struct FactState {
    acked: Option<(String, Value)>,
    in_flight: Option<(String, Value)>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Runs until `shutdown`, reconnecting as needed; ends with [`Refused`] when the coordinator
/// refuses this node's certificate.
pub async fn run(
    dir: AgentDir,
    opts: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Fail fast on a data dir that was never enrolled; later errors are retried.
    dir.load()?;
    // The key, journal and outbox live there: no other user may be able to plant files.
    if let Err(crate::safepath::DirError::Unsafe(why)) =
        crate::safepath::resolve_dir(dir.root(), false)
    {
        anyhow::bail!(
            "the data directory is not private: {why}; make it (and the directories above it) \
             writable by root only, e.g. chmod 0700 {}",
            dir.root().display()
        );
    }
    let (key, origin) = NodeKey::load_or_create(&dir.age_key())?;
    if origin == Origin::Created {
        tracing::info!(recipient = %key.recipient(), "made the node's age key");
    }
    let key = std::sync::Arc::new(key);
    let private_dir = dir.root().join("secrets");
    crate::secrets::resolve::clean_private_dir(&private_dir);
    let task_opts = TasksOptions {
        max_tasks: opts.max_tasks,
        node_key: Some(key.clone()),
        private_dir: Some(private_dir),
        root: opts.facts_root.clone(),
        ..TasksOptions::default()
    };
    let tasks = Tasks::open(dir.root().join("tasks"), task_opts).await?;
    let mut backoff = Backoff::new(opts.reconnect_base, opts.reconnect_cap);
    let mut facts = FactState::default();
    let enrolled = dir.load()?.enrollment.coordinators;
    let mut endpoints = Endpoints::new(opts.coordinators.clone().unwrap_or(enrolled))?;
    let ctx = SessionCtx {
        dir: &dir,
        opts: &opts,
        shutdown: &shutdown,
        tasks: &tasks,
        key: &key,
    };
    loop {
        let started = tokio::time::Instant::now();
        match session(ctx, &mut endpoints, &mut facts).await {
            Ok(SessionEnd::Shutdown) => return Ok(()),
            Ok(SessionEnd::Renewed) => {
                backoff.reset();
                continue;
            }
            Err(e) if e.is::<Refused>() => {
                tracing::error!(error = %e, "coordinator refuses this node; not retrying");
                return Err(e);
            }
            Err(e) => {
                if started.elapsed() > opts.reconnect_cap {
                    backoff.reset();
                }
                let delay = backoff.next_delay(rand::random::<f64>());
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?delay, "session ended");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

fn facts_message(state: &mut FactState, doc: Value) -> Option<AgentMessage> {
    let digest = lab_proto::facts::digest(&doc);
    let body = match &state.acked {
        Some((acked_digest, _)) if *acked_digest == digest => return None,
        Some((acked_digest, acked_doc)) => {
            let patch = lab_proto::facts::diff(acked_doc, &doc)?;
            facts::Body::Patch(FactsPatch {
                base_digest: acked_digest.clone(),
                merge_patch_json: patch.to_string(),
            })
        }
        None => facts::Body::FullJson(doc.to_string()),
    };
    if state.in_flight.as_ref().is_some_and(|(d, _)| *d == digest) {
        return None;
    }
    state.in_flight = Some((digest.clone(), doc));
    Some(AgentMessage {
        msg: Some(AgentMsg::Facts(Facts {
            digest,
            body: Some(body),
        })),
    })
}

/// Sends task updates in order; an error means the session is gone (the updates stay in the
/// outbox and go out again after the next `Welcome`).
async fn send_updates(
    tx: &mpsc::Sender<AgentMessage>,
    updates: Vec<TaskUpdate>,
) -> anyhow::Result<()> {
    for u in updates {
        tx.send(AgentMessage {
            msg: Some(AgentMsg::TaskUpdate(u)),
        })
        .await?;
    }
    Ok(())
}

/// How long a fact collection in a child process may take: its areas run at once, each with
/// [`crate::facts::AREA_TIMEOUT`].
const FACTS_CHILD_TIMEOUT: Duration = Duration::from_secs(15);

/// This machine's facts: from a child process when [`RunOptions::facts_program`] is set (in this
/// process, with a warning, if that fails), else in this process.
async fn collect_facts(opts: &RunOptions) -> Value {
    if let Some(program) = &opts.facts_program {
        match collect_in_child(program, &opts.facts_root).await {
            Ok(doc) => return doc,
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "cannot collect facts in a child process; collecting them in the agent"
            ),
        }
    }
    let root = opts.facts_root.clone();
    tokio::task::spawn_blocking(move || crate::facts::to_json(&crate::facts::collect(&root)))
        .await
        .unwrap_or_else(|_| Value::Object(Default::default()))
}

/// Runs `PROGRAM facts --root ROOT` and reads its JSON document (its log lines go to our
/// stderr).
async fn collect_in_child(program: &Path, root: &Path) -> anyhow::Result<Value> {
    let output = tokio::process::Command::new(program)
        .arg("facts")
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FACTS_CHILD_TIMEOUT, output)
        .await
        .map_err(|_| anyhow::anyhow!("it did not finish within {FACTS_CHILD_TIMEOUT:?}"))?
        .with_context(|| format!("cannot run {} facts", program.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} facts ended with {}",
        program.display(),
        output.status
    );
    let doc: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{} facts printed no JSON document", program.display()))?;
    anyhow::ensure!(
        doc.is_object(),
        "{} facts printed JSON that is not an object",
        program.display()
    );
    Ok(doc)
}

/// What every session borrows from [`run`].
#[derive(Clone, Copy)]
struct SessionCtx<'a> {
    dir: &'a AgentDir,
    opts: &'a RunOptions,
    shutdown: &'a CancellationToken,
    tasks: &'a Tasks,
    key: &'a NodeKey,
}

/// A dial that ended without a serving coordinator, as a session error.
fn dial_error(error: DialError, context: &str) -> anyhow::Error {
    match error {
        DialError::AllFailed(all) => anyhow::Error::new(all),
        DialError::Rejected { addr, status } => {
            session_error(&format!("{context} ({addr})"), status)
        }
    }
}

/// An opened session: the sender, the coordinator's stream, and its welcome.
type Opened = (
    mpsc::Sender<AgentMessage>,
    Streaming<CoordinatorMessage>,
    Welcome,
);

/// Sends `hello` and waits for the welcome on `channel`; a standby's `UNAVAILABLE` comes back as
/// the status so that [`Endpoints::dial`] follows its hint.
async fn open(channel: tonic::transport::Channel, hello: Hello) -> Result<Opened, tonic::Status> {
    let (tx, rx) = mpsc::channel::<AgentMessage>(64);
    tx.send(AgentMessage {
        msg: Some(AgentMsg::Hello(hello)),
    })
    .await
    .map_err(|_| tonic::Status::internal("session queue closed"))?;
    let mut inbound = agent_client(channel)
        .connect(ReceiverStream::new(rx))
        .await?
        .into_inner();
    match inbound.message().await? {
        Some(CoordinatorMessage {
            msg: Some(CoordMsg::Welcome(w)),
        }) => Ok((tx, inbound, w)),
        Some(_) => Err(tonic::Status::internal(
            "coordinator did not start the session with a welcome",
        )),
        None => Err(tonic::Status::unavailable(
            "coordinator closed the session before welcoming us",
        )),
    }
}

async fn session(
    ctx: SessionCtx<'_>,
    endpoints: &mut Endpoints,
    facts: &mut FactState,
) -> anyhow::Result<SessionEnd> {
    let SessionCtx {
        dir,
        opts,
        shutdown,
        tasks,
        key,
    } = ctx;
    let creds = dir.load()?;
    let cert = cert_info_from_pem(&creds.identity.cert_pem)?;
    let tls = client_config(&creds.ca_pem, Some(&creds.identity))?;

    let renew_in = Duration::from_millis((renew_at_ms(&cert) - now_ms()).max(0) as u64);
    if renew_in.is_zero() {
        // Find the leader with the cheapest call, then renew there.
        let dialled = endpoints
            .dial(tls, &opts.connect, |channel| async move {
                agent_client(channel).bootstrap(BootstrapRequest {}).await
            })
            .await
            .map_err(|e| dial_error(e, "certificate renewal"))?;
        let until = renew(dialled.channel, dir).await?;
        tracing::info!(not_after_ms = until, "certificate renewed");
        return Ok(SessionEnd::Renewed);
    }

    let hello = Hello {
        agent_version: lab_proto::VERSION.to_owned(),
        boot_id: boot_id(),
        facts_digest: facts
            .acked
            .as_ref()
            .map(|(d, _)| d.clone())
            .unwrap_or_default(),
        unacked_task_ids: tasks.unacked_task_ids(),
        labels: opts.labels.clone().into_iter().collect(),
        age_recipient: key.recipient().to_string(),
    };
    facts.in_flight = None;
    let dialled = endpoints
        .dial(tls, &opts.connect, |channel| open(channel, hello.clone()))
        .await
        .map_err(|e| dial_error(e, "coordinator refused the session"))?;
    let channel = dialled.channel;
    let (tx, mut inbound, welcome) = dialled.value;
    let interval =
        Duration::from_millis(u64::from(welcome.heartbeat_interval_ms).clamp(100, 300_000));
    let silence_limit = interval * lab_proto::limits::MISSED_HEARTBEATS_OFFLINE;
    tracing::info!(node = %welcome.node_name, coordinator = %dialled.addr, heartbeat = ?interval, "connected to coordinator");
    // Every unacknowledged task update goes out again, in batches from the loop below so that
    // acknowledgements keep being read while a large backlog is sent.
    tasks.resend_all();

    let mut heartbeat = tokio::time::interval(interval);
    let mut refresh = tokio::time::interval(opts.facts_interval);
    refresh.tick().await;
    let mut seq = 0u64;
    let mut last_heard = tokio::time::Instant::now();
    let renewal = tokio::time::sleep(renew_in);
    tokio::pin!(renewal);

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
            _ = &mut renewal => {
                let until = renew(channel, dir).await?;
                tracing::info!(not_after_ms = until, "certificate renewed");
                return Ok(SessionEnd::Renewed);
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > silence_limit {
                    anyhow::bail!("no word from the coordinator for {silence_limit:?}");
                }
                seq += 1;
                tx.send(AgentMessage { msg: Some(AgentMsg::Heartbeat(Heartbeat { seq })) }).await?;
            }
            _ = tasks.changed() => {
                send_updates(&tx, tasks.take_unsent(UPDATE_BATCH)).await?;
            }
            _ = refresh.tick() => {
                let doc = collect_facts(opts).await;
                if let Some(m) = facts_message(facts, doc) {
                    tx.send(m).await?;
                }
            }
            next = inbound.message() => {
                last_heard = tokio::time::Instant::now();
                match next {
                    Ok(Some(m)) => match m.msg {
                        Some(CoordMsg::RequestFacts(_)) => {
                            facts.acked = None;
                            facts.in_flight = None;
                            let doc = collect_facts(opts).await;
                            if let Some(m) = facts_message(facts, doc) {
                                tx.send(m).await?;
                            }
                        }
                        Some(CoordMsg::FactsAck(ack)) => {
                            if let Some((d, doc)) = facts.in_flight.take() {
                                if d == ack.digest {
                                    facts.acked = Some((d, doc));
                                }
                            }
                        }
                        Some(CoordMsg::HeartbeatAck(_)) | Some(CoordMsg::Welcome(_)) | None => {}
                        Some(CoordMsg::Assign(a)) => tasks.on_assign(a),
                        Some(CoordMsg::Cancel(c)) => tasks.on_cancel(c),
                        Some(CoordMsg::Ack(a)) => tasks.on_ack(a),
                    },
                    Ok(None) => anyhow::bail!("coordinator ended the session"),
                    Err(s) => return Err(session_error("session lost", s)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(m: Option<AgentMessage>) -> Option<facts::Body> {
        match m?.msg? {
            AgentMsg::Facts(f) => f.body,
            _ => None,
        }
    }

    #[tokio::test]
    async fn facts_come_from_the_child_or_else_from_this_process() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let program = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let empty_root = tempfile::tempdir().unwrap();
        let opts = |facts_program: Option<PathBuf>| RunOptions {
            facts_root: empty_root.path().to_owned(),
            facts_program,
            ..RunOptions::default()
        };
        // The child's document, as printed.
        let good = program(
            "good",
            r#"test "$1 $2" = "facts --root" && echo '{"platform":{"os":"child"}}'"#,
        );
        let doc = collect_facts(&opts(Some(good))).await;
        assert_eq!(doc, json!({"platform": {"os": "child"}}));
        // A child that fails, prints no object, or is missing: collected here instead.
        for bad in [
            program("fails", "exit 3"),
            program("not-an-object", "echo '[1]'"),
            dir.path().join("missing"),
        ] {
            let doc = collect_facts(&opts(Some(bad.clone()))).await;
            assert!(doc["platform"].is_object(), "{bad:?}: {doc}");
            assert_ne!(doc["platform"]["os"], "child");
        }
    }

    #[test]
    fn full_first_then_patches_then_silence() {
        let mut state = FactState::default();
        let v1 = json!({"platform": {"os": "debian", "cpus": 2}});
        assert!(matches!(
            body(facts_message(&mut state, v1.clone())),
            Some(facts::Body::FullJson(_))
        ));
        // Not acknowledged yet: the same document is not sent twice.
        assert!(facts_message(&mut state, v1.clone()).is_none());
        state.acked = state.in_flight.take();
        // Acknowledged and unchanged: nothing to send.
        assert!(facts_message(&mut state, v1.clone()).is_none());
        let v2 = json!({"platform": {"os": "debian", "cpus": 4}});
        match body(facts_message(&mut state, v2.clone())) {
            Some(facts::Body::Patch(p)) => {
                assert_eq!(p.base_digest, lab_proto::facts::digest(&v1));
                let patch: Value = serde_json::from_str(&p.merge_patch_json).unwrap();
                assert_eq!(patch, json!({"platform": {"cpus": 4}}));
            }
            other => panic!("expected a patch, got {other:?}"),
        }
    }
}
