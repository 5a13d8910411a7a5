//! `labctl apply -f FILE [--check] [--detach] [-o text|json]`: spec files (DESIGN §5a).
//!
//! Every document of every file is read, converted and checked before anything is submitted,
//! so a mistake in the third document submits nothing. Then the schedules are created or
//! replaced (not followed), and the jobs are submitted and followed one after another through
//! the same path as `labctl run` (`jobs::submit_and_follow`); the exit status is the worst of
//! them. This module owns the file format; it does not render events or talk to the
//! coordinator itself (schedules are created through `cmd::schedule`).

pub mod convert;
pub mod convert_backup;
pub mod depth;
pub mod doc;
pub mod doc_backup;
pub mod parse;
pub mod schedule;
pub mod sops_files;

use std::io::Read;
use std::path::Path;

use lab_proto::limits::MAX_MESSAGE_BYTES;
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{task_spec, JobSpec};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::cli::ApplyArgs;
use crate::cmd::jobs::{self, Submission};
use crate::failure::{self, Failure};
use parse::Document;
use schedule::SpecSchedule;

/// One `kind: Job` document, converted and ready to submit.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecJob {
    /// Where it came from: "FILE: document N".
    pub origin: String,
    /// `metadata.name`, if given.
    pub name: Option<String>,
    /// The wire spec.
    pub spec: JobSpec,
}

impl SpecJob {
    /// "motd (spec.yaml: document 1)" or "spec.yaml: document 1".
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.origin),
            None => self.origin.clone(),
        }
    }
}

/// The documents of `apply -f`, by kind, each in file order.
#[derive(Debug, Default)]
pub struct Loaded {
    /// `kind: Job` documents.
    pub jobs: Vec<SpecJob>,
    /// `kind: Schedule` documents.
    pub schedules: Vec<SpecSchedule>,
    /// With `--check`: what the jobs that cannot run in check mode would do (they are not
    /// submitted), in file order.
    pub explained: Vec<String>,
}

impl Loaded {
    /// Prints [`Loaded::explained`]; true when nothing else is left to submit.
    pub fn print_explained(&self) -> anyhow::Result<bool> {
        for line in &self.explained {
            crate::outln!("{}", crate::output::escape_line(line))?;
        }
        Ok(!self.explained.is_empty() && self.jobs.is_empty() && self.schedules.is_empty())
    }
}

/// Reads and converts every file of `apply -f`; `-` is stdin. Usage errors only.
pub fn load(args: &ApplyArgs) -> Result<Loaded, Failure> {
    let mut loaded = Loaded::default();
    let mut sops = sops_files::Files::default();
    for path in &args.files {
        let (name, text) = read(path)?;
        let base = sops_files::base_of(path);
        for document in parse::parse_documents(&name, &text)? {
            match document {
                Document::Job(mut job) => {
                    sops.fill(&mut job.spec, &base, &job.origin)?;
                    loaded.jobs.push(job);
                }
                Document::Schedule(mut s) => {
                    if let Some(job) = s.spec.job.as_mut() {
                        sops.fill(job, &base, &s.origin)?;
                    }
                    loaded.schedules.push(s);
                }
            }
        }
    }
    let narrow = crate::cmd::nodes::parse_selector(&args.selector)?;
    narrow_selectors(&mut loaded, &narrow);
    if let (true, Some(s)) = (args.check, loaded.schedules.first()) {
        return Err(Failure::Usage(format!(
            "--check works only for config jobs, but {} is a Schedule; drop --check",
            s.origin
        )));
    }
    if args.check {
        loaded.explained = set_check(&mut loaded.jobs);
    }
    for job in &loaded.jobs {
        preflight(job)?;
    }
    for s in &loaded.schedules {
        lab_coordinator::schedules::validate(&s.spec)
            .map_err(|e| Failure::Usage(format!("{}: {e}", s.origin)))?;
    }
    Ok(loaded)
}

/// `apply -l`: narrows the selector of every job and every schedule's job to the nodes that
/// also match `narrow` (the intersection); an empty `narrow` changes nothing.
pub fn narrow_selectors(loaded: &mut Loaded, narrow: &str) {
    let specs = loaded.jobs.iter_mut().map(|j| &mut j.spec).chain(
        loaded
            .schedules
            .iter_mut()
            .filter_map(|s| s.spec.job.as_mut()),
    );
    for spec in specs {
        spec.selector = crate::cmd::nodes::intersect(&spec.selector, narrow);
    }
}

/// Reads the one Job document of `labctl schedule create -f FILE`.
pub fn load_one_job(path: &Path) -> Result<SpecJob, Failure> {
    let (name, text) = read(path)?;
    let mut jobs = parse::parse(&name, &text)?;
    if jobs.len() != 1 {
        return Err(Failure::Usage(format!(
            "{name}: has {} Job documents; a schedule submits exactly one job",
            jobs.len()
        )));
    }
    let mut job = jobs.remove(0);
    sops_files::Files::default().fill(&mut job.spec, &sops_files::base_of(path), &job.origin)?;
    preflight(&job)?;
    Ok(job)
}

