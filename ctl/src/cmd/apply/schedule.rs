//! `kind: Schedule` documents (DESIGN §5a): `spec.cron`, `spec.timezone`, `spec.jitter`,
//! `spec.missed` and `spec.job` (the same shape as a Job document's spec), converted to the
//! wire `ScheduleSpec`. Applying one creates or replaces the schedule; nothing is followed.

use std::time::Duration;

use lab_proto::v1::{MissedPolicy, ScheduleSpec};
use serde::Deserialize;

use super::doc::{duration, JobSpecDoc, Metadata};

/// A `kind: Schedule` document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleDoc {
    /// `labfleet/v1`.
    pub api_version: String,
    /// `Schedule`.
    pub kind: String,
    /// `metadata.name` is the schedule's name (required).
    #[serde(default)]
    pub metadata: Metadata,
    /// When and what.
    pub spec: ScheduleSpecDoc,
}

/// `spec:` of a Schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleSpecDoc {
    /// 5 fields (minute first) or 6 (seconds first).
    pub cron: String,
    /// IANA time zone; absent = UTC.
    #[serde(default)]
    pub timezone: String,
    /// Random delay of each firing, up to this (humantime).
    #[serde(default, deserialize_with = "duration")]
    pub jitter: Option<Duration>,
    /// skip (default) or runOnce.
    pub missed: Option<MissedDoc>,
    /// The job each firing submits.
    pub job: JobSpecDoc,
}

/// `spec.missed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissedDoc {
    /// Missed firings are not made up.
    Skip,
    /// One job is submitted for all missed firings.
    #[serde(alias = "run-once")]
    RunOnce,
}

/// One `kind: Schedule` document, converted and ready to create.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecSchedule {
    /// Where it came from: "FILE: document N".
    pub origin: String,
    /// The wire spec.
    pub spec: ScheduleSpec,
}

/// Converts a Schedule document. Errors name the path below the document.
pub fn schedule_spec(doc: ScheduleDoc) -> Result<ScheduleSpec, String> {
    let name = doc
        .metadata
        .name
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name: a Schedule needs a name")?;
    let job =
        super::convert::job_spec(doc.spec.job).map_err(|m| match m.strip_prefix("spec.") {
            Some(rest) => format!("spec.job.{rest}"),
            None => format!("spec.job: {m}"),
        })?;
    let missed = match doc.spec.missed {
        None | Some(MissedDoc::Skip) => MissedPolicy::Skip,
        Some(MissedDoc::RunOnce) => MissedPolicy::RunOnce,
    };
    Ok(ScheduleSpec {
        name,
        cron: doc.spec.cron,
        timezone: doc.spec.timezone,
        jitter_ms: doc
            .spec
            .jitter
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        missed: missed as i32,
        job: Some(job),
    })
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::task_spec;

    use super::super::parse::{parse, parse_documents, Document};
    use super::*;

    const SCHEDULE: &str = r#"
apiVersion: labfleet/v1
kind: Schedule
metadata: {name: nightly}
spec:
  cron: "0 3 * * *"
  timezone: Europe/Berlin
  jitter: 5m
  missed: runOnce
  job:
    selector: "role=storage"
    timeout: 2h
    task:
      exec: {argv: [restic, snapshots]}
"#;

    fn schedule(text: &str) -> Result<SpecSchedule, String> {
        let mut docs = parse_documents("s.yaml", text).map_err(|e| e.to_string())?;
        match docs.remove(0) {
            Document::Schedule(s) => Ok(s),
            Document::Job(j) => panic!("a job: {j:?}"),
        }
    }

    #[test]
    fn a_schedule_document_converts() {
        let s = schedule(SCHEDULE).unwrap();
        assert_eq!(s.origin, "s.yaml: document 1");
        assert_eq!(s.spec.name, "nightly");
        assert_eq!(s.spec.cron, "0 3 * * *");
        assert_eq!(s.spec.timezone, "Europe/Berlin");
        assert_eq!(s.spec.jitter_ms, 300_000);
        assert_eq!(s.spec.missed, MissedPolicy::RunOnce as i32);
        let job = s.spec.job.unwrap();
        assert_eq!(job.selector, "role=storage");
        assert_eq!(job.timeout_ms, 7_200_000);
        assert!(matches!(
            job.task.and_then(|t| t.kind),
            Some(task_spec::Kind::Exec(e)) if e.argv == ["restic", "snapshots"]
        ));
        let alias = schedule(&SCHEDULE.replace("runOnce", "run-once")).unwrap();
        assert_eq!(alias.spec.missed, MissedPolicy::RunOnce as i32);
        let default = schedule(&SCHEDULE.replace("  missed: runOnce\n", "")).unwrap();
        assert_eq!(default.spec.missed, MissedPolicy::Skip as i32);
    }

    #[test]
    fn schedule_errors_name_the_path() {
        let e = schedule(&SCHEDULE.replace("metadata: {name: nightly}\n", "")).unwrap_err();
        assert!(
            e.ends_with("document 1: metadata.name: a Schedule needs a name"),
            "{e}"
        );
        let e = schedule(&SCHEDULE.replace("jitter: 5m", "jitter: 5")).unwrap_err();
        assert!(e.contains("spec.jitter: 5 has no unit"), "{e}");
        let e = schedule(&SCHEDULE.replace("missed: runOnce", "missed: always")).unwrap_err();
        assert!(e.contains("spec.missed: unknown variant 'always'"), "{e}");
        let e = schedule(&SCHEDULE.replace("exec: {argv", "exec: {argz")).unwrap_err();
        assert!(
            e.contains("spec.job.task.exec.argz: unknown field 'argz'"),
            "{e}"
        );
        let e = schedule(&SCHEDULE.replace("exec: {argv: [restic, snapshots]}", "{}")).unwrap_err();
        assert!(e.contains("spec.job.task: no kind given"), "{e}");
        // `schedule create -f` takes Job documents only.
        let e = parse("s.yaml", SCHEDULE).unwrap_err().to_string();
        assert!(
            e.contains("expected kind: Job here, found kind: Schedule"),
            "{e}"
        );
    }
}
