//! `lab-coordinator`: argument parsing and exit codes only; the work is in the library.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use lab_coordinator::init::{init, InitOptions};
use lab_coordinator::store::{export, Location};
use lab_coordinator::{DataDir, ServeOptions};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "lab-coordinator", version, about = "labfleet coordinator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the store lives (init, serve, store export/import).
#[derive(clap::Args)]
struct StoreArgs {
    /// The store: sled (in the data directory) or etcd://HOST:PORT[,HOST:PORT…]
    #[arg(long = "store", env = "LAB_STORE", default_value = "sled")]
    store: String,
    /// CA certificate (PEM) of etcd's members; turns on TLS to etcd
    #[arg(long, env = "LAB_ETCD_CA")]
    etcd_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for etcd's mutual TLS
    #[arg(long, env = "LAB_ETCD_CERT")]
    etcd_cert: Option<std::path::PathBuf>,
    /// Key (PEM) of the client certificate for etcd
    #[arg(long, env = "LAB_ETCD_KEY")]
    etcd_key: Option<std::path::PathBuf>,
    /// Key prefix of this fleet in etcd (fleets sharing an etcd cluster use different ones)
    #[arg(long, env = "LAB_ETCD_PREFIX", default_value = lab_coordinator::store::etcd_kv::DEFAULT_PREFIX)]
    etcd_prefix: String,
}

impl StoreArgs {
    /// `--store URL` plus `--etcd-prefix P` when not the default, for messages to copy from.
    fn shown(&self) -> String {
        if self.etcd_prefix == lab_coordinator::store::etcd_kv::DEFAULT_PREFIX {
            format!("--store {}", self.store)
        } else {
            format!("--store {} --etcd-prefix {}", self.store, self.etcd_prefix)
        }
    }

