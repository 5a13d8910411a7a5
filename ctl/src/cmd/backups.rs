//! `labctl backups [-l SEL] [-o table|json|yaml] [--fail-on-red]`: per node and backup name the
//! last success (time, age, size, snapshot), the last restore drill and the health the
//! coordinator computed against the declared maximum age (green, amber, red; `-` when no
//! `maxAge` was declared). Colors only on a terminal without `NO_COLOR`.
//!
//! Exit status: 0, also when some backups are red; with `--fail-on-red`, 1 when any listed
//! backup is red (for monitoring scripts).
//!
//! `labctl backups forget NODE [NAME]` deletes the backup records of a node (e.g. a removed
//! one), so they stop showing red; exit 2 when NODE has no such records.
//!
//! JSON/YAML (field names are stable): a list of objects with `node`, `name`, `health`
//! (`green`, `amber`, `red` or `none`), `max_age_seconds`, `last_success` (RFC 3339 or null),
//! `age_seconds`, `snapshot_id`, `size_bytes`, `added_bytes`, `last_success_job_id`,
//! `last_attempt`, `last_attempt_state`, `last_attempt_error`, `last_attempt_job_id`,
//! `last_drill`, `last_drill_ok` and `drill` (`snapshot_id`, `files_in_snapshot`,
//! `files_verified`, `bytes_verified`, `problems`); absent values are null.

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{
    BackupHealth, BackupStatus, ForgetBackupsRequest, ListBackupsRequest, TaskState,
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::cmd::jobs::view::state_name;
use crate::failure::{from_status, Failure};
use crate::output::use_color;
use crate::output::{self, Format};

/// One backup as labctl prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupView {
    /// Node.
    pub node: String,
    /// Backup name.
    pub name: String,
    /// green, amber, red, or none (no maximum age declared).
    pub health: &'static str,
    /// Declared maximum age.
    pub max_age_seconds: Option<u64>,
    /// Last success (RFC 3339).
    pub last_success: Option<String>,
    /// Age of the last success at listing time.
    pub age_seconds: Option<u64>,
    /// Snapshot of the last success.
    pub snapshot_id: Option<String>,
    /// Bytes the last success processed.
    pub size_bytes: Option<u64>,
    /// Bytes it added to the repository.
    pub added_bytes: Option<u64>,
    /// Job of the last success.
    pub last_success_job_id: Option<String>,
    /// Latest attempt (RFC 3339).
    pub last_attempt: Option<String>,
    /// Its final state.
    pub last_attempt_state: Option<&'static str>,
    /// Its error.
    pub last_attempt_error: Option<String>,
    /// Its job.
    pub last_attempt_job_id: Option<String>,
    /// Latest drill (RFC 3339).
    pub last_drill: Option<String>,
    /// Whether it verified everything.
    pub last_drill_ok: Option<bool>,
    /// What it verified.
    pub drill: Option<DrillView>,
    /// `last_drill` as Unix ms (0 = never), for the table's age.
    #[serde(skip)]
    pub last_drill_unix_ms: i64,
}

/// `drill` of a [`BackupView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrillView {
    /// Snapshot drilled.
    pub snapshot_id: String,
    /// Files in it.
    pub files_in_snapshot: u64,
    /// Files restored and checked.
    pub files_verified: u64,
    /// Bytes checked.
    pub bytes_verified: u64,
    /// Problems found.
    pub problems: Vec<String>,
}

fn text(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The name of a health value.
pub fn health_name(h: BackupHealth) -> &'static str {
    match h {
        BackupHealth::Unspecified => "none",
        BackupHealth::Green => "green",
        BackupHealth::Amber => "amber",
        BackupHealth::Red => "red",
    }
}

