//! `labctl run`, `labctl jobs`, `labctl job show|logs|cancel`: submitting jobs, following their
//! event streams, and showing stored jobs. `labctl apply` submits through [`submit_and_follow`]
//! too. Decisions (spec building, line framing, rendering,
//! exit status) live in pure submodules; this file only calls the coordinator and prints.

pub mod events;
pub mod frame;
pub mod outcome;
pub mod prefix;
pub mod progress;
pub mod result;
pub mod result_backup;
pub mod result_nixos;
pub mod spec;
pub mod view;
pub mod waiting;
pub mod watch;

use std::time::{Duration, Instant};

use clap::ValueEnum;
use lab_proto::pages;
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{CancelJobRequest, GetJobRequest, JobSpec, SubmitJobRequest};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::cli::RunArgs;
use crate::failure::{from_status, Failure};
use crate::output::{self, Format};
use events::Printer;
use outcome::{Ending, Verdict};
use view::JobView;
use watch::{Target, Until};

/// `-o` of commands that stream job events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    /// Output lines prefixed with the node; task results and the summary on stderr.
    Text,
    /// NDJSON on stdout, one object per job event: seq, time, and one of task, output, done.
    Json,
}

/// `labctl run`: submit, then follow the job unless `--detach`.
pub async fn run(
    mut client: OperatorServiceClient<Channel>,
    args: RunArgs,
    selector: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let spec = spec::build(&args, selector)?;
    let submission = Submission {
        spec,
        label: None,
        detach: args.detach,
        format: args.output,
    };
    submit_and_follow(&mut client, submission, &shutdown).await
}

/// One job to submit and how to follow it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// What to submit.
    pub spec: JobSpec,
    /// Shown after the job id in text mode ("job ID (LABEL) on N node(s)"), e.g. a spec name.
    pub label: Option<String>,
    /// Print only the job id and return without following.
    pub detach: bool,
    /// Text or NDJSON.
    pub format: RunFormat,
}

/// Whether `spec` is a config task, whose per-resource output lines the results repeat.
fn is_config(spec: &JobSpec) -> bool {
    matches!(
        spec.task.as_ref().and_then(|t| t.kind.as_ref()),
        Some(lab_proto::v1::task_spec::Kind::Config(_))
    )
}

/// Submits a job and, unless detached, follows it to the end: live output, task results, the
/// summary, and the exit status of `labctl run` (see [`outcome::exit_code`]).
pub async fn submit_and_follow(
    client: &mut OperatorServiceClient<Channel>,
    submission: Submission,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let Submission {
        spec,
        label,
        detach,
        format,
    } = submission;
    let selector = spec.selector.clone();
    let check = view::is_check(&spec);
    let config = is_config(&spec);
    let started = Instant::now();
    let submitted = tokio::select! {
        _ = shutdown.cancelled() => return Err(Failure::Interrupted("interrupted while submitting; the job may exist, see 'labctl jobs'".into()).into()),
        r = client.submit_job(SubmitJobRequest { spec: Some(spec) }) => r,
    };
    let response = submitted.map_err(from_status)?.into_inner();
    let job_id = response.job_id;
    if detach {
        crate::outln!("{job_id}")?;
    }
    if response.nodes.is_empty() {
        return Err(Failure::Failed(format!(
            "no node matches selector '{selector}'; job {job_id} has no tasks; check the selector with 'labctl nodes -l ...'"
        ))
        .into());
    }
    if detach {
        return Ok(());
    }
    if format == RunFormat::Text {
        let label = label.map(|l| format!(" ({l})")).unwrap_or_default();
        crate::errln!("job {job_id}{label} on {} node(s)", response.nodes.len());
    }
    let target = Target {
        job_id: job_id.clone(),
        node: String::new(),
    };
    let mut printer = Printer::new(format)
        .with_color(result::use_color())
        .with_stderr_color(output::use_color_stderr())
        .with_results_only(config)
        .with_progress(progress::Mode::detect());
    // Text mode says what it waits for when nodes are offline (JSON scripts get task events).
    let stop_waiting = shutdown.child_token();
    let waiting = (format == RunFormat::Text).then(|| {
        tokio::spawn(waiting::watch(
            client.clone(),
            job_id.clone(),
            stop_waiting.clone(),
        ))
    });
    let ending = watch::follow(client, &target, &mut printer, Until::Done, shutdown).await;
    stop_waiting.cancel();
    if let Some(waiting) = waiting {
        let _ = waiting.await;
    }
    let ending = ending?;
    printer.finish(&mut std::io::stdout(), &mut std::io::stderr())?;
    conclude(&ending, &job_id, started.elapsed(), format, check)
}

