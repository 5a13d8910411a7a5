//! Real agents: `lab-agent enroll` and `lab-agent run` processes with their own data
//! directories, and the `real-agents` scenario (`labctl run -- echo hi` end to end from the CLI,
//! the agents' idle RSS and CPU).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

use super::Section;
use crate::admin::Admin;
use crate::procstat::{self, cpu_percent, ProcSample};
use crate::report::{mib, Summary};

/// How long real agents may take to come online.
pub const ONLINE_TIMEOUT: Duration = Duration::from_secs(180);

/// One real agent: its data directory and, while running, its process.
pub struct RealAgent {
    /// Node name.
    pub name: String,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl RealAgent {
    /// Enrolls `name` into `root/NAME` with `lab-agent enroll` (skipped if already enrolled).
    pub async fn enroll(
        bin_dir: &Path,
        admin: &Admin,
        root: &Path,
        name: &str,
    ) -> anyhow::Result<RealAgent> {
        let dir = root.join(name);
        let agent = RealAgent {
            name: name.to_owned(),
            log: root.join(format!("{name}.log")),
            dir: dir.clone(),
            child: None,
        };
        if lab_agent::AgentDir::new(&dir).is_enrolled() {
            return Ok(agent);
        }
        let token = admin.create_token(name).await?;
        let out = Command::new(bin_dir.join("lab-agent"))
            .args(["enroll", "--coordinator", &admin.addr, "--token", &token])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--name", name])
            .output()
            .await
            .context(
                "cannot run lab-agent enroll; build it with 'cargo build --release -p lab-agent'",
            )?;
        anyhow::ensure!(
            out.status.success(),
            "lab-agent enroll {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(agent)
    }

    /// Starts `lab-agent run` with `extra` arguments (log appended to ROOT/NAME.log).
    pub fn start(&mut self, bin_dir: &Path, extra: &[&str]) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "agent {} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(bin_dir.join("lab-agent"))
            .arg("run")
            .arg("--data-dir")
            .arg(&self.dir)
            // No config file: the agent's labels do not matter here.
            .arg("--config")
            .arg(self.dir.join("no-labels.toml"))
            .args(extra)
            .env("LAB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("cannot spawn lab-agent run")?;
        self.child = Some(child);
        Ok(())
    }

    /// CPU and memory of the running agent.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .with_context(|| format!("agent {} is not running", self.name))?;
        procstat::sample(pid)
    }

    /// SIGTERM, then reap (SIGKILL after 10 s).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = c.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .is_err()
        {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }
}

/// Writes an empty agent config for `--config` (so no host config is read).
pub fn write_empty_config(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("no-labels.toml"), "")?;
    Ok(())
}

