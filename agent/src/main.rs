//! `lab-agent`: argument parsing and exit codes only; the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use lab_agent::config::AgentConfig;
use lab_agent::enroll::{enroll, EnrollOptions};
use lab_agent::session::{run, Refused, RunOptions};
use lab_agent::{AgentDir, AgentError};
use lab_proto::client::ConnectOptions;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "lab-agent", version, about = "labfleet agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Json,
    Yaml,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this machine with a one-time token from 'labctl token create'
    Enroll {
        /// Coordinator address, HOST:PORT; several coordinators sharing one etcd store as a
        /// comma-separated list (A:7443,B:7443), all saved for later runs
        #[arg(long, env = "LAB_COORDINATOR", value_parser = parse_coordinators)]
        coordinator: CoordinatorList,
        /// The enrollment token
        #[arg(long, env = "LAB_TOKEN", hide_env_values = true)]
        token: String,
        /// Agent data directory
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-agent")]
        data_dir: PathBuf,
        /// Node name (default: the name the token is bound to, else this machine's hostname);
        /// refused if the token is bound to another name
        #[arg(long, env = "LAB_NODE_NAME")]
        name: Option<String>,
    },
    /// Keep the session to the coordinator (the daemon)
    Run {
        /// Agent data directory
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-agent")]
        data_dir: PathBuf,
        /// How often facts are re-collected (only changes are sent)
        #[arg(long, env = "LAB_FACTS_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
        facts_interval: Duration,
        /// Longest reconnect delay (backoff is exponential with jitter up to this)
        #[arg(long, env = "LAB_RECONNECT_MAX", default_value = "30s", value_parser = humantime::parse_duration)]
        reconnect_max: Duration,
        /// Agent config file (labels); a missing default file is fine
        #[arg(long, env = "LAB_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Most tasks running at once; further ones wait
        #[arg(long, env = "LAB_MAX_TASKS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
        max_tasks: u32,
        /// Read the files facts come from under this directory instead of / (a mounted disk
        /// image, a fixture tree); programs (systemctl, k3s, ceph, psql), filesystem usage and
        /// interface addresses are then left out, as they describe only the running system.
        /// Config tasks look for NixOS and its system profile there too (for tests)
        #[arg(long, env = "LAB_FACTS_ROOT", value_name = "DIR", default_value = "/")]
        facts_root: PathBuf,
        /// Coordinator addresses to use instead of those recorded at enrollment, HOST:PORT or
        /// a comma-separated list (A:7443,B:7443): for a coordinator added or moved later
        #[arg(long, env = "LAB_COORDINATOR", value_parser = parse_coordinators)]
        coordinator: Option<CoordinatorList>,
    },
    /// Print this machine's facts without a coordinator
    Facts {
        /// Read files relative to this directory instead of /
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// Output format
        #[arg(short, long, value_enum, default_value = "json")]
        output: Output,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(hide = true)]
    Completion {
        /// Shell to complete for
        shell: clap_complete::Shell,
    },
    /// Write man pages (lab-agent.8 and one per command) into a directory, for packaging
    #[command(hide = true)]
    Man {
        /// Directory to write into (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// The checked addresses of `--coordinator A:7443,B:7443`.
#[derive(Clone, Debug)]
struct CoordinatorList(Vec<String>);

fn parse_coordinators(text: &str) -> Result<CoordinatorList, String> {
    lab_proto::endpoints::parse_list(text)
        .map(CoordinatorList)
        .map_err(|e| e.to_string())
}

fn default_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
}

/// Most threads for blocking work (task journal writes, file resources, user lookups) at once;
/// idle ones exit after tokio's 10 s keep-alive, so this bounds bursts, not idle memory.
const MAX_BLOCKING_THREADS: usize = 64;

