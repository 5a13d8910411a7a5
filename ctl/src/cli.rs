//! The labctl command line (clap derive): one enum of commands, each with its flags and env vars.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cmd::jobs::spec::{parse_batch, parse_env, Batch};
use crate::cmd::jobs::RunFormat;
use crate::output::Format;

/// Help heading of the flags every command takes, listed apart from each command's own.
const GLOBAL: &str = "Global options";

/// labfleet operator CLI.
#[derive(Debug, Parser)]
#[command(name = "labctl", version, about = "labfleet operator CLI")]
pub struct Cli {
    /// labctl config file (default ~/.config/labctl/config.toml)
    #[arg(long, global = true, env = "LABCTL_CONFIG", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Context in the config file (default: its current-context)
    #[arg(long, global = true, env = "LABCTL_CONTEXT", help_heading = GLOBAL)]
    pub context: Option<String>,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// labctl commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List nodes
    ///
    /// The table fits 80 columns (long label lists end in '…'); -o wide adds the OS version,
    /// virtualization, last contact and agent version and shows every label; -o name prints
    /// only the names. STATUS is the derived label 'status' (online, offline, revoked), so
    /// '-l status=offline' lists the nodes that are down.
    #[command(
        after_help = "Examples:\n  labctl nodes\n  labctl nodes -l 'os=debian,role in (storage,k3s)' -o wide\n  labctl nodes -l status=offline -o name\n  labctl nodes -w                      # redraw on change, Ctrl-C to stop"
    )]
    Nodes {
        /// Selector, e.g. 'os=debian,role in (storage,k3s),facts.hardware.memory.total_bytes>=16e9'
        #[arg(short = 'l', long = "selector", default_value = "")]
        selector: String,
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        /// Keep watching: print again when a node's status, labels or version change (every 2s)
        #[arg(short, long)]
        watch: bool,
    },
    /// Backup status per node and backup: last success, age, size, snapshot, drill, health
    #[command(
        after_help = "Examples:\n  labctl backups\n  labctl backups -l role=nas --fail-on-red\n  labctl backups forget n1            # a removed node's records, so it no longer shows red"
    )]
    Backups {
        /// Instead of listing: forget the backup records of a node
        #[command(subcommand)]
        action: Option<BackupsAction>,
        /// Only nodes matching this selector
        #[arg(short = 'l', long = "selector", default_value = "")]
        selector: String,
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        /// Exit with 1 when any listed backup is red
        #[arg(long, env = "LAB_BACKUPS_FAIL_ON_RED")]
        fail_on_red: bool,
    },
    /// The lab as a graph: hypervisors, their guests and the nodes inside, clusters and pools
    ///
    /// Joined by the coordinator from facts: a Proxmox guest's smbios1 UUID is the DMI product
    /// UUID of the node inside it; k3s nodes group by cluster token, Ceph by fsid, PostgreSQL
    /// standbys under their primary. Lines starting with '!' are alerts, '?' problems the join
    /// could not decide. Nodes on a hypervisor carry the derived label 'hypervisor=<pve node>'.
    #[command(
        after_help = "Examples:\n  labctl topology\n  labctl topology --under pve1\n  labctl topology -o dot | dot -Tpng > lab.png\n  labctl topology -o svg > lab.svg     # says on stderr whether Graphviz drew it\n  labctl nodes -l hypervisor=pve1"
    )]
    Topology {
        /// Only this hypervisor's subtree (its enrolled or PVE node name)
        #[arg(long, env = "LAB_TOPOLOGY_UNDER")]
        under: Option<String>,
        /// Output format
        #[arg(short, long, value_enum, default_value = "tree")]
        output: crate::cmd::topology::TopologyFormat,
    },
    /// Set (KEY=VALUE) or remove (KEY-) operator labels of a node
    #[command(
        after_help = "Examples:\n  labctl label n1 role=nas site=attic\n  labctl label n1 site-"
    )]
    Label {
        /// Node name
        node: String,
        /// KEY=VALUE to set, KEY- to remove (node, status, hostname, os, os-version, arch, virt
        /// and hypervisor are derived by the coordinator and cannot be set)
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
    /// The coordinators: each one's address, role (leader, standby, down), store, since when
    /// and version, and the last leader change
    ///
    /// Any coordinator answers it, a standby too (every other command a standby answers with
    /// the leader's address), so it works whichever coordinator the context names. With sled
    /// there is one coordinator, always the leader. A coordinator is down when it joined the
    /// fleet (init or join) but has no liveness record in etcd: stopped, dead or cut off from
    /// etcd for longer than its --leader-ttl.
    #[command(
        after_help = "Examples:\n  labctl status\n  labctl status -o json | jq -r '.coordinators[] | select(.role == \"leader\") | .address'"
    )]
    Status {
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show who this context authenticates as
    Whoami,
    /// Renew this context's certificate (same as 'labctl user renew')
    Login {
        /// Lifetime of the new certificate
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Run a command on every node the selector matches and stream its output
    ///
    /// While tasks wait for offline nodes, a line on stderr names them and the time left until
    /// their deadline (--deadline); Ctrl-C detaches and the job keeps running.
    ///
    /// Exit status: 0 all tasks succeeded, 1 any task did not succeed (or no node matched),
    /// 2 usage error, 3 coordinator unreachable, 130 interrupted (the job keeps running).
    #[command(
        after_help = "Examples:\n  labctl run -- uptime\n  labctl run -l role=nas --batch 25% --max-failures 1 -- sh -c 'apt-get -y upgrade'\n  labctl run --detach --timeout 10m -l node=n1 -- restic check\n  labctl run --online-only -l role=nas -- df -h /srv      # skip the nodes that are offline now"
    )]
    Run(RunArgs),
    /// Apply spec files (YAML jobs and schedules) and follow the jobs one after another
    ///
    /// Spec format: docs/spec.md in the labfleet repository (every document kind and field, with
    /// types, defaults and complete examples).
    ///
    /// Exit status: 0 all tasks of all jobs succeeded, 1 any task did not succeed, 2 usage error
    /// or a bad spec file (nothing is submitted), 3 coordinator unreachable, 130 interrupted.
    #[command(
        after_help = "Examples:\n  labctl apply -f site.yaml\n  labctl apply -f site.yaml --check\n  labctl apply -f site.yaml -l site=attic   # only the nodes of both selectors\n  cat job.yaml | labctl apply -f - -o json"
    )]
    Apply(ApplyArgs),
    /// List jobs, newest first
    ///
    /// The table fits 80 columns (a long command ends in '…'); -o wide adds who submitted it
    /// and its selector and shows the whole command; -o name prints only the ids.
    #[command(
        after_help = "Examples:\n  labctl jobs\n  labctl jobs -l role=nas              # jobs with a task on a node matching role=nas\n  labctl jobs -w                       # redraw on change, Ctrl-C to stop\n  labctl jobs -o name | head -1"
    )]
    Jobs {
        /// Only jobs with a task on a node this selector matches now
        #[arg(short = 'l', long = "selector", default_value = "")]
        selector: String,
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
        /// Keep watching: print again when a job's state or task counts change (every 2s)
        #[arg(short, long)]
        watch: bool,
    },
    /// One job: show, logs, cancel
    Job {
        /// What to do with it
        #[command(subcommand)]
        action: JobAction,
    },
    /// Schedules: cron expressions that submit a job each time they fire
    Schedule {
        /// What to do
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// Secrets for the nodes: the age recipients to encrypt SOPS files to
    Secrets {
        /// What to do
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Serve the web dashboard on this machine, with this context's identity and role
    ///
    /// Prints a URL holding a random secret made for this run (the only way in: requests
    /// without it get 401). Every page asks the coordinator with this context's certificate, so
    /// a viewer sees everything and can change nothing. Ctrl-C stops it.
    #[command(
        after_help = "Examples:\n  labctl ui                            # http://127.0.0.1:PORT/?token=… on stdout\n  labctl ui --open --listen 127.0.0.1:8080\n  labctl --context viewer ui"
    )]
    Ui {
        /// Address to listen on; port 0 picks a free one. Non-loopback needs --allow-remote
        #[arg(long, env = "LAB_UI_LISTEN", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Allow a non-loopback --listen address: whoever reaches it with the URL acts with this
        /// context's identity
        #[arg(long, env = "LAB_UI_ALLOW_REMOTE")]
        allow_remote: bool,
        /// Open the URL in the browser ($BROWSER, else xdg-open)
        #[arg(long, env = "LAB_UI_OPEN")]
        open: bool,
    },
    /// The fleet as an inventory for other tools (Ansible)
    Inventory {
        /// Which tool's format
        #[command(subcommand)]
        action: crate::cmd::inventory::InventoryAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  labctl completion bash > /etc/bash_completion.d/labctl\n  labctl completion zsh > \"${fpath[1]}/_labctl\"\n  labctl completion fish > ~/.config/fish/completions/labctl.fish"
    )]
    Completion {
        /// Shell to complete for
        shell: clap_complete::Shell,
    },
    /// Write man pages (labctl.1 and one per command) into a directory, for packaging
    #[command(hide = true)]
    Man {
        /// Directory to write into (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
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
    #[command(
        after_help = "Its backup records stay (and show red once overdue) unless --forget-backups is given\nor `labctl backups forget NODE` is run later."
    )]
    Remove {
        /// Node name
        name: String,
        /// Also forget the node's backup records (`labctl backups forget NODE`)
        #[arg(long)]
        forget_backups: bool,
    },
}

