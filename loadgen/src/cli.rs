//! Command-line arguments (clap derive): one subcommand per scenario, and `compare`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// labfleet load generator: simulated and real agents against a real coordinator.
#[derive(Debug, Parser)]
#[command(name = "lab-loadgen", version, about)]
pub struct Cli {
    /// The scenario to run, or `compare`
    #[command(subcommand)]
    pub command: Command,
}

/// What to do: run a scenario, or compare a benchmark run with the baseline.
// Parsed once at start and moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A scenario
    #[command(flatten)]
    Run(Scenario),
    /// Compare a benchmark run with the baseline: metric, baseline, now, change
    ///
    /// FILE is `bench/run`'s results file or one scenario's JSON. A metric worse than the
    /// baseline by more than the threshold (in its own direction: lower or higher is better)
    /// is flagged, and so is a metric the results lack.
    #[command(
        after_help = "Exit codes: 0 no regression (or --no-fail, or --update-baseline), \
        1 a metric worse by more than the threshold or missing, \
        2 a file unreadable or not comparable (other agent counts)"
    )]
    Compare(CompareArgs),
}

/// `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline: metric paths, which direction is better, the last figures
    #[arg(long, value_name = "FILE", default_value = "bench/baseline.json")]
    pub baseline: PathBuf,
    /// This run's figures: a bench/run results file, or a lab-loadgen JSON
    #[arg(long, value_name = "FILE")]
    pub results: PathBuf,
    /// Percent by which a metric may be worse than the baseline before it is flagged
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0, value_parser = parse_percent)]
    pub threshold: f64,
    /// Only print: exit 0 even when a metric is flagged
    #[arg(long)]
    pub no_fail: bool,
    /// Write this run's figures into the baseline file (after printing the comparison); refused
    /// when a metric is missing
    #[arg(long)]
    pub update_baseline: bool,
}

/// Scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N simulated agents connect at once: time until all online, CPU, peak RSS, handshakes/s
    ConnectStorm(SimArgs),
    /// Connect, then measure the coordinator at steady heartbeats: RSS per agent, CPU
    Idle {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `idle` settings
        #[command(flatten)]
        idle: IdleArgs,
    },
    /// Repeated `true` jobs to all N agents: submit -> JobDone (all results durable)
    FanOut {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `fan-out` settings
        #[command(flatten)]
        fan_out: FanOutArgs,
    },
    /// Jobs back to back (and concurrent) for a while: task results per second, durable
    Throughput {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `throughput` settings
        #[command(flatten)]
        throughput: ThroughputArgs,
    },
    /// Output line latency from agent to a WatchJob watcher (one node, then all N at once)
    Streaming {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `streaming` settings
        #[command(flatten)]
        streaming: StreamingArgs,
    },
    /// kill -9 the coordinator with N agents and a running job, restart it: reconnect spread,
    /// time until all are back, results lost
    Restart {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `restart` settings
        #[command(flatten)]
        restart: RestartArgs,
    },
    /// Page answer times of `labctl ui` (the labctl next to this program) with N agents
    Ui {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `ui` settings
        #[command(flatten)]
        ui: UiArgs,
    },
    /// Every simulated scenario above but `ui`, in order on one fleet (restart last)
    Suite {
        /// Simulated fleet settings
        #[command(flatten)]
        sim: SimArgs,
        /// `idle` settings
        #[command(flatten)]
        idle: IdleArgs,
        /// `fan-out` settings
        #[command(flatten)]
        fan_out: FanOutArgs,
        /// `throughput` settings
        #[command(flatten)]
        throughput: ThroughputArgs,
        /// `streaming` settings
        #[command(flatten)]
        streaming: StreamingArgs,
        /// `restart` settings
        #[command(flatten)]
        restart: RestartArgs,
    },
    /// N real `lab-agent run` processes: `labctl run -- echo hi` end to end, agents' idle RSS/CPU
    RealAgents(RealArgs),
    /// One real `lab-agent run`: idle RSS and CPU, during fact collections, during streaming
    AgentFootprint(FootprintArgs),
}

/// Settings every scenario shares.
#[derive(Debug, Clone, Args)]
pub struct BaseArgs {
    /// Write the results as JSON here (default: target/loadgen/SCENARIO-nN.json)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Coordinator data directory; created with `init` when new, reused (with its enrolled
    /// identities) when given again. Default: a temporary directory, removed at the end
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory with lab-coordinator, lab-agent and labctl (default: next to this program)
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Heartbeat interval the coordinator hands to agents (`serve --heartbeat-interval`)
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// LAB_LOG of the coordinator
    #[arg(long, default_value = "info")]
    pub coordinator_log: String,
    /// Extra environment for the coordinator's init and serve, K=V (repeatable; e.g.
    /// MALLOC_ARENA_MAX=2, or LAB_STORE=etcd://127.0.0.1:2379 to measure the etcd store)
    #[arg(long = "coordinator-env", value_name = "K=V", value_parser = parse_env)]
    pub coordinator_env: Vec<(String, String)>,
    /// Give up (and stop everything) after this long
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub time_limit: Duration,
}

