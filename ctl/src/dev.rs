//! `labctl dev`: a real coordinator and a real local agent in one process, like `nomad agent
//! -dev`. State lives under DIR (default `./.labfleet/`) and is reused by the next run.
//!
//! The agent is enrolled through the real token flow: the admin context creates a token over
//! mTLS, the agent pins the CA from it and sends a CSR, exactly as on a real machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lab_agent::enroll::{enroll, EnrollOptions};
use lab_agent::session::RunOptions;
use lab_agent::AgentDir;
use lab_coordinator::datadir::Settings;
use lab_coordinator::init::{init, InitOptions};
use lab_coordinator::{DataDir, ServeOptions};
use lab_proto::client::ConnectOptions;
use lab_proto::ctlconfig::CtlConfig;
use lab_proto::files::{write_atomic, PRIVATE};
use lab_proto::v1::{CreateTokenRequest, GetNodeRequest};
use tokio_util::sync::CancellationToken;

use crate::context;
use crate::failure::{from_status, Failure};

/// What `labctl dev` needs.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// State directory.
    pub dir: PathBuf,
    /// gRPC listen address on first start (later starts reuse the recorded one).
    pub listen: SocketAddr,
    /// Heartbeat interval for the local coordinator.
    pub heartbeat_interval: Duration,
}

fn local_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| h.parse::<lab_proto::identity::NodeName>().is_ok())
        .unwrap_or_else(|| "local".to_owned())
}

/// Runs dev mode until `shutdown` (Ctrl-C in the binary).
pub async fn run(opts: DevOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let coord_dir = DataDir::new(opts.dir.join("coordinator"));
    let agent_dir = AgentDir::new(opts.dir.join("agent"));
    let ctl_path = opts.dir.join("labctl.toml");
    lab_proto::files::create_private_dir(&opts.dir)?;

    let fresh = !coord_dir.ca_key().exists();
    let listen = if fresh {
        opts.listen
    } else {
        let settings = Settings::load(&coord_dir)?;
        settings.advertise.parse().map_err(|e| {
            Failure::Usage(format!("recorded address '{}': {e}", settings.advertise))
        })?
    };
    let listener = lab_proto::net::listen(listen).map_err(|e| {
        Failure::Usage(format!(
            "cannot listen on {listen}: {e}; is another 'labctl dev' running? (use --listen, or --dir for a separate state)"
        ))
    })?;
    let addr = listener.local_addr()?;
    if fresh {
        init(&InitOptions {
            data_dir: coord_dir.clone(),
            advertise: addr.to_string(),
            trust_domain: "dev.lab".into(),
            extra_sans: vec!["localhost".into()],
            force: false,
            store: None,
        })
        .await?;
    }
    let admin = std::fs::read_to_string(coord_dir.labctl_config())?;
    write_atomic(&ctl_path, admin.as_bytes(), PRIVATE)?;

    let coordinator = tokio::spawn(lab_coordinator::serve_on(
        coord_dir.clone(),
        listener,
        None,
        ServeOptions {
            heartbeat_interval: opts.heartbeat_interval,
            ..ServeOptions::default()
        },
        shutdown.clone(),
    ));

    let ctx = context::load(Some(&ctl_path), None)?;
    let node = if agent_dir.is_enrolled() {
        agent_dir.load()?.enrollment.node_name
    } else {
        enroll_local(&ctx, &agent_dir, &addr.to_string()).await?
    };
    let agent = tokio::spawn(lab_agent::session::run(
        agent_dir.clone(),
        RunOptions::default(),
        shutdown.clone(),
    ));

    // Ctrl-C while starting up is a normal stop, not an error.
    tokio::select! {
        _ = shutdown.cancelled() => {}
        shown = wait_online(&ctx, &node) => {
            let facts = shown?;
            let first = first_job(&ctx, &node).await?;
            print_banner(&opts.dir, &ctl_path, addr, &node, fresh, &facts)?;
            crate::outln!("\nfirst job, 'labctl run -l node={node} -- uname -a':\n  {first}")?;
        }
    }

    tokio::select! {
        _ = shutdown.cancelled() => {}
        result = coordinator => {
            shutdown.cancel();
            result??;
            anyhow::bail!("coordinator stopped unexpectedly");
        }
    }
    crate::errln!("stopping...");
    let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
    Ok(())
}