    /// The store's location; `None` for sled, whose place follows from the data directory.
    fn location(&self, data_dir: &std::path::Path) -> anyhow::Result<Location> {
        Location::parse(
            &self.store,
            &DataDir::new(data_dir).state(),
            self.etcd_ca.clone(),
            self.etcd_cert.clone(),
            self.etcd_key.clone(),
            &self.etcd_prefix,
        )
        .map_err(|e| anyhow::Error::new(lab_coordinator::init::UsageError(e)))
    }
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Write every record of the store to FILE (a sled store: stop the coordinator first)
    Export {
        /// File to write (replaced)
        file: std::path::PathBuf,
        /// Data directory made by init (where a sled store lives)
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-coordinator")]
        data_dir: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Load FILE (from 'store export') into an empty store, then check every record
    Import {
        /// Export file to read
        file: std::path::PathBuf,
        /// Data directory made by init (where a sled store lives)
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-coordinator")]
        data_dir: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Create the CA, server certificate, admin operator and DIR/labctl.toml
    Init {
        /// Data directory to create
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-coordinator")]
        data_dir: std::path::PathBuf,
        /// Address agents and operators dial, HOST:PORT (its host goes into the server certificate)
        #[arg(long, env = "LAB_ADVERTISE")]
        advertise: String,
        /// Trust domain of the CA (identities are spiffe://DOMAIN/...)
        #[arg(long, env = "LAB_TRUST_DOMAIN", default_value = "lab.local")]
        trust_domain: String,
        /// Extra DNS name or IP for the server certificate (repeatable)
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Replace an existing CA: delete the CA, store and admin config in the data directory
        /// and start over (every node and operator must enroll again)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add this machine as another coordinator of a fleet on etcd (the CA comes sealed from
    /// etcd, opened with the join key that init wrote)
    Join {
        /// Data directory to create
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-coordinator")]
        data_dir: std::path::PathBuf,
        /// Address agents and operators dial for this coordinator, HOST:PORT (its host goes
        /// into the server certificate)
        #[arg(long, env = "LAB_ADVERTISE")]
        advertise: String,
        /// The join key: a copy of DIR/join.key of a coordinator of the fleet
        #[arg(long, env = "LAB_JOIN_KEY")]
        join_key: std::path::PathBuf,
        /// Extra DNS name or IP for the server certificate (repeatable)
        #[arg(long = "san")]
        sans: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Move the store's records to a file and back (sled ↔ etcd, backup and restore)
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Add names (DNS or IP) to the server certificate; restart 'serve' to use it
    Cert {
        /// Data directory made by init
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-coordinator")]
        data_dir: std::path::PathBuf,
        /// DNS name or IP address to add (repeatable)
        #[arg(long = "san")]
        sans: Vec<String>,
        /// New address agents and operators dial, HOST:PORT (its host is added too)
        #[arg(long)]
        advertise: Option<String>,
    },
    /// Serve the agent and operator APIs
    Serve {
        /// Data directory made by init
        #[arg(long, env = "LAB_DATA_DIR", default_value = "/var/lib/lab-coordinator")]
        data_dir: std::path::PathBuf,
        /// gRPC (mTLS) listen address
        #[arg(long, env = "LAB_LISTEN", default_value = "0.0.0.0:7443")]
        listen: SocketAddr,
        /// Prometheus metrics listen address (plain HTTP); "off" disables
        #[arg(long, env = "LAB_METRICS_LISTEN", default_value = "127.0.0.1:7444")]
        metrics_listen: String,
        /// Heartbeat interval handed to agents; offline after 3 missed
        #[arg(long, env = "LAB_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
        heartbeat_interval: Duration,
        /// Lifetime of node certificates
        #[arg(long, env = "LAB_NODE_CERT_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
        node_cert_ttl: Duration,
        /// Output kept per task in bytes (the tail is kept)
        #[arg(long, env = "LAB_TASK_OUTPUT_LIMIT", default_value_t = 1024 * 1024)]
        task_output_limit: u64,
        /// Finished jobs older than this are deleted
        #[arg(long, env = "LAB_JOB_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
        job_retention: Duration,
        /// At most this many finished jobs are kept
        #[arg(long, env = "LAB_JOB_RETENTION_COUNT", default_value_t = 1000)]
        job_retention_count: usize,
        /// Size of the store's page cache in MiB (bounds the coordinator's memory)
        #[arg(long, env = "LAB_STORE_CACHE_MIB", default_value_t = 128, value_parser = clap::value_parser!(u64).range(8..=65536))]
        store_cache_mib: u64,
        /// Free space (MiB) the data directory keeps: below it new jobs, enrollments and
        /// schedules are refused, so the store never fills the disk; 0 turns the check off
        #[arg(long, env = "LAB_MIN_FREE_MIB", default_value_t = lab_coordinator::store::DEFAULT_MIN_FREE_MIB)]
        min_free_mib: u64,
        /// A connection without a client certificate is closed after this long without a request
        #[arg(long, env = "LAB_UNAUTH_IDLE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
        unauth_idle_timeout: Duration,
        /// Connections without a client certificate open at once (lowered to a quarter of the
        /// open file limit); agents and operators with certificates are never refused
        #[arg(long, env = "LAB_MAX_UNAUTH_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
        max_unauth_connections: u32,
        /// Connections without a client certificate from one source address (TLS handshakes
        /// are capped separately, at 1024 or a quarter of the open file limit)
        #[arg(long, env = "LAB_MAX_UNAUTH_PER_SOURCE", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
        max_unauth_per_source: u32,
        /// etcd store: TTL of the leader lease; a standby takes over this long after the
        /// leader stopped (sled: unused)
        #[arg(long, env = "LAB_LEADER_TTL", default_value = "5s", value_parser = parse_ttl)]
        leader_ttl: Duration,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(hide = true)]
    Completion {
        /// Shell to complete for
        shell: clap_complete::Shell,
    },
    /// Write man pages (lab-coordinator.8 and one per command) into a directory, for packaging
    #[command(hide = true)]
    Man {
        /// Directory to write into (created if missing)
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    lab_proto::logging::init("info");
    let result = match cli.command {
        Command::Init {
            data_dir,
            advertise,
            trust_domain,
            sans,
            force,
            store,
        } => match store.location(&data_dir) {
            Err(e) => Err(e),
            Ok(location) => {
                let opts = InitOptions {
                    data_dir: DataDir::new(&data_dir),
                    advertise,
                    trust_domain,
                    extra_sans: sans,
                    force,
                    store: Some(location).filter(|l| !matches!(l, Location::Sled(_))),
                };
                init(&opts).await.map(|()| {
                    println!(
                        "initialized {}\nadmin labctl config: {}",
                        data_dir.display(),
                        opts.data_dir.labctl_config().display()
                    );
                    if opts.store.is_some() {
                        println!(
                            "join key: {} (copy it to the next coordinator, then: lab-coordinator join {} --join-key FILE --advertise HOST:PORT)",
                            opts.data_dir.join_key().display(),
                            store.shown()
                        );
                    }
                })
            }
        },
        Command::Join {
            data_dir,
            advertise,
            join_key,
            sans,
            store,
        } => join_command(data_dir, advertise, join_key, sans, store).await,
        Command::Store { command } => store_command(command).await,
        Command::Cert {
            data_dir,
            sans,
            advertise,
        } => lab_coordinator::init::add_server_names(
            &DataDir::new(&data_dir),
            &sans,
            advertise.as_deref(),
        )
        .map(|names| {
            println!(
                "server certificate in {} now names {}; restart 'lab-coordinator serve' to use it",
                data_dir.display(),
                names.join(", ")
            );
        }),
        Command::Completion { shell } => {
            let script = lab_proto::clidocs::completion(Cli::command(), "lab-coordinator", shell);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(|e| anyhow::anyhow!("cannot write the script: {e}"))
        }
        Command::Man { out } => lab_proto::clidocs::write_man_pages(Cli::command(), "8", &out)
            .map(|pages| {
                for page in pages {
                    println!("{}", out.join(page).display());
                }
            })
            .map_err(anyhow::Error::from),
        Command::Serve {
            data_dir,
            listen,
            metrics_listen,
            heartbeat_interval,
            node_cert_ttl,
            task_output_limit,
            job_retention,
            job_retention_count,
            store_cache_mib,
            min_free_mib,
            unauth_idle_timeout,
            max_unauth_connections,
            max_unauth_per_source,
            leader_ttl,
            store,
        } => {
            let metrics = match metrics_listen.as_str() {
                "off" | "" => Ok(None),
                addr => addr.parse::<SocketAddr>().map(Some).map_err(|e| {
                    anyhow::anyhow!("--metrics-listen '{addr}': {e}; use ADDR:PORT or off")
                }),
            };
            match metrics.and_then(|m| Ok((m, store.location(&data_dir)?))) {
                Err(e) => Err(e),
                Ok((metrics, location)) => {
                    let shutdown = CancellationToken::new();
                    let on_signal = shutdown.clone();
                    tokio::spawn(async move {
                        lab_proto::shutdown::wait_for_signal().await;
                        on_signal.cancel();
                    });
                    let options = ServeOptions {
                        heartbeat_interval,
                        node_cert_ttl,
                        jobs: lab_coordinator::jobs::JobSettings {
                            output_limit_per_task: task_output_limit,
                            retention_age: job_retention,
                            retention_count: job_retention_count,
                            ..Default::default()
                        },
                        store_cache_bytes: store_cache_mib * 1024 * 1024,
                        min_free_bytes: min_free_mib.saturating_mul(1024 * 1024),
                        connections: lab_coordinator::accept::ConnectionLimits {
                            unauth_idle: unauth_idle_timeout,
                            max_unauth: max_unauth_connections as usize,
                            max_unauth_per_source: max_unauth_per_source as usize,
                            ..Default::default()
                        },
                        store: Some(location),
                        leader_ttl,
                    };
                    lab_coordinator::run(DataDir::new(data_dir), listen, metrics, options, shutdown)
                        .await
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // 2: the arguments or the data directory's state are wrong, retrying cannot help
            let usage = e
                .downcast_ref::<lab_coordinator::init::UsageError>()
                .is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// A lease TTL: whole seconds, at least 2 (etcd's leases count seconds; a renewal every
/// TTL/3 needs room).
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d.subsec_nanos() != 0 || d.as_secs() < 2 {
        return Err(format!("'{text}' must be whole seconds, at least 2s"));
    }
    Ok(d)
}

/// `join`: the store must be etcd.
async fn join_command(
    data_dir: std::path::PathBuf,
    advertise: String,
    join_key: std::path::PathBuf,
    sans: Vec<String>,
    store: StoreArgs,
) -> anyhow::Result<()> {
    let Location::Etcd(etcd) = store.location(&data_dir)? else {
        return Err(lab_coordinator::init::UsageError(
            "join needs the fleet's etcd store: --store etcd://HOST:PORT[,HOST:PORT…]".into(),
        )
        .into());
    };
    let opts = lab_coordinator::init::join::JoinOptions {
        data_dir: DataDir::new(&data_dir),
        etcd,
        advertise,
        extra_sans: sans,
        join_key,
    };
    let servers = lab_coordinator::init::join::join(&opts).await?;
    println!(
        "joined: {} is a coordinator of this fleet (start it with 'lab-coordinator serve {} --data-dir {}')\nadmin labctl config: {} (servers {})",
        opts.advertise,
        store.shown(),
        data_dir.display(),
        opts.data_dir.labctl_config().display(),
        servers.join(", ")
    );
    Ok(())
}

/// `store export` / `store import`.
async fn store_command(command: StoreCommand) -> anyhow::Result<()> {
    let (summary, verb, file) = match command {
        StoreCommand::Export {
            file,
            data_dir,
            store,
        } => {
            let location = store.location(&data_dir)?;
            if let Location::Sled(dir) = &location {
                if !dir.join("db").is_file() {
                    return Err(lab_coordinator::init::UsageError(format!(
                        "there is no sled store to export at {} (give the coordinator's --data-dir, or --store etcd://… for an etcd store)",
                        dir.display()
                    ))
                    .into());
                }
            }
            (
                export::export_store(&location, &file).await?,
                "exported",
                file,
            )
        }
        StoreCommand::Import {
            file,
            data_dir,
            store,
        } => {
            let location = store.location(&data_dir)?;
            (
                export::import_store(&location, &file).await?,
                "imported and checked",
                file,
            )
        }
    };
    let records: u64 = summary.values().map(|t| t.records).sum();
    println!("{verb} {records} records ({})", file.display());
    for (tree, t) in &summary {
        println!("  {tree}: {} records, sha256 {}", t.records, t.digest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings `/etc/default/lab-coordinator` (deploy/debian) shows, commented out.
    fn default_file_settings() -> Vec<String> {
        include_str!("../../deploy/debian/lab-coordinator/default")
            .lines()
            .filter_map(|l| l.trim_start_matches('#').split_once('='))
            .map(|(name, _)| name.to_owned())
            .filter(|name| name.starts_with("LAB_"))
            .collect()
    }

    #[test]
    fn the_packaged_default_file_names_the_settings_serve_reads() {
        let cli = Cli::command();
        let serve = cli
            .find_subcommand("serve")
            .unwrap_or_else(|| panic!("no serve command"));
        let mut read: Vec<String> = serve
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
