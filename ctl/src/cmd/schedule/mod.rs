//! `labctl schedule create|list|show|pause|resume|delete`, and creating the schedules of
//! `labctl apply` documents. A create is built (the job from a spec file through the apply
//! parser) and checked with the coordinator's own validation before anything is dialled, so a
//! bad expression, time zone or spec file is exit code 2 with nothing created.

pub mod view;

use std::future::Future;

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{
    CreateScheduleRequest, DeleteScheduleRequest, GetScheduleRequest, ListSchedulesRequest,
    MissedPolicy, Schedule, ScheduleSpec, SetSchedulePausedRequest,
};
use tonic::transport::Channel;
use tonic::Code;

use crate::cli::{MissedArg, ScheduleAction, ScheduleCreateArgs};
use crate::failure::{from_status, Failure};
use crate::output::{self, Format};
use view::ScheduleView;

type Client = OperatorServiceClient<Channel>;

/// Runs `labctl schedule ACTION`; `dial` is called only once the input is known to be good.
pub async fn run<F, Fut>(action: ScheduleAction, dial: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Client, Failure>>,
{
    match action {
        ScheduleAction::Create(args) => {
            let spec = build(&args)?;
            let mut client = dial().await?;
            let schedule = create(&mut client, spec, false).await?;
            crate::outln!("{}", created_line(&schedule, "created"))?;
            Ok(())
        }
        ScheduleAction::List { output } => list(dial().await?, output).await,
        ScheduleAction::Show { name, output } => show(dial().await?, name, output).await,
        ScheduleAction::Pause { name } => set_paused(dial().await?, name, true).await,
        ScheduleAction::Resume { name } => set_paused(dial().await?, name, false).await,
        ScheduleAction::Delete { name } => delete(dial().await?, name).await,
    }
}

/// The spec of `labctl schedule create`, checked as the coordinator checks it.
pub fn build(args: &ScheduleCreateArgs) -> Result<ScheduleSpec, Failure> {
    let job = crate::cmd::apply::load_one_job(&args.file)?;
    let spec = ScheduleSpec {
        name: args.name.clone(),
        cron: args.cron.clone(),
        timezone: args.tz.clone().unwrap_or_default(),
        jitter_ms: args
            .jitter
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        missed: match args.missed {
            MissedArg::Skip => MissedPolicy::Skip,
            MissedArg::RunOnce => MissedPolicy::RunOnce,
        } as i32,
        job: Some(job.spec),
    };
    lab_coordinator::schedules::validate(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(spec)
}

async fn create(
    client: &mut Client,
    spec: ScheduleSpec,
    replace: bool,
) -> anyhow::Result<Schedule> {
    Ok(client
        .create_schedule(CreateScheduleRequest {
            spec: Some(spec),
            replace,
        })
        .await
        .map_err(from_status)?
        .into_inner())
}

/// "schedule NAME created, next run 2026-11-26T10:00:00Z (in 3s)".
fn created_line(s: &Schedule, verb: &str) -> String {
    let name = s.spec.as_ref().map_or("", |s| s.name.as_str());
    let next = match (s.paused, output::time(s.next_unix_ms)) {
        (true, _) if verb == "paused" => return format!("schedule {name} paused"),
        (true, _) => format!("paused (resume it with 'labctl schedule resume {name}')"),
        (false, None) => "none (the expression does not fire again)".to_owned(),
        (false, Some(t)) => format!(
            "next run {t} ({})",
            view::until(s.next_unix_ms, output::now_ms())
        ),
    };
    format!("schedule {name} {verb}, {next}")
}

/// Creates or replaces the schedule of a `kind: Schedule` document (`labctl apply`).
pub async fn apply(client: &mut Client, spec: ScheduleSpec) -> anyhow::Result<()> {
    let existed = match client
        .get_schedule(GetScheduleRequest {
            name: spec.name.clone(),
        })
        .await
    {
        Ok(_) => true,
        Err(status) if status.code() == Code::NotFound => false,
        Err(status) => return Err(from_status(status).into()),
    };
    let schedule = create(client, spec, true).await?;
    let verb = if existed { "replaced" } else { "created" };
    crate::outln!("{}", created_line(&schedule, verb))?;
    Ok(())
}

/// `labctl schedule list`.
pub async fn list(mut client: Client, format: Format) -> anyhow::Result<()> {
    let schedules = client
        .list_schedules(ListSchedulesRequest {})
        .await
        .map_err(from_status)?
        .into_inner()
        .schedules;
    let views: Vec<ScheduleView> = schedules.iter().map(ScheduleView::from).collect();
    if output::print_list(format, &views, |v| v.name.clone())? {
        return Ok(());
    }
    let table = view::table(&views, output::now_ms()).fit(format.fit());
    crate::outln!("{table}")?;
    Ok(())
}

/// `labctl schedule show NAME`.
pub async fn show(mut client: Client, name: String, format: Format) -> anyhow::Result<()> {
    let schedule = client
        .get_schedule(GetScheduleRequest { name })
        .await
        .map_err(from_status)?
        .into_inner();
    let v = ScheduleView::from(&schedule);
    output::print_detail(format, &v, &v.name)
}

/// `labctl schedule pause|resume NAME`.
pub async fn set_paused(mut client: Client, name: String, paused: bool) -> anyhow::Result<()> {
    let s = client
        .set_schedule_paused(SetSchedulePausedRequest {
            name: name.clone(),
            paused,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    crate::outln!(
        "{}",
        created_line(&s, if paused { "paused" } else { "resumed" })
    )?;
    Ok(())
}

/// `labctl schedule delete NAME`.
pub async fn delete(mut client: Client, name: String) -> anyhow::Result<()> {
    client
        .delete_schedule(DeleteScheduleRequest { name: name.clone() })
        .await
        .map_err(from_status)?;
    crate::outln!("schedule {name} deleted (the jobs it submitted stay)")?;
    Ok(())
}