/// Prints the summary (text) and turns how following ended into the command's result.
fn conclude(
    ending: &Ending,
    job_id: &str,
    elapsed: Duration,
    format: RunFormat,
    check: bool,
) -> anyhow::Result<()> {
    match ending {
        Ending::Done(done) => {
            if format == RunFormat::Text {
                crate::errln!("{}", events::summary_line(done, elapsed, job_id, check));
            }
            match outcome::verdict(done) {
                Verdict::Succeeded => Ok(()),
                Verdict::NoTasks => Err(Failure::Failed(format!("job {job_id} has no tasks")).into()),
                Verdict::NotAllSucceeded => Err(Failure::Failed(format!(
                    "{} of {} task(s) did not succeed; see 'labctl job show {job_id}'",
                    done.failed + done.other,
                    done.succeeded + done.failed + done.other
                ))
                .into()),
            }
        }
        Ending::Caught => Ok(()),
        Ending::Interrupted => Err(Failure::Interrupted(format!(
                "detached; job {job_id} keeps running. Re-attach: labctl job logs -f {job_id}"
            )).into()),
        Ending::Unreachable(reason) => Err(Failure::Unreachable(format!(
            "lost the event stream of job {job_id}: {reason}; the job keeps running, re-attach with 'labctl job logs -f {job_id}'"
        ))
        .into()),
    }
}

/// `labctl jobs [-l SELECTOR] [-w]`: newest first; with a selector only the jobs with a task on
/// a node it matches now; with `watch`, again whenever a job's state or task counts change.
pub async fn list(
    mut client: OperatorServiceClient<Channel>,
    selector: &str,
    format: Format,
    watch: Option<CancellationToken>,
) -> anyhow::Result<()> {
    let Some(shutdown) = watch else {
        let views = fetch_jobs(&mut client, selector).await?;
        if output::print_list(format, &views, |v| v.id.clone())? {
            return Ok(());
        }
        let table = view::jobs_table(&views, output::now_ms(), format, output::use_color());
        crate::outln!("{table}")?;
        if views.is_empty() && !selector.is_empty() {
            crate::errln!("no job has a task on a node that selector '{selector}' matches now");
        }
        return Ok(());
    };
    super::watch::run(shutdown, || {
        let mut client = client.clone();
        async move {
            let views = fetch_jobs(&mut client, selector).await?;
            let mut key: String = views
                .iter()
                .map(|v| format!("{} {} {} {}\n", v.id, v.state, v.succeeded, v.failed))
                .collect();
            let text = match format {
                Format::Table | Format::Wide => {
                    view::jobs_table(&views, output::now_ms(), format, output::use_color())
                }
                Format::Name => output::names(&views, |v| v.id.clone()),
                Format::Json => serde_json::to_string_pretty(&views)?,
                Format::Yaml => serde_yaml_ng::to_string(&views)?,
            };
            if format == Format::Name {
                key.clone_from(&text);
            }
            Ok((key, text))
        }
    })
    .await
}

/// The jobs, newest first; with a non-empty `selector` only those with a task on a node it
/// matches now ([`view::on_nodes`]).
async fn fetch_jobs(
    client: &mut OperatorServiceClient<Channel>,
    selector: &str,
) -> anyhow::Result<Vec<JobView>> {
    let jobs = pages::recent_jobs(client, 0).await.map_err(from_status)?;
    let mut views: Vec<JobView> = jobs.iter().map(JobView::from).collect();
    // The coordinator sends newest first; sort anyway so the promise holds.
    views.sort_by(|a, b| b.submitted.cmp(&a.submitted));
    if selector.is_empty() {
        return Ok(views);
    }
    let nodes: std::collections::BTreeSet<String> = pages::all_nodes(client, selector)
        .await
        .map_err(from_status)?
        .into_iter()
        .map(|n| n.name)
        .collect();
    Ok(view::on_nodes(views, &nodes))
}

