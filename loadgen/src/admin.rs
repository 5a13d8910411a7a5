//! The operator side of the benchmarks: the admin identity from the labctl config that
//! `lab-coordinator init` wrote, over the real `OperatorService` (tokens, nodes, jobs, watch).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use lab_proto::client::{connect, operator_client, ConnectOptions};
use lab_proto::tls::{client_config, ClientIdentity};
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{
    job_event, task_spec, CancelJobRequest, CreateTokenRequest, ExecTask, JobDone, JobEvent,
    JobInfo, JobSpec, SubmitJobRequest, TaskSpec, WatchJobRequest,
};
use tonic::transport::Channel;
use tonic::Streaming;

/// How long a started coordinator may take to answer the admin (opening its store included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

fn note_not_ready(e: &anyhow::Error) {
    eprintln!("coordinator not answering yet ({e:#}); retrying");
}

/// A node filter for `WatchJob` that matches no node: the stream then carries only `JobDone`.
pub const NO_NODE: &str = "lab-loadgen-no-node";

/// An admin client.
#[derive(Clone)]
pub struct Admin {
    client: OperatorServiceClient<Channel>,
    /// The coordinator's CA (PEM).
    pub ca_pem: String,
    /// The coordinator's address.
    pub addr: String,
}

/// An exec job to submit.
#[derive(Debug, Clone, Default)]
pub struct ExecJob {
    /// Command and arguments.
    pub argv: Vec<String>,
    /// Environment for the task.
    pub env: HashMap<String, String>,
    /// Target selector; empty = every node.
    pub selector: String,
    /// How long tasks of offline nodes may wait.
    pub deadline: Duration,
}

impl ExecJob {
    /// A job running `argv` on every node.
    pub fn everywhere(argv: &[&str], deadline: Duration) -> Self {
        ExecJob {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            deadline,
            ..Default::default()
        }
    }
}

