//! lab-loadgen: measures labfleet at fleet size. It starts the real coordinator as a child
//! process, simulates thousands of agents in this one process ([`sim`]) that speak the real
//! protocol over their own mTLS connections, or runs real `lab-agent` processes, and reports
//! what the scenarios ([`scenarios`]) measured as tables and JSON.
//!
//! [`compare`] holds a benchmark run against the committed baseline (`bench/run` calls it).
//!
//! `main.rs` only parses arguments and calls [`run`] or [`compare::run`].

pub mod admin;
pub mod cli;
pub mod compare;
pub mod coordinator;
pub mod enroll;
pub mod procstat;
pub mod report;
pub mod scenarios;
pub mod sim;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use cli::{BaseArgs, Scenario};
use coordinator::{CoordinatorOptions, CoordinatorProc};
use scenarios::{file_sha256, Report, Section, SimEnv};

/// Open files wanted: one per simulated agent plus slack, for this process and the coordinator.
const NOFILE_WANTED: u64 = 262_144;

/// One step of a simulated-agent run, after the fleet connected.
enum Step {
    Idle(cli::IdleArgs),
    FanOut(cli::FanOutArgs),
    Throughput(cli::ThroughputArgs),
    Streaming(cli::StreamingArgs),
    Restart(cli::RestartArgs),
    Ui(cli::UiArgs),
}

fn exe_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("this program has no directory")
}

/// Runs `scenario` within its time limit.
pub async fn run(scenario: Scenario) -> anyhow::Result<()> {
    let nofile = procstat::raise_nofile(NOFILE_WANTED)?;
    let base = scenario.base().clone();
    let name = scenario.name();
    let bin_dir = match &base.bin_dir {
        Some(d) => d.clone(),
        None => exe_dir()?,
    };
    let json_path = base.json.clone().unwrap_or_else(|| {
        bin_dir
            .join("..")
            .join("loadgen")
            .join(format!("{name}-n{}.json", scenario.agents()))
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let extra = json!({
        "agents": scenario.agents(),
        "heartbeat_interval_ms": base.heartbeat_interval.as_millis() as u64,
        "nofile_limit": nofile,
        "coordinator_env": base.coordinator_env,
        "lab_coordinator_sha256": file_sha256(&bin_dir.join("lab-coordinator")),
        "lab_agent_sha256": file_sha256(&bin_dir.join("lab-agent")),
    });
    let mut report = Report::new(json_path, name, &command, extra);
    eprintln!("lab-loadgen {name}: RLIMIT_NOFILE {nofile} (inherited by the coordinator)");
    // Leaving on a signal or at the time limit drops the scenario, which kills its children.
    tokio::select! {
        r = tokio::time::timeout(base.time_limit, run_scenario(scenario, &bin_dir, &mut report)) => {
            r.map_err(|_| anyhow::anyhow!("stopped at the time limit of {:?}", base.time_limit))?
        }
        _ = lab_proto::shutdown::wait_for_signal() => anyhow::bail!("interrupted"),
    }
}

async fn start_plain(
    base: &BaseArgs,
    bin_dir: &Path,
) -> anyhow::Result<(CoordinatorProc, admin::Admin, Option<tempfile::TempDir>)> {
    let (dir, tmp) = scenarios::data_dir(base)?;
    let mut coord = CoordinatorProc::prepare(CoordinatorOptions {
        bin_dir: bin_dir.to_owned(),
        data_dir: dir,
        heartbeat: base.heartbeat_interval,
        log_level: base.coordinator_log.clone(),
        env: base.coordinator_env.clone(),
    })
    .await?;
    coord.start().await?;
    let admin = admin::Admin::connect(&coord.labctl_config()).await?;
    Ok((coord, admin, tmp))
}

async fn run_scenario(
    scenario: Scenario,
    bin_dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (sim, steps) = match scenario {
        Scenario::RealAgents(a) => {
            let (mut coord, admin, _tmp) = start_plain(&a.base, bin_dir).await?;
            let s =
                scenarios::real::real_agents((&coord, &admin), bin_dir, a.agents, a.runs, a.idle)
                    .await?;
            report.add(s)?;
            return coord.stop(Duration::from_secs(30)).await;
        }
        Scenario::AgentFootprint(f) => {
            let (mut coord, admin, _tmp) = start_plain(&f.base, bin_dir).await?;
            let s = scenarios::footprint::agent_footprint(
                &coord,
                &admin,
                bin_dir,
                f.idle,
                f.facts_window,
            )
            .await?;
            report.add(s)?;
            return coord.stop(Duration::from_secs(30)).await;
        }
        Scenario::ConnectStorm(sim) => (sim, vec![]),
        Scenario::Idle { sim, idle } => (sim, vec![Step::Idle(idle)]),
        Scenario::FanOut { sim, fan_out } => (sim, vec![Step::FanOut(fan_out)]),
        Scenario::Throughput { sim, throughput } => (sim, vec![Step::Throughput(throughput)]),
        Scenario::Streaming { sim, streaming } => (sim, vec![Step::Streaming(streaming)]),
        Scenario::Restart { sim, restart } => (sim, vec![Step::Restart(restart)]),
        Scenario::Ui { sim, ui } => (sim, vec![Step::Ui(ui)]),
        Scenario::Suite {
            sim,
            idle,
            fan_out,
            throughput,
            streaming,
            restart,
        } => (
            sim,
            vec![
                Step::Idle(idle),
                Step::FanOut(fan_out),
                Step::Streaming(streaming),
                Step::Throughput(throughput),
                Step::Restart(restart),
            ],
        ),
    };
    let mut env = SimEnv::start(&sim, bin_dir).await?;
    report.add(env.enroll_section())?;
    let (fleet, storm) = scenarios::storm::connect_storm(&env).await?;
    report.add(storm)?;
    let mut failed = Vec::new();
    for step in steps {
        let result = match &step {
            Step::Idle(a) => scenarios::storm::idle(&env, &fleet, a.idle).await,
            Step::FanOut(a) => scenarios::jobs::fan_out(&env, a.jobs).await,
            Step::Throughput(a) => {
                scenarios::jobs::throughput(&env, a.sustain, a.concurrency).await
            }
            Step::Streaming(a) => scenarios::jobs::streaming(&env, a.stream_jobs).await,
            Step::Restart(a) => {
                scenarios::restart::restart(&mut env, &fleet, a.task_secs, a.down, a.job_nodes)
                    .await
            }
            Step::Ui(a) => scenarios::ui::pages(&env, bin_dir, a.rounds).await,
        };
        match result {
            Ok(s) => report.add(s)?,
            Err(e) => {
                let name = step_name(&step);
                eprintln!("error in {name}: {e:#}");
                let mut s = Section::new(name, format!("{name}: FAILED"));
                s.row("error", format!("{e:#}"));
                s.set("error", format!("{e:#}"));
                report.add(s)?;
                failed.push(name);
            }
        }
    }
    env.finish(Some(fleet)).await?;
    anyhow::ensure!(failed.is_empty(), "failed: {}", failed.join(", "));
    Ok(())
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Idle(_) => "idle",
        Step::FanOut(_) => "fan_out",
        Step::Throughput(_) => "throughput",
        Step::Streaming(_) => "streaming",
        Step::Restart(_) => "restart",
        Step::Ui(_) => "ui",
    }
}
