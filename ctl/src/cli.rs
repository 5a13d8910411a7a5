//! The labctl command line (clap derive): one enum of commands, each with its flags and env vars.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::output::Format;

/// labfleet operator CLI.
#[derive(Debug, Parser)]
#[command(name = "labctl", version, about = "labfleet operator CLI")]
pub struct Cli {
    /// labctl config file (default ~/.config/labctl/config.toml)
    #[arg(long, global = true, env = "LABCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Context in the config file (default: its current-context)
    #[arg(long, global = true, env = "LABCTL_CONTEXT")]
    pub context: Option<String>,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// labctl commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List nodes
    Nodes {
        /// Selector, e.g. 'os=debian,role in (storage,k3s),facts.hardware.memory.total_bytes>=16e9'
        #[arg(short = 'l', long = "selector", default_value = "")]
        selector: String,
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Set (KEY=VALUE) or remove (KEY-) operator labels of a node
    Label {
        /// Node name
        node: String,
        /// KEY=VALUE to set, KEY- to remove
        #[arg(required = true)]
        changes: Vec<String>,
    },
    /// One node: show, revoke, remove
    Node {
        /// What to do with it
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Enrollment tokens
    Token {
        /// What to do
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Operators and their roles
    User {
        /// What to do
        #[command(subcommand)]
        action: UserAction,
    },
    /// Show who this context authenticates as
    Whoami,
    /// Run a coordinator and a local agent in this process (state in --dir)
    Dev {
        /// State directory
        #[arg(long, env = "LAB_DEV_DIR", default_value = ".labfleet")]
        dir: PathBuf,
        /// Listen address on first start (later starts reuse the recorded one)
        #[arg(long, env = "LAB_DEV_LISTEN", default_value = "127.0.0.1:7443")]
        listen: std::net::SocketAddr,
        /// Heartbeat interval of the local coordinator
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        heartbeat_interval: Duration,
    },
}

/// `labctl node ...`
#[derive(Debug, Subcommand)]
pub enum NodeAction {
    /// All facts and state of one node
    Show {
        /// Node name
        name: String,
        /// Output format (table prints YAML)
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Revoke every certificate of a node and close its session
    Revoke {
        /// Node name
        name: String,
    },
    /// Revoke and forget a node (it can enroll again with a new token)
    Remove {
        /// Node name
        name: String,
    },
}

/// `labctl token ...`
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a one-time enrollment token (prints only the token)
    Create {
        /// Lifetime
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Bind the token to this node name
        #[arg(long)]
        name: Option<String>,
        /// Label for the enrolled node, KEY=VALUE (repeatable)
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List tokens (secrets are never shown)
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

/// `labctl user ...`
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an operator and write a labctl config for them
    Create {
        /// User name
        name: String,
        /// viewer, operator or admin
        #[arg(long)]
        role: String,
        /// Where to write their config (mode 0600)
        #[arg(long)]
        out: PathBuf,
    },
    /// List operators
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}
