//! Structured results of config, container and backup tasks as labctl shows them: the stable
//! JSON view (`result` of a task) and the text lines `NODE: file /etc/motd: changed` with the diff
//! indented below. Pure; whether to color is the caller's decision ([`use_color`]).
//!
//! JSON (field names are stable):
//! - `{"config": {"check": bool, "resources": [{"resource", "status", "diff", "message"}]}}`;
//!   a nixosRebuild switch or rollback adds `"nixos"`, see [`super::result_nixos`]
//! - `{"container": {"container", "container_id", "status", "message"}}`
//! - `{"backup": {...}}`, see [`super::result_backup`]
//!
//! `status` is `unchanged`, `changed` (in check mode: would change), `failed` or `skipped`;
//! empty `diff`, `message` and `container_id` are null. Text says "would change" in check mode.

use std::fmt::Write as _;

use lab_proto::v1::{task_result, ConfigResult, ContainerResult, ResourceStatus, TaskResult};
use serde::Serialize;

use super::result_backup::{self, BackupResultView};
use super::result_nixos::{self, NixosView};

/// The structured result of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultView {
    /// Of a config task.
    Config(ConfigResultView),
    /// Of a container task.
    Container(ContainerResultView),
    /// Of a backup task (boxed: it is much larger than the others).
    Backup(Box<BackupResultView>),
}

/// `result.config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigResultView {
    /// Check mode: nothing was changed.
    pub check: bool,
    /// One entry per resource, in order.
    pub resources: Vec<ResourceResultView>,
}

/// `result.config.resources[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceResultView {
    /// "file /etc/motd", or the resource's name.
    pub resource: String,
    /// unchanged, changed, failed, skipped (unknown if the agent did not say).
    pub status: &'static str,
    /// Unified diff or a short description of the change.
    pub diff: Option<String>,
    /// The error, or the state after.
    pub message: Option<String>,
    /// nixosRebuild switch and rollback: generations, health gate, rollback (absent for other
    /// resources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nixos: Option<NixosView>,
}

/// `result.container`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerResultView {
    /// Container name.
    pub container: String,
    /// Engine id of the container.
    pub container_id: Option<String>,
    /// unchanged, changed, failed.
    pub status: &'static str,
    /// What was done or what went wrong.
    pub message: Option<String>,
}

/// The lowercase name of a resource status, as in JSON output.
pub fn status_name(status: ResourceStatus) -> &'static str {
    match status {
        ResourceStatus::Unspecified => "unknown",
        ResourceStatus::Unchanged => "unchanged",
        ResourceStatus::Changed => "changed",
        ResourceStatus::Failed => "failed",
        ResourceStatus::Skipped => "skipped",
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The view of a task's result; `None` when the task has none (exec tasks, unfinished tasks).
pub fn view(result: Option<&TaskResult>) -> Option<ResultView> {
    match result?.kind.as_ref()? {
        task_result::Kind::Config(c) => Some(ResultView::Config(config_view(c))),
        task_result::Kind::Container(c) => Some(ResultView::Container(container_view(c))),
        task_result::Kind::Backup(b) => Some(ResultView::Backup(Box::new(result_backup::view(b)))),
    }
}

fn config_view(c: &ConfigResult) -> ConfigResultView {
    ConfigResultView {
        check: c.check,
        resources: c
            .resources
            .iter()
            .map(|r| ResourceResultView {
                resource: r.resource.clone(),
                status: status_name(r.status()),
                diff: non_empty(&r.diff),
                message: non_empty(&r.message),
                nixos: r.nixos.as_ref().map(result_nixos::view),
            })
            .collect(),
    }
}

fn container_view(c: &ContainerResult) -> ContainerResultView {
    ContainerResultView {
        container: c.container.clone(),
        container_id: non_empty(&c.container_id),
        status: status_name(c.status()),
        message: non_empty(&c.message),
    }
}

pub use crate::output::{paint, use_color};

/// ANSI style of a status word.
fn status_style(status: &str) -> &'static str {
    match status {
        "changed" | "would change" => "\x1b[33m", // yellow
        "failed" => "\x1b[31m",                   // red
        "unchanged" | "skipped" => "\x1b[2m",     // dim
        _ => "",
    }
}

/// ANSI style of a diff line.
fn diff_style(line: &str) -> &'static str {
    if line.starts_with("+++") || line.starts_with("---") {
        "\x1b[1m" // bold
    } else if line.starts_with('+') {
        "\x1b[32m" // green
    } else if line.starts_with('-') {
        "\x1b[31m" // red
    } else if line.starts_with("@@") {
        "\x1b[36m" // cyan
    } else {
        ""
    }
}

/// Text from a node made safe for a terminal ([`output::escape_line`]); tabs are kept.
pub(super) fn clean(text: &str) -> String {
    crate::output::escape_line(text).into_owned()
}