/// `labctl secrets ...`
#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Print the age recipients of the matching nodes (each node's agent made its own key)
    ///
    /// Encrypt a SOPS file to exactly the nodes that need it (plus your own key, --add) and
    /// point a spec at it with contentFrom/envFrom/passwordFrom; only those nodes can decrypt it.
    /// Nodes whose agent predates node age keys have no recipient yet (left out, with a note).
    ///
    /// Exit status: 0 printed, 1 no node matched or nothing to print, 2 usage error, 3
    /// coordinator unreachable.
    #[command(
        after_help = "Examples:\n  labctl secrets recipients -l role=db\n  labctl secrets recipients -l role=db -o sops --add \"$(age-keygen -y ~/.config/sops/age/keys.txt)\" > .sops.yaml\n  sops encrypt --age \"$(labctl secrets recipients -l node=n1 | paste -sd,)\" db.yaml > secrets/db.yaml"
    )]
    Recipients {
        /// Only nodes matching this selector
        #[arg(
            short = 'l',
            long = "selector",
            default_value = "",
            env = "LAB_SECRETS_SELECTOR"
        )]
        selector: String,
        /// Output: plain (one per line), table, json, yaml, or sops (a .sops.yaml creation rule)
        #[arg(
            short,
            long,
            value_enum,
            default_value = "plain",
            env = "LAB_SECRETS_OUTPUT"
        )]
        output: crate::cmd::secrets::RecipientsFormat,
        /// Also this recipient, e.g. your own age key (repeatable; plain and sops output)
        #[arg(
            long,
            value_name = "AGE1…",
            env = "LAB_SECRETS_ADD",
            value_delimiter = ','
        )]
        add: Vec<String>,
        /// path_regex of the creation rule (-o sops); default: the rule matches every file
        #[arg(long, value_name = "REGEX", env = "LAB_SECRETS_PATH_REGEX")]
        path_regex: Option<String>,
    },
}

