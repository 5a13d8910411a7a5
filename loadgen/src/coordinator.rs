//! The coordinator under test, as a child process: `lab-coordinator init` once per data
//! directory, then `serve`, which can be stopped, killed with SIGKILL and started again.
//!
//! The child inherits this process's RLIMIT_NOFILE (raised in `main`). Its log goes to
//! `DATA_DIR/coordinator.log` (appended, one marker line per start).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use lab_proto::ctlconfig::CtlConfig;
use tokio::process::{Child, Command};

use crate::procstat::{self, ProcSample};

/// How long `serve` may take to accept connections after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What to run and where.
#[derive(Debug, Clone)]
pub struct CoordinatorOptions {
    /// Directory holding `lab-coordinator` (and the other binaries).
    pub bin_dir: PathBuf,
    /// Data directory; initialized when it has no `labctl.toml` yet.
    pub data_dir: PathBuf,
    /// Heartbeat interval handed to agents (`serve --heartbeat-interval`).
    pub heartbeat: Duration,
    /// `LAB_LOG` of the child.
    pub log_level: String,
    /// Extra environment of the child.
    pub env: Vec<(String, String)>,
}

/// A coordinator child process and its data directory.
pub struct CoordinatorProc {
    opts: CoordinatorOptions,
    /// HOST:PORT it listens on (127.0.0.1 only).
    pub addr: String,
    child: Option<Child>,
}

impl CoordinatorProc {
    /// Runs `init` unless the data directory is initialized already.
    pub async fn prepare(opts: CoordinatorOptions) -> anyhow::Result<Self> {
        let labctl = opts.data_dir.join("labctl.toml");
        if !labctl.exists() {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let out = Command::new(opts.bin_dir.join("lab-coordinator"))
                .arg("init")
                .arg("--data-dir")
                .arg(&opts.data_dir)
                .args(["--advertise", &format!("127.0.0.1:{port}")])
                .args(["--trust-domain", "loadgen.test"])
                .envs(opts.env.iter().map(|(k, v)| (k, v)))
                .output()
                .await
                .with_context(|| {
                    format!(
                        "cannot run {}; build it with 'cargo build --release -p lab-coordinator'",
                        opts.bin_dir.join("lab-coordinator").display()
                    )
                })?;
            anyhow::ensure!(
                out.status.success(),
                "lab-coordinator init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // lab-loadgen starts one coordinator; its init wrote that one address.
        let addr = admin_context(&opts.data_dir)?
            .servers
            .first()
            .cloned()
            .context("the admin labctl config names no coordinator")?;
        Ok(CoordinatorProc {
            opts,
            addr,
            child: None,
        })
    }

    /// The admin labctl config written by init.
    pub fn labctl_config(&self) -> PathBuf {
        self.opts.data_dir.join("labctl.toml")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }

    /// Spawns `serve` and waits until it accepts TCP connections; returns how long that took.
    pub async fn start(&mut self) -> anyhow::Result<Duration> {
        anyhow::ensure!(self.child.is_none(), "the coordinator is already running");
        let log_path = self.opts.data_dir.join("coordinator.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        writeln!(log, "--- lab-loadgen: starting the coordinator")?;
        let heartbeat = format!("{}ms", self.opts.heartbeat.as_millis());
        let started = Instant::now();
        let child = Command::new(self.opts.bin_dir.join("lab-coordinator"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.opts.data_dir)
            .args(["--listen", &self.addr, "--metrics-listen", "off"])
            .args(["--heartbeat-interval", &heartbeat])
            .env("LAB_LOG", &self.opts.log_level)
            .envs(self.opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("cannot spawn lab-coordinator serve")?;
        self.child = Some(child);
        let addr: SocketAddr = self.addr.parse().context("coordinator address")?;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(started.elapsed());
            }
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    anyhow::bail!(
                        "the coordinator exited with {status} while starting; see {}",
                        log_path.display()
                    );
                }
            }
            anyhow::ensure!(
                started.elapsed() < START_TIMEOUT,
                "the coordinator did not listen on {} within {START_TIMEOUT:?}",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Process id of the running coordinator.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .context("the coordinator is not running")
    }

    /// CPU and memory of the running coordinator.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        procstat::sample(self.pid()?)
    }

    /// SIGKILL, then reap.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM, then reap (SIGKILL after `grace`).
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = c.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(grace, c.wait()).await.is_err() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }
}

/// The admin context of the labctl config that init wrote into `data_dir`.
pub fn admin_context(data_dir: &Path) -> anyhow::Result<lab_proto::ctlconfig::Context> {
    let path = data_dir.join("labctl.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let cfg = CtlConfig::parse(&text)?;
    Ok(cfg.context(None)?.clone())
}