/// "NODE: WHAT: STATUS" plus the message: ": error" when failed, " (state)" otherwise; further
/// message lines and the diff follow, indented by four spaces.
pub(super) fn entry(
    out: &mut String,
    node: &str,
    what: &str,
    status: &str,
    message: Option<&str>,
    diff: Option<&str>,
    color: bool,
) {
    let mut lines = message.unwrap_or_default().lines();
    let first = lines.next().map(clean).filter(|m| !m.is_empty());
    let _ = write!(
        out,
        "{node}: {}: {}",
        clean(what),
        paint(status, status_style(status), color)
    );
    match first {
        Some(m) if status == "failed" => {
            let _ = write!(out, ": {m}");
        }
        Some(m) => {
            let _ = write!(out, " ({m})");
        }
        None => {}
    }
    out.push('\n');
    for line in lines.chain(diff.unwrap_or_default().lines()) {
        let line = clean(line);
        let _ = writeln!(out, "    {}", paint(&line, diff_style(&line), color));
    }
}

/// The text lines of a result of a task on `node`, each ending in a newline. `succeeded` is
/// whether the task succeeded: a backup without a summary says "done" only then (a failed one
/// prints nothing here; its state line says why).
pub fn render(node: &str, result: &ResultView, succeeded: bool, color: bool) -> String {
    let mut out = String::new();
    match result {
        ResultView::Config(c) => {
            for r in &c.resources {
                // In check mode nothing changed: say what would.
                let status = match r.status {
                    "changed" if c.check => "would change",
                    status => status,
                };
                entry(
                    &mut out,
                    node,
                    &r.resource,
                    status,
                    r.message.as_deref(),
                    r.diff.as_deref(),
                    color,
                );
                if let Some(n) = &r.nixos {
                    result_nixos::render(&mut out, n);
                }
            }
        }
        ResultView::Container(c) => {
            let what = if c.container.is_empty() {
                "container".to_owned()
            } else {
                format!("container {}", c.container)
            };
            entry(
                &mut out,
                node,
                &what,
                c.status,
                c.message.as_deref(),
                None,
                color,
            );
        }
        ResultView::Backup(b) => result_backup::render(&mut out, node, b, succeeded, color),
    }
    out
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::ResourceResult;

    use super::*;

    fn config(check: bool, resources: Vec<ResourceResult>) -> TaskResult {
        TaskResult {
            kind: Some(task_result::Kind::Config(ConfigResult { check, resources })),
        }
    }

    fn resource(name: &str, status: ResourceStatus, diff: &str, message: &str) -> ResourceResult {
        ResourceResult {
            resource: name.into(),
            status: status as i32,
            diff: diff.into(),
            message: message.into(),
            nixos: None,
        }
    }

    #[test]
    fn config_result_with_diff() {
        let result = config(
            false,
            vec![
                resource(
                    "file /etc/motd",
                    ResourceStatus::Changed,
                    "--- /etc/motd\n+++ /etc/motd\n@@ -1 +1 @@\n-old\n+hi n1\n",
                    "",
                ),
                resource("package htop", ResourceStatus::Unchanged, "", "installed"),
                resource(
                    "command seed",
                    ResourceStatus::Failed,
                    "",
                    "exit status 1\nno such file",
                ),
                resource("service nginx.service", ResourceStatus::Skipped, "", ""),
            ],
        );
        let v = view(Some(&result)).unwrap();
        assert_eq!(
            render("n1", &v, true, false),
            "n1: file /etc/motd: changed\n    --- /etc/motd\n    +++ /etc/motd\n    @@ -1 +1 @@\n    -old\n    +hi n1\n\
             n1: package htop: unchanged (installed)\n\
             n1: command seed: failed: exit status 1\n    no such file\n\
             n1: service nginx.service: skipped\n"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["config"]["check"], false);
        assert_eq!(json["config"]["resources"][0]["status"], "changed");
        assert_eq!(json["config"]["resources"][1]["message"], "installed");
        assert_eq!(
            json["config"]["resources"][1]["diff"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn colors_only_when_asked() {
        let result = config(
            true,
            vec![resource("file /x", ResourceStatus::Changed, "-a\n+b\n", "")],
        );
        let v = view(Some(&result)).unwrap();
        assert_eq!(
            render("n1", &v, true, true),
            "n1: file /x: \x1b[33mwould change\x1b[0m\n    \x1b[31m-a\x1b[0m\n    \x1b[32m+b\x1b[0m\n"
        );
        assert!(!render("n1", &v, true, false).contains('\x1b'));
    }

    #[test]
    fn escapes_from_nodes_are_neutralized() {
        let result = config(
            false,
            vec![resource(
                "file /x",
                ResourceStatus::Changed,
                "+\x1b]0;pwned\x07\n",
                "",
            )],
        );
        let text = render("n1", &view(Some(&result)).unwrap(), true, false);
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    }

    #[test]
    fn container_result() {
        let result = TaskResult {
            kind: Some(task_result::Kind::Container(ContainerResult {
                container: "web".into(),
                container_id: "0123abcd".into(),
                status: ResourceStatus::Changed as i32,
                message: "recreated".into(),
            })),
        };
        let v = view(Some(&result)).unwrap();
        assert_eq!(
            render("n1", &v, true, false),
            "n1: container web: changed (recreated)\n"
        );
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"container": {"container": "web", "container_id": "0123abcd",
                "status": "changed", "message": "recreated"}})
        );
        assert_eq!(view(None), None);
        assert_eq!(view(Some(&TaskResult { kind: None })), None);
    }
}