/// `labctl backups ...`
#[derive(Debug, Subcommand)]
pub enum BackupsAction {
    /// Forget the backup records of a node (all, or backup NAME), e.g. of a removed node, so
    /// they no longer show red (admin)
    #[command(
        after_help = "Examples:\n  labctl backups forget n1\n  labctl backups forget n1 home\n\nExit status 2 when NODE has no such backup records."
    )]
    Forget {
        /// Node name
        node: String,
        /// Only the backup of this name
        name: Option<String>,
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
    /// Make an unused token unusable
    Revoke {
        /// Token id (first column of 'labctl token list')
        id: String,
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
        /// Where to write their config (mode 0600; checked before the user is created)
        #[arg(long)]
        out: PathBuf,
        /// Lifetime of their certificate (renew with 'labctl user renew')
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// List operators
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Revoke every certificate of a user and remove them (their open streams end)
    Delete {
        /// User name
        name: String,
    },
    /// Revoke every certificate of a user (they stay listed; their open streams end)
    Revoke {
        /// User name
        name: String,
    },
    /// Change a user's role (effective at once; their open streams end)
    SetRole {
        /// User name
        name: String,
        /// viewer, operator or admin
        role: String,
    },
    /// Replace this context's certificate with a new one (needs a still-valid certificate);
    /// the new key and certificate are written into the labctl config
    Renew {
        /// Lifetime of the new certificate
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

/// `labctl run [FLAGS] -- CMD [ARG]...`
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Selector of the target nodes (empty = every node)
    #[arg(short = 'l', long = "selector", default_value = "")]
    pub selector: String,
    /// Target only the nodes online at submit (adds 'status=online' to the selector), so the
    /// job does not wait for offline nodes
    #[arg(long, env = "LAB_RUN_ONLINE_ONLY")]
    pub online_only: bool,
    /// Tasks in flight at once: N nodes or P% of the matched nodes (default: all at once)
    #[arg(long, value_name = "N|P%", env = "LAB_RUN_BATCH", value_parser = parse_batch)]
    pub batch: Option<Batch>,
    /// Start no further task once this many failed (0 = never stop)
    #[arg(
        long,
        value_name = "N",
        env = "LAB_RUN_MAX_FAILURES",
        default_value_t = 0
    )]
    pub max_failures: u32,
    /// Run this many tasks first; the rest start only when all of them succeeded
    #[arg(long, value_name = "N", env = "LAB_RUN_CANARY", default_value_t = 0)]
    pub canary: u32,
    /// Per-task timeout, e.g. 30s, 10m (default: none)
    #[arg(long, value_name = "DUR", env = "LAB_RUN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// How long tasks of offline nodes may wait before they expire, e.g. 2h (default: 1h)
    #[arg(long, value_name = "DUR", env = "LAB_RUN_DEADLINE", value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,
    /// Environment variable for the command, K=V (repeatable)
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Working directory on the node (default: the agent's, /)
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Run as this user on the node (default: the agent's user)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Submit, print only the job id, and exit
    #[arg(long)]
    pub detach: bool,
    /// Output: text (lines prefixed with the node) or json (NDJSON, one object per job event)
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: RunFormat,
    /// The command and its arguments (no shell; use `sh -c '...'` for one)
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `labctl apply -f FILE [--check] [--detach] [-o text|json]`
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Spec file: YAML, one or more `---`-separated documents; `-` reads stdin (repeatable)
    #[arg(
        short = 'f',
        long = "file",
        visible_alias = "filename",
        value_name = "FILE",
        required = true,
        env = "LAB_APPLY_FILE"
    )]
    pub files: Vec<PathBuf>,
    /// Check mode: config tasks report what would change (with diffs) and change nothing; exec,
    /// container and backup jobs are not submitted, labctl says what they would run
    #[arg(long, env = "LAB_APPLY_CHECK")]
    pub check: bool,
    /// Submit, print only the job ids, and exit
    #[arg(long)]
    pub detach: bool,
    /// Output: text (lines prefixed with the node, then per-resource results) or json (NDJSON)
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: RunFormat,
    /// Narrow every document's selector (Jobs and the jobs of Schedules): a node must match
    /// both, e.g. -l site=attic to roll a site-wide spec out to one site first
    #[arg(
        short = 'l',
        long = "selector",
        default_value = "",
        env = "LAB_APPLY_SELECTOR"
    )]
    pub selector: String,
}