/// `labctl job show ID`.
pub async fn show(
    mut client: OperatorServiceClient<Channel>,
    job_id: String,
    format: Format,
) -> anyhow::Result<()> {
    let job_id = prefix::job_id(&mut client, job_id).await?;
    let job = pages::whole_job(&mut client, &job_id)
        .await
        .map_err(from_status)?;
    let v = JobView::from(&job);
    if format == Format::Name {
        crate::outln!("{}", output::escape(&v.id))?;
    } else if !output::print_structured(format, &v)? {
        crate::outln!("{}", view::job_text(&v))?;
    }
    Ok(())
}

/// Options of `labctl job logs`.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    /// Keep following until the job is done.
    pub follow: bool,
    /// Only this node.
    pub node: Option<String>,
    /// Text or NDJSON.
    pub format: RunFormat,
}

/// `labctl job logs ID [-f] [--node NODE]`.
pub async fn logs(
    mut client: OperatorServiceClient<Channel>,
    job_id: String,
    options: LogsOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let job_id = prefix::job_id(&mut client, job_id).await?;
    let job = client
        .get_job(GetJobRequest {
            job_id: job_id.clone(),
            // Only the job's state and spec are used here, not its tasks.
            page_size: 1,
            ..Default::default()
        })
        .await
        .map_err(from_status)?
        .into_inner();
    let until = if options.follow || job.done {
        Until::Done
    } else {
        Until::Caught
    };
    let target = Target {
        job_id: job_id.clone(),
        node: options.node.unwrap_or_default(),
    };
    let check = job.spec.as_ref().is_some_and(view::is_check);
    let config = job.spec.as_ref().is_some_and(is_config);
    // Progress of a running job as it happens; stored progress is not replayed.
    let progress = if options.follow {
        progress::Mode::detect()
    } else {
        progress::Mode::Off
    };
    let mut printer = Printer::new(options.format)
        .with_color(result::use_color())
        .with_stderr_color(output::use_color_stderr())
        .with_results_only(config)
        .with_progress(progress);
    let ending = watch::follow(&mut client, &target, &mut printer, until, &shutdown).await?;
    printer.finish(&mut std::io::stdout(), &mut std::io::stderr())?;
    let elapsed = match &ending {
        Ending::Done(_) => {
            let end = if job.finished_unix_ms > 0 {
                job.finished_unix_ms
            } else {
                output::now_ms()
            };
            Duration::from_millis(u64::try_from(end - job.submitted_unix_ms).unwrap_or(0))
        }
        _ => Duration::ZERO,
    };
    match ending {
        Ending::Caught if options.format == RunFormat::Text => {
            crate::errln!(
                "job {job_id} is still running; follow it with 'labctl job logs -f {job_id}'"
            );
            Ok(())
        }
        Ending::Interrupted => Err(Failure::Interrupted(String::new()).into()),
        // Without -f, reading stored output succeeded whatever the tasks did.
        Ending::Done(done) if !options.follow => {
            if options.format == RunFormat::Text {
                crate::errln!("{}", events::summary_line(&done, elapsed, &job_id, check));
            }
            Ok(())
        }
        ending => conclude(&ending, &job_id, elapsed, options.format, check),
    }
}

/// `labctl job cancel ID`.
pub async fn cancel(
    mut client: OperatorServiceClient<Channel>,
    job_id: String,
) -> anyhow::Result<()> {
    let job_id = prefix::job_id(&mut client, job_id).await?;
    let mut job = client
        .cancel_job(CancelJobRequest { job_id })
        .await
        .map_err(from_status)?
        .into_inner();
    pages::complete_tasks(&mut client, &mut job)
        .await
        .map_err(from_status)?;
    let v = JobView::from(&job);
    if job.done {
        crate::outln!("job {} is already done ({})", v.id, v.state)?;
    } else {
        let open = v.tasks.len() - v.succeeded - v.failed;
        crate::outln!(
            "cancel requested for job {}; {open} of {} task(s) not finished yet (follow with 'labctl job logs -f {}')",
            v.id,
            v.tasks.len(),
            v.id
        )?;
    }
    Ok(())
}