/// Reads a spec file (`-`: stdin), refusing one larger than a request to the coordinator may
/// be ([`MAX_MESSAGE_BYTES`]) before reading it whole.
fn read(path: &Path) -> Result<(String, String), Failure> {
    let (name, reader): (String, Box<dyn std::io::Read>) = if path.as_os_str() == "-" {
        ("<stdin>".into(), Box::new(std::io::stdin()))
    } else {
        let name = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| Failure::Usage(format!("cannot read spec file {name}: {e}")))?;
        (name, Box::new(file))
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Usage(format!("cannot read spec file {name}: {e}")))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Failure::Usage(too_large(&name)));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| Failure::Usage(format!("spec file {name} is not UTF-8 text: {e}")))?;
    Ok((name, text))
}

/// Why a spec file over [`MAX_MESSAGE_BYTES`] is refused.
fn too_large(name: &str) -> String {
    format!(
        "spec file {name} is larger than {} MiB, the most the coordinator accepts in one request; keep large content on the nodes and reference it by path",
        MAX_MESSAGE_BYTES / (1024 * 1024)
    )
}

/// `--check`: config jobs get `ConfigTask.check` (each resource says what would change); the
/// others (exec, container, backup) cannot be dry-run on a node, so they are taken out of `jobs`
/// and explained instead: what would run, and where. Returns the explanations in file order.
pub fn set_check(jobs: &mut Vec<SpecJob>) -> Vec<String> {
    let mut explained = Vec::new();
    jobs.retain_mut(|job| {
        if let Some(task_spec::Kind::Config(config)) =
            job.spec.task.as_mut().and_then(|t| t.kind.as_mut())
        {
            config.check = true;
            return true;
        }
        let (kind, what) = crate::cmd::jobs::view::describe(&job.spec);
        let targets = if job.spec.selector.is_empty() {
            "every node".to_owned()
        } else {
            format!("the nodes matching '{}'", job.spec.selector)
        };
        explained.push(format!(
            "{}: check mode: would run {kind} task '{what}' on {targets}; not submitted (only config tasks can report without changing anything)",
            job.label()
        ));
        false
    });
    explained
}

/// The coordinator's own checks (selector, paths, modes, names), run here as well so that a bad
/// document is reported before any document is submitted. The coordinator checks again.
fn preflight(job: &SpecJob) -> Result<(), Failure> {
    lab_coordinator::jobs::spec::validate(&job.spec)
        .map(|_| ())
        .map_err(|e| Failure::Usage(format!("{}: {e}", job.origin)))
}

/// Submits and follows `jobs` in order. One job behaves exactly like `labctl run`; with several,
/// a failed job is reported and the next one runs, while Ctrl-C or a lost coordinator stops.
pub async fn run(
    mut client: OperatorServiceClient<Channel>,
    loaded: Loaded,
    args: &ApplyArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Loaded {
        jobs, schedules, ..
    } = loaded;
    if jobs.is_empty() && schedules.is_empty() {
        return Err(Failure::Usage("no documents to apply".into()).into());
    }
    for s in schedules {
        crate::cmd::schedule::apply(&mut client, s.spec).await?;
    }
    if jobs.is_empty() {
        return Ok(());
    }
    let total = jobs.len();
    let mut failed: Vec<(String, anyhow::Error)> = Vec::new();
    let mut remaining = jobs.into_iter();
    while let Some(job) = remaining.next() {
        let label = job.label();
        let short = job.name.clone().unwrap_or_else(|| job.origin.clone());
        let submission = Submission {
            spec: job.spec,
            label: Some(short),
            detach: args.detach,
            format: args.output,
        };
        let Err(err) = jobs::submit_and_follow(&mut client, submission, &shutdown).await else {
            continue;
        };
        // Nobody reads the output any more: submit nothing further.
        if total == 1 || failure::closed_pipe(&err) {
            return Err(err);
        }
        let code = failure::exit_code(&err);
        if code == Failure::Interrupted(String::new()).exit_code()
            || code == Failure::Unreachable(String::new()).exit_code()
        {
            let skipped: Vec<String> = remaining.map(|j| j.label()).collect();
            if skipped.is_empty() {
                return Err(err);
            }
            return Err(with_note(
                err,
                &format!("; not submitted: {}", skipped.join(", ")),
            ));
        }
        crate::errln!("error: {label}: {err:#}");
        failed.push((label, err));
    }
    let Some(code) = failed.iter().map(|(_, e)| failure::exit_code(e)).max() else {
        return Ok(());
    };
    let names: Vec<&str> = failed.iter().map(|(l, _)| l.as_str()).collect();
    let message = format!(
        "{} of {total} job(s) did not succeed: {}",
        failed.len(),
        names.join(", ")
    );
    Err(match code {
        2 => Failure::Usage(message),
        _ => Failure::Failed(message),
    }
    .into())
}

/// `err` with `note` appended to its message, keeping its exit code.
fn with_note(err: anyhow::Error, note: &str) -> anyhow::Error {
    let failure = err.chain().find_map(|e| e.downcast_ref::<Failure>());
    match failure {
        Some(Failure::Failed(m)) => Failure::Failed(format!("{m}{note}")),
        Some(Failure::Usage(m)) => Failure::Usage(format!("{m}{note}")),
        Some(Failure::Unreachable(m)) => Failure::Unreachable(format!("{m}{note}")),
        Some(Failure::Interrupted(m)) => Failure::Interrupted(format!("{m}{note}")),
        None => Failure::Failed(format!("{err:#}{note}")),
    }
    .into()
}

#[cfg(test)]
mod spec_doc_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_backup;