/// Waits until `want` nodes are online according to `ListNodes`.
pub async fn wait_online(admin: &Admin, want: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let (_, online) = admin.node_counts().await?;
        if online >= want {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < ONLINE_TIMEOUT,
            "only {online} of {want} real agents online after {ONLINE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `labctl run -- echo hi` once; returns the wall time and the number of "hi" lines.
pub async fn labctl_echo(bin_dir: &Path, labctl_toml: &Path) -> anyhow::Result<(f64, usize)> {
    let started = Instant::now();
    let out = Command::new(bin_dir.join("labctl"))
        .arg("--config")
        .arg(labctl_toml)
        .args(["run", "--", "echo", "hi"])
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run labctl; build it with 'cargo build --release -p labctl'")?;
    let took = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "labctl run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    Ok((took, text.lines().filter(|l| l.ends_with("hi")).count()))
}

/// Runs `labctl whoami` once (process start, config, mTLS handshake, one RPC); wall seconds.
pub async fn labctl_whoami(bin_dir: &Path, labctl_toml: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = Command::new(bin_dir.join("labctl"))
        .arg("--config")
        .arg(labctl_toml)
        .arg("whoami")
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run labctl")?;
    anyhow::ensure!(
        out.status.success(),
        "labctl whoami failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(started.elapsed().as_secs_f64())
}

/// Where the time of the latest `jobs` jobs went, from the timestamps the coordinator stores
/// (agents report the start): per task, submit -> started (assign delivered, start journaled,
/// process spawned) /// and started -> result stored (the coordinator stamps the finish when it applies it).
pub async fn breakdown(admin: &Admin, jobs: u32) -> anyhow::Result<(Summary, Summary)> {
    let (mut to_start, mut running) = (Vec::new(), Vec::new());
    for job in admin.recent_jobs(jobs).await? {
        for t in &job.tasks {
            to_start.push((t.started_unix_ms - job.submitted_unix_ms) as f64 / 1e3);
            running.push((t.finished_unix_ms - t.started_unix_ms) as f64 / 1e3);
        }
    }
    Ok((Summary::of(&to_start), Summary::of(&running)))
}

/// The `real-agents` scenario on a started coordinator (no simulated agent runs).
pub async fn real_agents(
    coord_admin: (&crate::coordinator::CoordinatorProc, &Admin),
    bin_dir: &Path,
    agents: usize,
    runs: usize,
    idle: Duration,
) -> anyhow::Result<Section> {
    let (coord, admin) = coord_admin;
    let root = coord.data_dir().join("real-agents");
    let started = Instant::now();
    let mut fleet = Vec::with_capacity(agents);
    for i in 1..=agents {
        let name = format!("real-{i:03}");
        let agent = RealAgent::enroll(bin_dir, admin, &root, &name).await?;
        write_empty_config(&root.join(&name))?;
        fleet.push(agent);
    }
    let enroll_secs = started.elapsed().as_secs_f64();
    let coord_before = coord.sample()?;
    for a in &mut fleet {
        a.start(bin_dir, &[])?;
    }
    let online = wait_online(admin, agents).await?;
    // Past the first fact collection and report of every agent.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let s0: Vec<ProcSample> = fleet
        .iter()
        .map(RealAgent::sample)
        .collect::<Result<_, _>>()?;
    let c0 = coord.sample()?;
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let took = t.elapsed();
    let s1: Vec<ProcSample> = fleet
        .iter()
        .map(RealAgent::sample)
        .collect::<Result<_, _>>()?;
    let c1 = coord.sample()?;
    let cpu: Vec<f64> = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| cpu_percent(a, b, took))
        .collect();
    let rss: Vec<f64> = s1.iter().map(|s| s.rss_kib as f64).collect();
    let private: Vec<f64> = s1.iter().map(|s| s.private_kib as f64).collect();
    let anon: Vec<f64> = s1.iter().map(|s| s.anon_kib as f64).collect();
    let pss_sum: u64 = s1.iter().map(|s| s.pss_kib).sum();
    let (cpu, rss_sum) = (Summary::of(&cpu), rss.iter().sum::<f64>());
    let (rss, private, anon) = (Summary::of(&rss), Summary::of(&private), Summary::of(&anon));

    let agents0: Vec<ProcSample> = fleet
        .iter()
        .map(RealAgent::sample)
        .collect::<Result<_, _>>()?;
    let coord_runs0 = coord.sample()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (secs, lines) = labctl_echo(bin_dir, &coord.labctl_config()).await?;
        anyhow::ensure!(
            lines == agents,
            "labctl run printed {lines} 'hi' lines for {agents} agents"
        );
        times.push(secs);
    }
    let run = Summary::of(&times);
    let agents1: Vec<ProcSample> = fleet
        .iter()
        .map(RealAgent::sample)
        .collect::<Result<_, _>>()?;
    let coord_runs1 = coord.sample()?;
    let agents_cpu_ms: f64 = agents0
        .iter()
        .zip(&agents1)
        .map(|(a, b)| b.cpu_secs - a.cpu_secs)
        .sum::<f64>()
        * 1e3
        / runs.max(1) as f64;
    let coord_cpu_ms = (coord_runs1.cpu_secs - coord_runs0.cpu_secs) * 1e3 / runs.max(1) as f64;
    let (to_start, running) = breakdown(admin, runs as u32).await?;
    let mut floor = Vec::with_capacity(runs);
    for _ in 0..runs {
        floor.push(labctl_whoami(bin_dir, &coord.labctl_config()).await?);
    }
    let floor = Summary::of(&floor);
    for a in &mut fleet {
        a.stop().await?;
    }

    let mut s = Section::new(
        "real_agents",
        format!("real agents: {agents} `lab-agent run` processes on this machine"),
    );
    s.row(
        "`labctl run -- echo hi` end to end (CLI wall time)",
        run.brief(1e3, "ms"),
    );
    s.row(
        "of which the CLI floor: `labctl whoami` (start, mTLS, one RPC)",
        floor.brief(1e3, "ms"),
    );
    s.row(
        "  per task: submit -> agent started",
        to_start.brief(1e3, "ms"),
    );
    s.row(
        "  per task: agent started -> result stored",
        running.brief(1e3, "ms"),
    );
    s.row(
        "  CPU per run (agents' own, without echo; coordinator)",
        format!("{agents_cpu_ms:.0} ms all agents; {coord_cpu_ms:.0} ms coordinator"),
    );
    s.row(
        "agents enrolled (lab-agent enroll)",
        format!("{agents} in {enroll_secs:.1} s"),
    );
    s.row(
        "all online after start",
        format!("{:.2} s", online.as_secs_f64()),
    );
    s.row(
        "agent idle RSS",
        format!(
            "{} total; per agent mean {}, max {}",
            mib(rss_sum as u64),
            mib(rss.mean as u64),
            mib(rss.max as u64)
        ),
    );
    s.row(
        "agent idle anonymous memory (heap, stacks)",
        format!(
            "per agent mean {}, max {}",
            mib(anon.mean as u64),
            mib(anon.max as u64)
        ),
    );
    s.row(
        "agent idle memory of their own (private pages)",
        format!(
            "per agent mean {}, max {}; all agents together (sum of PSS) {}",
            mib(private.mean as u64),
            mib(private.max as u64),
            mib(pss_sum)
        ),
    );
    s.row(
        format!("agent idle CPU over {:.0} s", took.as_secs_f64()),
        format!(
            "per agent mean {:.3} %, max {:.3} % of one core; all {} agents {:.2} %",
            cpu.mean,
            cpu.max,
            agents,
            cpu.mean * agents as f64
        ),
    );
    s.row(
        "coordinator with these agents",
        format!(
            "RSS {} (before agents {}), idle CPU {:.2} %",
            mib(c1.rss_kib),
            mib(coord_before.rss_kib),
            cpu_percent(&c0, &c1, took)
        ),
    );
    s.set("agents", agents);
    s.set("runs", runs);
    s.set("labctl_run_echo_secs", run);
    s.set("labctl_whoami_secs", floor);
    s.set("task_submit_to_started_secs", to_start);
    s.set("task_started_to_stored_secs", running);
    s.set("agents_cpu_ms_per_run", agents_cpu_ms);
    s.set("coordinator_cpu_ms_per_run", coord_cpu_ms);
    s.set("enroll_secs", enroll_secs);
    s.set("online_secs", online.as_secs_f64());
    s.set("idle_secs", took.as_secs_f64());
    s.set("agent_rss_kib_total", rss_sum);
    s.set("agent_rss_kib", rss);
    s.set("agent_private_kib", private);
    s.set("agent_anon_kib", anon);
    s.set("agent_pss_kib_total", pss_sum);
    s.set("agent_cpu_percent", cpu);
    s.set("coordinator_rss_kib", c1.rss_kib);
    s.set("coordinator_cpu_percent", cpu_percent(&c0, &c1, took));
    Ok(s)
}