impl Admin {
    /// Connects with the admin context of `labctl_toml`, retrying for up to [`READY_TIMEOUT`]:
    /// a coordinator that accepts TCP may still be opening a large store.
    pub async fn connect(labctl_toml: &Path) -> anyhow::Result<Self> {
        let started = std::time::Instant::now();
        loop {
            match Self::connect_once(labctl_toml).await {
                Ok(admin) => return Ok(admin),
                Err(e) if started.elapsed() < READY_TIMEOUT => {
                    note_not_ready(&e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "the coordinator did not answer within {READY_TIMEOUT:?}"
                    )))
                }
            }
        }
    }

    async fn connect_once(labctl_toml: &Path) -> anyhow::Result<Self> {
        let dir = labctl_toml.parent().context("labctl config path")?;
        let ctx = crate::coordinator::admin_context(dir)?;
        let tls = client_config(
            &ctx.ca_pem,
            Some(&ClientIdentity {
                cert_pem: ctx.cert_pem.clone(),
                key_pem: ctx.key_pem.clone(),
            }),
        )?;
        // lab-loadgen starts one coordinator; its init wrote that one address.
        let addr = ctx
            .servers
            .first()
            .cloned()
            .context("the admin labctl config names no coordinator")?;
        let channel = connect(&addr, tls, &ConnectOptions::default()).await?;
        Ok(Admin {
            client: operator_client(channel),
            ca_pem: ctx.ca_pem,
            addr,
        })
    }

    /// A one-time enrollment token bound to `node`.
    pub async fn create_token(&self, node: &str) -> anyhow::Result<String> {
        let resp = self
            .client
            .clone()
            .create_token(CreateTokenRequest {
                ttl_seconds: 3600,
                node_name: node.to_owned(),
                labels: Default::default(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("CreateToken failed: {}", s.message()))?;
        Ok(resp.into_inner().token)
    }

    /// (nodes, online nodes) as `ListNodes` reports them.
    pub async fn node_counts(&self) -> anyhow::Result<(usize, usize)> {
        let nodes = lab_proto::pages::all_nodes(&mut self.client.clone(), "")
            .await
            .map_err(|s| anyhow::anyhow!("ListNodes failed: {}", s.message()))?;
        let online = nodes.iter().filter(|n| n.online).count();
        Ok((nodes.len(), online))
    }

    /// Tasks of a job: (succeeded, final, all).
    pub async fn progress(&self, job_id: &str) -> anyhow::Result<(usize, usize, usize)> {
        let job = lab_proto::pages::whole_job(&mut self.client.clone(), job_id)
            .await
            .map_err(|s| anyhow::anyhow!("GetJob failed: {}", s.message()))?;
        let state = |t: &lab_proto::v1::TaskInfo| {
            lab_proto::v1::TaskState::try_from(t.state).unwrap_or_default()
        };
        let succeeded = job
            .tasks
            .iter()
            .filter(|t| state(t) == lab_proto::v1::TaskState::Succeeded)
            .count();
        let done = job
            .tasks
            .iter()
            .filter(|t| {
                !matches!(
                    state(t),
                    lab_proto::v1::TaskState::Pending
                        | lab_proto::v1::TaskState::Assigned
                        | lab_proto::v1::TaskState::Running
                        | lab_proto::v1::TaskState::Unspecified
                )
            })
            .count();
        Ok((succeeded, done, job.tasks.len()))
    }

    /// Cancels a job (best effort, for cleaning up after a job that took too long).
    pub async fn cancel(&self, job_id: &str) -> anyhow::Result<()> {
        self.client
            .clone()
            .cancel_job(CancelJobRequest {
                job_id: job_id.to_owned(),
            })
            .await
            .map_err(|s| anyhow::anyhow!("CancelJob failed: {}", s.message()))?;
        Ok(())
    }

    /// Like [`Admin::wait_done`], but on failure says how far the job got and cancels it, so
    /// that an unfinished benchmark job does not burden the next run on the same data directory.
    pub async fn finish_or_cancel(
        &self,
        job_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<JobDone> {
        let started = tokio::time::Instant::now();
        match self.wait_done(job_id, timeout).await {
            Ok(done) => Ok(done),
            Err(e) => {
                let progress = match self.progress(job_id).await {
                    Ok((ok, done, all)) => format!(
                        "{ok} succeeded and {done} final of {all} tasks after {:.0} s",
                        started.elapsed().as_secs_f64()
                    ),
                    Err(p) => format!("progress unknown: {p:#}"),
                };
                if let Err(c) = self.cancel(job_id).await {
                    eprintln!("cannot cancel job {job_id}: {c:#}");
                }
                anyhow::bail!("{e:#}; {progress}; the job was cancelled")
            }
        }
    }

    /// The `limit` newest jobs, with their tasks.
    pub async fn recent_jobs(&self, limit: u32) -> anyhow::Result<Vec<JobInfo>> {
        lab_proto::pages::recent_jobs(&mut self.client.clone(), limit)
            .await
            .map_err(|s| anyhow::anyhow!("ListJobs failed: {}", s.message()))
    }

    /// Submits `job`; returns its id and number of tasks.
    pub async fn submit(&self, job: &ExecJob) -> anyhow::Result<(String, usize)> {
        let spec = JobSpec {
            selector: job.selector.clone(),
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask {
                    argv: job.argv.clone(),
                    env: job.env.clone(),
                    ..Default::default()
                })),
            }),
            deadline_ms: u64::try_from(job.deadline.as_millis()).unwrap_or(u64::MAX),
            ..Default::default()
        };
        let resp = self
            .client
            .clone()
            .submit_job(SubmitJobRequest { spec: Some(spec) })
            .await
            .map_err(|s| anyhow::anyhow!("SubmitJob failed: {}", s.message()))?
            .into_inner();
        Ok((resp.job_id, resp.nodes.len()))
    }

    /// The event stream of a job; `node` filters (use [`NO_NODE`] for only `JobDone`).
    pub async fn watch(&self, job_id: &str, node: &str) -> anyhow::Result<Streaming<JobEvent>> {
        Ok(self
            .client
            .clone()
            .watch_job(WatchJobRequest {
                job_id: job_id.to_owned(),
                from_seq: 0,
                node: node.to_owned(),
                stored_only: false,
            })
            .await
            .map_err(|s| anyhow::anyhow!("WatchJob failed: {}", s.message()))?
            .into_inner())
    }

    /// Waits (at most `timeout`) for the `JobDone` of `job_id`, which the coordinator emits only
    /// once every result is durable. A watch that breaks (an overloaded coordinator may drop the
    /// connection) is opened again after a second.
    pub async fn wait_done(&self, job_id: &str, timeout: Duration) -> anyhow::Result<JobDone> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_error = None;
        while tokio::time::Instant::now() < deadline {
            let attempt = tokio::time::timeout_at(deadline, async {
                let mut events = self.watch(job_id, NO_NODE).await?;
                while let Some(e) = events.message().await? {
                    if let Some(job_event::Body::Done(d)) = e.body {
                        return Ok(d);
                    }
                }
                anyhow::bail!("the watch of job {job_id} ended without JobDone")
            })
            .await;
            match attempt {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(e)) => {
                    eprintln!("watch of job {job_id} broke ({e:#}); watching again");
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(_) => break,
            }
        }
        anyhow::bail!(
            "job {job_id} was not done within {timeout:?}{}",
            last_error
                .map(|e| format!(" (last watch error: {e:#})"))
                .unwrap_or_default()
        )
    }
}