/// Settings of the simulated-agent scenarios.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Number of simulated agents
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// Loopback source addresses to spread connections over (127.0.0.1, .2, …); 0 = one per
    /// 1000 agents
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// How long all agents may take to connect
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Parallel enrollments
    #[arg(long, default_value_t = 8)]
    pub enroll_concurrency: usize,
    /// Longest a benchmark job may take before it is reported as failed and cancelled
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub job_timeout: Duration,
    /// Longest reconnect delay of the simulated agents (the real agent's default is 30s)
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconnect_max: Duration,
    /// Shared settings
    #[command(flatten)]
    pub base: BaseArgs,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// How long to measure at steady heartbeats
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
}

/// `fan-out`.
#[derive(Debug, Clone, Args)]
pub struct FanOutArgs {
    /// Jobs to submit, one after the other
    #[arg(long, default_value_t = 10)]
    pub jobs: usize,
}

/// `throughput`.
#[derive(Debug, Clone, Args)]
pub struct ThroughputArgs {
    /// How long to keep submitting jobs
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub sustain: Duration,
    /// Jobs in flight at once
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
}

/// `streaming`.
#[derive(Debug, Clone, Args)]
pub struct StreamingArgs {
    /// Rounds per phase (one output line per task per round)
    #[arg(long, default_value_t = 5)]
    pub stream_jobs: usize,
}

/// `restart`.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Length of the pretend task running across the restart (seconds)
    #[arg(long, default_value_t = 5.0)]
    pub task_secs: f64,
    /// Run the task on only the first K agents (0 = all)
    #[arg(long, default_value_t = 0)]
    pub job_nodes: usize,
    /// How long the coordinator stays down before it is started again
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub down: Duration,
}

/// `ui`.
#[derive(Debug, Clone, Args)]
pub struct UiArgs {
    /// Fetches of each page (after one unmeasured)
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
}

/// `real-agents`.
#[derive(Debug, Clone, Args)]
pub struct RealArgs {
    /// Number of real agent processes
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Runs of `labctl run -- echo hi`
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// How long to measure the idle agents
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Shared settings
    #[command(flatten)]
    pub base: BaseArgs,
}

/// `agent-footprint`.
#[derive(Debug, Clone, Args)]
pub struct FootprintArgs {
    /// How long to measure the idle agent
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// How long to measure with a fact collection every second
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub facts_window: Duration,
    /// Shared settings
    #[command(flatten)]
    pub base: BaseArgs,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("'{text}' is not K=V")),
    }
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!(
            "'{text}' is not a percentage (a number >= 0, e.g. 10)"
        )),
    }
}

impl Scenario {
    /// The subcommand name, for file names and the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::ConnectStorm(_) => "connect-storm",
            Scenario::Idle { .. } => "idle",
            Scenario::FanOut { .. } => "fan-out",
            Scenario::Throughput { .. } => "throughput",
            Scenario::Streaming { .. } => "streaming",
            Scenario::Restart { .. } => "restart",
            Scenario::Ui { .. } => "ui",
            Scenario::Suite { .. } => "suite",
            Scenario::RealAgents(_) => "real-agents",
            Scenario::AgentFootprint(_) => "agent-footprint",
        }
    }

    /// Shared settings.
    pub fn base(&self) -> &BaseArgs {
        match self {
            Scenario::ConnectStorm(sim)
            | Scenario::Idle { sim, .. }
            | Scenario::FanOut { sim, .. }
            | Scenario::Throughput { sim, .. }
            | Scenario::Streaming { sim, .. }
            | Scenario::Restart { sim, .. }
            | Scenario::Ui { sim, .. }
            | Scenario::Suite { sim, .. } => &sim.base,
            Scenario::RealAgents(r) => &r.base,
            Scenario::AgentFootprint(f) => &f.base,
        }
    }

    /// Number of agents.
    pub fn agents(&self) -> usize {
        match self {
            Scenario::ConnectStorm(sim)
            | Scenario::Idle { sim, .. }
            | Scenario::FanOut { sim, .. }
            | Scenario::Throughput { sim, .. }
            | Scenario::Streaming { sim, .. }
            | Scenario::Restart { sim, .. }
            | Scenario::Ui { sim, .. }
            | Scenario::Suite { sim, .. } => sim.agents,
            Scenario::RealAgents(r) => r.agents,
            Scenario::AgentFootprint(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_parses() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "lab-loadgen",
            "suite",
            "--agents",
            "10",
            "--idle",
            "5s",
            "--jobs",
            "2",
        ])
        .unwrap();
        let Command::Run(scenario) = cli.command else {
            panic!("suite parsed as {:?}", cli.command)
        };
        assert_eq!(scenario.name(), "suite");
        assert_eq!(scenario.agents(), 10);
    }

    #[test]
    fn compare_parses_its_threshold() {
        let cli = Cli::try_parse_from([
            "lab-loadgen",
            "compare",
            "--results",
            "r.json",
            "--threshold",
            "5%",
        ])
        .unwrap();
        let Command::Compare(args) = cli.command else {
            panic!("compare parsed as {:?}", cli.command)
        };
        assert_eq!(args.threshold, 5.0);
        assert_eq!(args.baseline, PathBuf::from("bench/baseline.json"));
        assert!(!args.no_fail && !args.update_baseline);
        for bad in ["-1", "x", "inf"] {
            assert!(
                Cli::try_parse_from([
                    "lab-loadgen",
                    "compare",
                    "--results",
                    "r",
                    "--threshold",
                    bad
                ])
                .is_err(),
                "{bad}"
            );
        }
    }
}