/// `labctl job ...`
#[derive(Debug, Subcommand)]
pub enum JobAction {
    /// A job and its tasks
    Show {
        /// Job id, or a unique prefix of one (as in 'labctl jobs')
        id: String,
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Stored output of a job ("NODE: line"); -f follows until the job is done
    #[command(
        after_help = "Examples:\n  labctl job logs 19a1f0c2e3b4d5e6f70\n  labctl job logs -f --node n2 19a1f0c2e3b4d5e6f70"
    )]
    Logs {
        /// Job id, or a unique prefix of one (as in 'labctl jobs')
        id: String,
        /// Keep following until the job is done (exit status as for `labctl run`)
        #[arg(short, long)]
        follow: bool,
        /// Only this node
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Output: text or json (NDJSON, as `labctl run -o json`)
        #[arg(short, long, value_enum, default_value = "text")]
        output: RunFormat,
    },
    /// Ask the coordinator to cancel a job's unfinished tasks
    Cancel {
        /// Job id, or a unique prefix of one (as in 'labctl jobs')
        id: String,
    },
}

/// `labctl schedule ...`
#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Create a schedule that submits the job of a spec file each time its cron expression fires
    ///
    /// Exit status: 0 created, 2 a bad name, expression, time zone, jitter or spec file
    /// (nothing is created), 1 refused (e.g. the name exists), 3 coordinator unreachable.
    #[command(
        after_help = "Examples:\n  labctl schedule create nightly --cron '0 3 * * *' --tz Europe/Berlin --jitter 10m -f backup.yaml\n  labctl schedule create tick --cron '*/30 * * * * *' -f uptime.yaml"
    )]
    Create(ScheduleCreateArgs),
    /// List schedules with their next and last run
    List {
        /// Output format
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// One schedule with its job
    Show {
        /// Schedule name
        name: String,
        /// Output format (table prints YAML)
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Format,
    },
    /// Stop firing until resumed
    Pause {
        /// Schedule name
        name: String,
    },
    /// Fire again, from the next cron time after now (paused firings are not made up)
    Resume {
        /// Schedule name
        name: String,
    },
    /// Delete a schedule (the jobs it submitted stay)
    Delete {
        /// Schedule name
        name: String,
    },
}

/// What to do with firings missed while the coordinator was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissedArg {
    /// Do not make them up
    Skip,
    /// Submit one job for all of them when the coordinator is back
    RunOnce,
}

/// `labctl schedule create NAME --cron EXPR [--tz ZONE] [--jitter DUR] [--missed POLICY] -f FILE`
#[derive(Debug, clap::Args)]
pub struct ScheduleCreateArgs {
    /// Schedule name: lowercase letters, digits and '-'
    pub name: String,
    /// Cron expression: 5 fields (minute hour day month weekday) or 6 (seconds first)
    #[arg(long, value_name = "EXPR")]
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC), e.g. Europe/Berlin
    #[arg(long, value_name = "ZONE", env = "LAB_SCHEDULE_TZ")]
    pub tz: Option<String>,
    /// Delay each firing by a random duration up to this, e.g. 30s, 5m (default none)
    #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
    pub jitter: Option<Duration>,
    /// Firings missed while the coordinator was down: skip them, or run one job for them
    #[arg(long, value_enum, default_value = "skip")]
    pub missed: MissedArg,
    /// Spec file with the one Job document each firing submits (as for `labctl apply`)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}