async fn enroll_local(
    ctx: &lab_proto::ctlconfig::Context,
    agent_dir: &AgentDir,
    addr: &str,
) -> anyhow::Result<String> {
    let mut client = context::dial(ctx).await?;
    let token = client
        .create_token(CreateTokenRequest {
            ttl_seconds: 600,
            node_name: local_node_name(),
            labels: [("dev".to_owned(), "true".to_owned())].into(),
        })
        .await
        .map_err(from_status)?
        .into_inner()
        .token;
    let name = enroll(
        agent_dir,
        &EnrollOptions {
            coordinators: vec![addr.to_owned()],
            token,
            name: None,
            default_name: None,
            connect: ConnectOptions::default(),
        },
    )
    .await?;
    Ok(name)
}

/// Runs `uname -a` on the local node through the real job path and returns its output.
async fn first_job(ctx: &lab_proto::ctlconfig::Context, node: &str) -> anyhow::Result<String> {
    use lab_proto::v1::{job_event, task_spec, ExecTask, JobSpec, SubmitJobRequest, TaskSpec};
    let mut client = context::dial(ctx).await?;
    let spec = JobSpec {
        selector: format!("node={node}"),
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Exec(ExecTask {
                argv: vec!["uname".into(), "-a".into()],
                ..Default::default()
            })),
        }),
        timeout_ms: 10_000,
        ..Default::default()
    };
    let job = client
        .submit_job(SubmitJobRequest { spec: Some(spec) })
        .await
        .map_err(from_status)?
        .into_inner();
    let watch = lab_proto::v1::WatchJobRequest {
        job_id: job.job_id.clone(),
        ..Default::default()
    };
    let mut events = client
        .watch_job(watch)
        .await
        .map_err(from_status)?
        .into_inner();
    let mut output = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(next) = tokio::time::timeout_at(deadline, events.message()).await {
        match next.map_err(from_status)?.and_then(|e| e.body) {
            Some(job_event::Body::Output(o)) => output.extend_from_slice(&o.data),
            Some(job_event::Body::Done(_)) | None => break,
            Some(job_event::Body::Task(_) | job_event::Body::Progress(_)) => {}
        }
    }
    Ok(String::from_utf8_lossy(&output).trim().to_owned())
}

/// Waits (with a deadline) until the local node is online and has reported facts.
async fn wait_online(ctx: &lab_proto::ctlconfig::Context, node: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut client = context::dial(ctx).await?;
    loop {
        let n = client
            .get_node(GetNodeRequest {
                name: node.to_owned(),
            })
            .await
            .map_err(from_status)?
            .into_inner();
        if n.online && !n.facts_json.is_empty() {
            return Ok(n.facts_json);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("local agent '{node}' did not come online within 30s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_banner(
    dir: &Path,
    ctl: &Path,
    addr: SocketAddr,
    node: &str,
    fresh: bool,
    facts: &str,
) -> std::io::Result<()> {
    let ctl = std::fs::canonicalize(ctl).unwrap_or_else(|_| ctl.to_path_buf());
    let facts: serde_json::Value = serde_json::from_str(facts).unwrap_or_default();
    let p = |k: &str| {
        facts
            .pointer(&format!("/platform/{k}"))
            .map(|v| v.to_string().trim_matches('"').to_owned())
            .unwrap_or_else(|| "?".into())
    };
    crate::outln!(
        "labfleet dev mode ({})\n\
         \x20 coordinator  {addr} (mTLS), state in {}\n\
         \x20 agent        node '{node}' online: {} {} {}, {} CPUs\n\
         \n\
         From another terminal:\n\
         \x20 export LABCTL_CONFIG={}\n\
         \x20 labctl nodes\n\
         \x20 labctl node show {node}\n\
         \n\
         Ctrl-C stops both; running 'labctl dev' again reuses the state.",
        if fresh { "new state" } else { "reusing state" },
        dir.display(),
        p("os"),
        p("os_version"),
        p("arch"),
        p("cpus"),
        ctl.display(),
    )?;
    if let Ok(cfg) = std::fs::read_to_string(&ctl).map(|t| CtlConfig::parse(&t)) {
        if cfg.is_err() {
            crate::errln!("warning: {} does not parse", ctl.display());
        }
    }
    Ok(())
}