/// The view of `s` at `now_ms`. Pure.
pub fn view(s: BackupStatus, now_ms: i64) -> BackupView {
    let health = health_name(s.health());
    let succeeded = s.last_success_unix_ms > 0;
    let attempted = s.last_attempt_unix_ms > 0;
    let drilled = s.last_drill_unix_ms > 0;
    let attempt_state = TaskState::try_from(s.last_attempt_state).unwrap_or(TaskState::Unspecified);
    BackupView {
        node: s.node,
        name: s.name,
        health,
        max_age_seconds: (s.max_age_ms > 0).then_some(s.max_age_ms / 1000),
        last_success: output::time(s.last_success_unix_ms),
        age_seconds: succeeded
            .then(|| u64::try_from((now_ms - s.last_success_unix_ms) / 1000).unwrap_or(0)),
        snapshot_id: text(s.snapshot_id),
        size_bytes: succeeded.then_some(s.size_bytes),
        added_bytes: succeeded.then_some(s.added_bytes),
        last_success_job_id: text(s.last_success_job_id),
        last_attempt: output::time(s.last_attempt_unix_ms),
        last_attempt_state: attempted.then(|| state_name(attempt_state)),
        last_attempt_error: text(s.last_attempt_error),
        last_attempt_job_id: text(s.last_attempt_job_id),
        last_drill: output::time(s.last_drill_unix_ms),
        last_drill_unix_ms: s.last_drill_unix_ms,
        last_drill_ok: drilled.then_some(s.last_drill_ok),
        drill: s.last_drill.map(|d| DrillView {
            snapshot_id: d.snapshot_id,
            files_in_snapshot: d.files_in_snapshot,
            files_verified: d.files_verified,
            bytes_verified: d.bytes_verified,
            problems: d.problems,
        }),
    }
}

/// ANSI style of a health word.
fn health_style(health: &str) -> &'static str {
    match health {
        "green" => "\x1b[32m",
        "amber" => "\x1b[33m",
        "red" => "\x1b[31m",
        _ => "",
    }
}