fn main() -> ExitCode {
    // One worker thread: the agent's async work is one session and a few tasks, and every
    // worker costs a stack and a malloc arena for the life of the process (tokio's default is
    // one per core). A multi-threaded runtime with one worker rather than a current-thread one:
    // the session loop runs on the main thread (`block_on`) and spawned tasks (task runners,
    // the HTTP/2 connection) on the worker, so they do not take turns on one thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run_command()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command() -> ExitCode {
    let cli = Cli::parse();
    lab_proto::logging::init("info");
    let result: Result<(), AgentError> = match cli.command {
        Command::Enroll {
            coordinator,
            token,
            data_dir,
            name,
        } => {
            let opts = EnrollOptions {
                coordinators: coordinator.0,
                token,
                name,
                default_name: default_name(),
                connect: ConnectOptions::default(),
            };
            enroll(&AgentDir::new(&data_dir), &opts).await.map(|node| {
                println!(
                    "enrolled as node '{node}'; start the agent with 'lab-agent run --data-dir {}'",
                    data_dir.display()
                );
            })
        }
        Command::Run {
            data_dir,
            facts_interval,
            reconnect_max,
            config,
            max_tasks,
            facts_root,
            coordinator,
        } => {
            if !facts_root.is_dir() {
                eprintln!(
                    "error: --facts-root {} is not a directory; give the root of a mounted system, or leave it out for /",
                    facts_root.display()
                );
                return ExitCode::from(2);
            }
            let required = config.is_some();
            let path = config.unwrap_or_else(|| PathBuf::from(lab_agent::config::DEFAULT_PATH));
            let labels = match AgentConfig::load(&path, required) {
                Ok(c) => {
                    for warning in c.label_warnings() {
                        tracing::warn!(config = %path.display(), "{warning}");
                    }
                    c.labels
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let shutdown = CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                lab_proto::shutdown::wait_for_signal().await;
                on_signal.cancel();
            });
            let opts = RunOptions {
                coordinators: coordinator.map(|c| c.0),
                facts_interval,
                reconnect_cap: reconnect_max,
                labels,
                max_tasks: max_tasks as usize,
                facts_root,
                facts_program: Some(PathBuf::from("/proc/self/exe")),
                ..RunOptions::default()
            };
            run(AgentDir::new(data_dir), opts, shutdown)
                .await
                .map_err(|e| match e.downcast::<Refused>() {
                    Ok(refused) => AgentError::Refused(refused.to_string()),
                    Err(e) => AgentError::Failed(format!("{e:#}")),
                })
        }
        Command::Facts { ref root, .. } if !root.is_dir() => Err(AgentError::Usage(format!(
            "--root {} is not a directory; give the root of a mounted system, or leave it out for /",
            root.display()
        ))),
        Command::Completion { shell } => {
            let script = lab_proto::clidocs::completion(Cli::command(), "lab-agent", shell);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(|e| AgentError::Failed(format!("cannot write the script: {e}")))
        }
        Command::Man { out } => lab_proto::clidocs::write_man_pages(Cli::command(), "8", &out)
            .map(|pages| {
                for page in pages {
                    println!("{}", out.join(page).display());
                }
            })
            .map_err(|e| AgentError::Failed(e.to_string())),
        Command::Facts { root, output } => {
            let facts = lab_agent::facts::collect(&root);
            match output {
                Output::Json => serde_json::to_string_pretty(&facts)
                    .map(|text| println!("{text}"))
                    .map_err(|e| AgentError::Failed(e.to_string())),
                Output::Yaml => serde_yaml_ng::to_string(&facts)
                    .map(|text| print!("{text}"))
                    .map_err(|e| AgentError::Failed(e.to_string())),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings `/etc/default/lab-agent` (deploy/debian) shows, commented out.
    fn default_file_settings() -> Vec<String> {
        include_str!("../../deploy/debian/lab-agent/default")
            .lines()
            .filter_map(|l| l.trim_start_matches('#').split_once('='))
            .map(|(name, _)| name.to_owned())
            .filter(|name| name.starts_with("LAB_"))
            .collect()
    }

    #[test]
    fn the_packaged_default_file_names_the_settings_run_reads() {
        let cli = Cli::command();
        let run = cli
            .find_subcommand("run")
            .unwrap_or_else(|| panic!("no run command"));
        let mut read: Vec<String> = run
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            // the unit passes --data-dir
            .filter(|e| e != "LAB_DATA_DIR")
            .collect();
        read.push("LAB_LOG".into());
        let mut shown = default_file_settings();
        read.sort();
        shown.sort();
        assert_eq!(shown, read);
    }
}
