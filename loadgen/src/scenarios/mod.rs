//! The scenarios and what they share: a coordinator child with enrolled simulated identities
//! ([`SimEnv`]), and the [`Report`] every scenario adds its [`Section`] to.
//!
//! A scenario function measures and returns figures; it does not print or write files itself.

pub mod footprint;
pub mod jobs;
pub mod real;
pub mod restart;
pub mod storm;
pub mod ui;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::Admin;
use crate::cli::{BaseArgs, SimArgs};
use crate::coordinator::{CoordinatorOptions, CoordinatorProc};
use crate::enroll::{self, Identities};
use crate::procstat::ProcSample;
use crate::report;
use crate::sim::{self, Fleet, FleetOptions};

/// The figures of one scenario.
pub struct Section {
    /// Scenario name (JSON key).
    pub name: String,
    /// Table title.
    pub title: String,
    /// Table rows.
    pub rows: Vec<(String, String)>,
    /// Machine-readable figures.
    pub json: Value,
}

impl Section {
    /// An empty section.
    pub fn new(name: &str, title: impl Into<String>) -> Self {
        Section {
            name: name.to_owned(),
            title: title.into(),
            rows: Vec::new(),
            json: json!({}),
        }
    }

    /// Adds a table row.
    pub fn row(&mut self, measure: impl Into<String>, value: impl Into<String>) {
        self.rows.push((measure.into(), value.into()));
    }

    /// Sets a JSON field.
    pub fn set(&mut self, key: &str, value: impl serde::Serialize) {
        if let Value::Object(map) = &mut self.json {
            map.insert(
                key.to_owned(),
                serde_json::to_value(value).unwrap_or(Value::Null),
            );
        }
    }
}

/// The run's output: tables on stdout as sections finish, and one JSON file rewritten after
/// each, so figures of finished scenarios survive a later failure.
pub struct Report {
    path: PathBuf,
    doc: Value,
}

impl Report {
    /// A report for `scenario`, written to `path`.
    pub fn new(path: PathBuf, scenario: &str, command: &str, extra: Value) -> Self {
        let mut doc = json!({
            "scenario": scenario,
            "command": command,
            "machine": crate::procstat::machine(),
            "results": {},
        });
        if let (Value::Object(map), Value::Object(more)) = (&mut doc, extra) {
            map.extend(more);
        }
        Report { path, doc }
    }

    /// Prints `section` and writes the JSON so far.
    pub fn add(&mut self, section: Section) -> anyhow::Result<()> {
        report::print_table(&section.title, &section.rows);
        if let Some(Value::Object(results)) = self.doc.get_mut("results") {
            results.insert(section.name, section.json);
        }
        report::write_json(&self.path, &self.doc)
    }
}

/// SHA-256 of a file (the binaries measured), hex; empty when unreadable.
pub fn file_sha256(path: &Path) -> String {
    use sha2::Digest as _;
    std::fs::read(path)
        .map(|b| hex::encode(sha2::Sha256::digest(&b)))
        .unwrap_or_default()
}

/// The data directory to use: the given one, or a fresh temporary one (kept alive by the guard).
pub fn data_dir(base: &BaseArgs) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match &base.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            Ok((d.clone(), None))
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("lab-loadgen-").tempdir()?;
            Ok((tmp.path().join("coordinator"), Some(tmp)))
        }
    }
}

/// A coordinator with N enrolled simulated identities, started fresh.
pub struct SimEnv {
    /// The coordinator child.
    pub coord: CoordinatorProc,
    /// Admin client.
    pub admin: Admin,
    /// The identities.
    pub ids: Identities,
    /// The coordinator right after its (re)start, before any agent connected.
    pub before_agents: ProcSample,
    /// The arguments.
    pub args: SimArgs,
    _tmp: Option<tempfile::TempDir>,
}

impl SimEnv {
    /// Inits (if new) and starts the coordinator, enrolls the missing identities, then restarts
    /// the coordinator so that every measurement starts from a process no agent has touched.
    pub async fn start(args: &SimArgs, bin_dir: &Path) -> anyhow::Result<SimEnv> {
        let (dir, tmp) = data_dir(&args.base)?;
        let mut coord = CoordinatorProc::prepare(CoordinatorOptions {
            bin_dir: bin_dir.to_owned(),
            data_dir: dir.clone(),
            heartbeat: args.base.heartbeat_interval,
            log_level: args.base.coordinator_log.clone(),
            env: args.base.coordinator_env.clone(),
        })
        .await?;
        coord.start().await?;
        let admin = Admin::connect(&coord.labctl_config()).await?;
        let ids = enroll::ensure(
            &admin,
            &dir.join("loadgen"),
            args.agents,
            args.enroll_concurrency,
            args.base.time_limit,
        )
        .await?;
        drop(admin);
        coord.stop(Duration::from_secs(30)).await?;
        coord.start().await?;
        let admin = Admin::connect(&coord.labctl_config()).await?;
        // Let start-up work (retention sweep, first ticks) pass before the baseline.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before_agents = coord.sample()?;
        Ok(SimEnv {
            coord,
            admin,
            ids,
            before_agents,
            args: args.clone(),
            _tmp: tmp,
        })
    }

    /// How the fleet reaches the coordinator.
    pub fn fleet_options(&self) -> FleetOptions {
        let sources = match self.args.sources {
            0 => self.args.agents.div_ceil(1000),
            n => n,
        };
        FleetOptions {
            addr: self.coord.addr.clone(),
            ca_pem: self.admin.ca_pem.clone(),
            sources: sim::loopback_sources(sources),
            reconnect_base: Duration::from_millis(500),
            reconnect_cap: self.args.reconnect_max,
        }
    }

    /// Enrollment figures for the report.
    pub fn enroll_section(&self) -> Section {
        let mut s = Section::new("enroll", "enrollment (token flow: CreateToken + Enroll)");
        s.row("agents", self.ids.list.len().to_string());
        s.row("enrolled in this run", self.ids.enrolled_now.to_string());
        if self.ids.enrolled_now > 0 {
            s.row(
                "enroll time",
                format!("{:.1} s", self.ids.enroll_time.as_secs_f64()),
            );
            s.row(
                "enroll rate",
                format!(
                    "{:.0} agents/s ({} workers)",
                    self.ids.rate(),
                    self.args.enroll_concurrency
                ),
            );
        }
        s.set("agents", self.ids.list.len());
        s.set("enrolled_now", self.ids.enrolled_now);
        s.set("enroll_secs", self.ids.enroll_time.as_secs_f64());
        s.set("enroll_per_sec", self.ids.rate());
        s.set("workers", self.args.enroll_concurrency);
        s
    }

    /// Stops the coordinator.
    pub async fn finish(mut self, fleet: Option<Fleet>) -> anyhow::Result<()> {
        if let Some(f) = fleet {
            f.stop().await;
        }
        self.coord.stop(Duration::from_secs(30)).await
    }
}