/// The table (with a trailing newline); empty list → a hint. Pure.
pub fn table(views: &[BackupView], now_ms: i64, color: bool) -> String {
    if views.is_empty() {
        return "no backups recorded yet; run a backup job with a name (labctl apply -f, task.backup)\n".into();
    }
    let mut t = output::table([
        "NODE",
        "BACKUP",
        "LAST SUCCESS",
        "AGE",
        "SIZE",
        "SNAPSHOT",
        "DRILL",
        "STATUS",
    ]);
    for v in views {
        let snapshot = v
            .snapshot_id
            .as_deref()
            .map(|id| id.get(..8).unwrap_or(id).to_owned());
        let drill = match v.last_drill_ok {
            None => "-".to_owned(),
            Some(ok) => format!(
                "{} {}",
                if ok { "ok" } else { "failed" },
                output::age(v.last_drill_unix_ms, now_ms)
            ),
        };
        let status = match v.health {
            "none" => "-".to_owned(),
            h => h.to_owned(),
        };
        let cells = [
            v.node.clone(),
            v.name.clone(),
            v.last_success.clone().unwrap_or_else(|| "never".into()),
            v.age_seconds
                .map(output::human_secs)
                .unwrap_or_else(|| "-".into()),
            v.size_bytes
                .map(output::bytes)
                .unwrap_or_else(|| "-".into()),
            snapshot.unwrap_or_else(|| "-".into()),
            drill,
            status,
        ];
        let mut styles = [""; 8];
        styles[7] = health_style(v.health);
        t.row_styled(cells, styles, color);
    }
    let mut out: String = t
        .to_string()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// `labctl backups`.
pub async fn list(
    mut client: OperatorServiceClient<Channel>,
    selector: &str,
    format: Format,
    fail_on_red: bool,
) -> anyhow::Result<()> {
    let backups = client
        .list_backups(ListBackupsRequest {
            selector: selector.to_owned(),
        })
        .await
        .map_err(from_status)?
        .into_inner()
        .backups;
    let now = output::now_ms();
    let views: Vec<BackupView> = backups.into_iter().map(|b| view(b, now)).collect();
    if !output::print_list(format, &views, |v| format!("{}/{}", v.node, v.name))? {
        crate::out!("{}", table(&views, now, use_color()))?;
    }
    let red: Vec<String> = views
        .iter()
        .filter(|v| v.health == "red")
        .map(|v| format!("{}/{}", v.node, v.name))
        .collect();
    if fail_on_red && !red.is_empty() {
        return Err(
            Failure::Failed(format!("{} backup(s) red: {}", red.len(), red.join(", "))).into(),
        );
    }
    Ok(())
}

/// `labctl backups forget NODE [NAME]`: prints how many records were forgotten; a usage error
/// (exit 2) when there were none.
pub async fn forget(
    mut client: OperatorServiceClient<Channel>,
    node: &str,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let forgotten = client
        .forget_backups(ForgetBackupsRequest {
            node: node.to_owned(),
            name: name.unwrap_or_default().to_owned(),
        })
        .await
        .map_err(from_status)?
        .into_inner()
        .forgotten;
    let what = match name {
        Some(name) => format!("backup '{name}' of node '{node}'"),
        None => format!("node '{node}'"),
    };
    if forgotten == 0 {
        return Err(Failure::Usage(format!(
            "no backup records of {what}; `labctl backups` lists node and backup names"
        ))
        .into());
    }
    crate::outln!("forgot {forgotten} backup record(s) of {what}")?;
    Ok(())
}

/// How many backup records `node` has (also after the node itself was removed).
pub async fn count(
    client: &mut OperatorServiceClient<Channel>,
    node: &str,
) -> anyhow::Result<usize> {
    let backups = client
        .list_backups(ListBackupsRequest::default())
        .await
        .map_err(from_status)?
        .into_inner()
        .backups;
    Ok(backups.iter().filter(|b| b.node == node).count())
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::DrillSummary;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn status(name: &str, health: BackupHealth, success_ago_s: Option<i64>) -> BackupStatus {
        let success = success_ago_s.map_or(0, |s| NOW - s * 1000);
        BackupStatus {
            node: "n1".into(),
            name: name.into(),
            max_age_ms: 26 * 3_600_000,
            last_success_unix_ms: success,
            snapshot_id: if success > 0 {
                "1a2b3c4d5e6f".into()
            } else {
                String::new()
            },
            size_bytes: 2 * 1024 * 1024 * 1024,
            added_bytes: 1024,
            last_success_job_id: "j1".into(),
            last_attempt_unix_ms: NOW - 60_000,
            last_attempt_state: TaskState::Failed as i32,
            last_attempt_error: "restic exited with 1".into(),
            last_attempt_job_id: "j2".into(),
            health: health as i32,
            ..Default::default()
        }
    }

    #[test]
    fn json_view() {
        let mut s = status("home", BackupHealth::Amber, Some(3600));
        s.last_drill_unix_ms = NOW - 7_200_000;
        s.last_drill_ok = true;
        s.last_drill = Some(DrillSummary {
            snapshot_id: "1a2b3c4d".into(),
            files_in_snapshot: 3,
            files_verified: 3,
            bytes_verified: 30,
            ..Default::default()
        });
        let v = serde_json::to_value(view(s, NOW)).unwrap();
        assert_eq!(v["health"], "amber");
        assert_eq!(v["age_seconds"], 3600);
        assert_eq!(v["max_age_seconds"], 26 * 3600);
        assert_eq!(v["size_bytes"], 2u64 * 1024 * 1024 * 1024);
        assert_eq!(v["snapshot_id"], "1a2b3c4d5e6f");
        assert_eq!(v["last_attempt_state"], "failed");
        assert_eq!(v["last_drill_ok"], true);
        assert_eq!(v["drill"]["files_verified"], 3);
        let never = serde_json::to_value(view(status("db", BackupHealth::Red, None), NOW)).unwrap();
        assert_eq!(never["last_success"], serde_json::Value::Null);
        assert_eq!(never["age_seconds"], serde_json::Value::Null);
        assert_eq!(never["size_bytes"], serde_json::Value::Null);
        assert_eq!(never["last_drill_ok"], serde_json::Value::Null);
    }

    #[test]
    fn table_rows() {
        let mut drilled = status("home", BackupHealth::Green, Some(3 * 3600));
        drilled.last_drill_unix_ms = NOW - 2 * 86_400_000;
        drilled.last_drill_ok = false;
        let views = vec![
            view(drilled, NOW),
            view(status("db", BackupHealth::Red, None), NOW),
            view(status("etc", BackupHealth::Unspecified, Some(30)), NOW),
        ];
        let text = table(&views, NOW, false);
        let lines: Vec<&str> = text.lines().collect();
        let words = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            words(0),
            ["NODE", "BACKUP", "LAST", "SUCCESS", "AGE", "SIZE", "SNAPSHOT", "DRILL", "STATUS"]
        );
        assert_eq!(
            words(1),
            [
                "n1",
                "home",
                "2023-11-14T19:13:20Z",
                "3h",
                "2.0GiB",
                "1a2b3c4d",
                "failed",
                "2d",
                "ago",
                "green"
            ]
        );
        assert_eq!(words(2), ["n1", "db", "never", "-", "-", "-", "-", "red"]);
        assert_eq!(words(3)[7], "-", "no max age: no status");
        assert!(!text.contains('\x1b'));
        let colored = table(&views, NOW, true);
        assert!(colored.contains("\x1b[31mred\x1b[0m"), "{colored}");
        assert!(colored.contains("\x1b[32mgreen\x1b[0m"), "{colored}");
        assert!(table(&[], NOW, false).starts_with("no backups recorded yet"));
    }
}
