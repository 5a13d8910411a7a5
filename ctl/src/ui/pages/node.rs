//! `GET /nodes/{name}`: one node — its state, labels, facts as a collapsible tree with a search
//! box (each leaf shows the `facts.…` path a selector uses), its tasks in its recent jobs, and
//! its backups.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use lab_proto::v1::{GetNodeRequest, ListBackupsRequest, ListJobsRequest, TaskInfo};
use serde_json::Value;

use crate::cmd::backups::view as backup_view;
use crate::cmd::jobs::view::{describe, task_state_name};
use crate::cmd::nodes::{status, view};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// The node's recent jobs shown, each with the node's own task (the coordinator picks them by
/// node, however many tasks a job has).
const RECENT_JOBS: u32 = 20;
/// Largest fact tree shown open at the first level.
const OPEN_LEAVES: usize = 40;

/// `GET /nodes/{name}`.
pub async fn get(State(ui): State<Arc<Ui>>, Path(name): Path<String>) -> PageResult {
    let who = ui.who().await?;
    let (mut c1, mut c2, mut c3) = (ui.client(), ui.client(), ui.client());
    let selector = format!("node={name}");
    let (node, jobs, backups) = tokio::join!(
        c1.get_node(GetNodeRequest { name: name.clone() }),
        c2.list_jobs(ListJobsRequest {
            limit: RECENT_JOBS,
            node: name.clone(),
            ..Default::default()
        }),
        c3.list_backups(ListBackupsRequest { selector }),
    );
    let v = view(node?.into_inner(), true);
    let now = output::now_ms();
    let mut body = String::new();
    let st = status(&v);
    let seen = output::unix_ms(v.last_seen.as_deref());
    let dash = |s: &Option<String>| Esc(s.as_deref().unwrap_or("–")).to_string();
    let _ = write!(
        body,
        "<dl class=\"facts-summary\" id=\"node-summary\" data-status=\"{st}\">\
<dt>Status</dt><dd>{}</dd><dt>OS</dt><dd>{} {}</dd><dt>Arch</dt><dd>{}</dd>\
<dt>Virtualization</dt><dd>{}</dd><dt>CPUs</dt><dd>{}</dd><dt>Memory</dt><dd>{}</dd>\
<dt>Last seen</dt><dd>{}</dd><dt>Agent</dt><dd>{}</dd><dt>Enrolled</dt><dd>{}</dd>\
<dt>Certificate expires</dt><dd>{}</dd></dl>",
        html::badge(st),
        dash(&v.os),
        Esc(v.os_version.as_deref().unwrap_or("")),
        dash(&v.arch),
        dash(&v.virt),
        v.cpus.map(|c| c.to_string()).unwrap_or_else(|| "–".into()),
        v.memory_bytes
            .map(output::bytes)
            .unwrap_or_else(|| "–".into()),
        time(seen, now),
        Esc(&v.agent_version),
        time(output::unix_ms(v.enrolled.as_deref()), now),
        time(output::unix_ms(v.cert_expires.as_deref()), now),
    );

    body.push_str("<h2>Labels</h2><div class=\"chips\" id=\"labels\">");
    for (k, val) in &v.labels {
        let _ = write!(
            body,
            "<a class=\"chip\" href=\"/nodes?l={}\">{}={}</a> ",
            Url(&format!("{k}={val}")),
            Esc(k),
            Esc(val)
        );
    }
    body.push_str("</div>");

    body.push_str("<h2>Recent tasks</h2>");
    match jobs {
        Ok(jobs) => {
            let mut rows = String::new();
            for job in jobs.into_inner().jobs {
                let Some(task) = job.tasks.iter().find(|t| t.node == v.name) else {
                    continue;
                };
                let spec = job.spec.clone().unwrap_or_default();
                let (kind, description) = describe(&spec);
                let _ = write!(
                    rows,
                    "<tr><td><a href=\"/jobs/{}\">{}</a></td><td>{}</td><td>{kind} <code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    Url(&job.job_id),
                    Esc(&job.job_id),
                    html::badge(task_state_name(task)),
                    Esc(&description),
                    exit(task),
                    time(task.started_unix_ms, now),
                    Esc(&task.error)
                );
            }
            if rows.is_empty() {
                body.push_str("<p class=\"muted\">No task yet.</p>");
            } else {
                body.push_str(&super::table(
                    "node-tasks",
                    "<th>Job</th><th>State</th><th>Task</th><th>Exit</th><th>Started</th><th>Error</th>",
                    &rows,
                ));
            }
        }
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", Esc(e.message()));
        }
    }

    body.push_str("<h2>Backups</h2>");
    match backups {
        Ok(b) if b.get_ref().backups.is_empty() => {
            body.push_str("<p class=\"muted\">No backup records.</p>")
        }
        Ok(b) => {
            let views: Vec<_> = b
                .into_inner()
                .backups
                .into_iter()
                .map(|s| backup_view(s, now))
                .collect();
            body.push_str(&super::backups::table(&views, now));
        }
        Err(e) => {
            let _ = write!(body, "<p class=\"error\">{}</p>", Esc(e.message()));
        }
    }

    body.push_str(
        "<h2>Facts</h2><div class=\"fact-search\"><label for=\"fact-search\">Search facts</label>\
<input id=\"fact-search\" type=\"search\" placeholder=\"memory, kernel, 10.0.…\" autocomplete=\"off\" spellcheck=\"false\">\
<span id=\"fact-count\" class=\"muted\" aria-live=\"polite\"></span></div>",
    );
    match &v.facts {
        Some(facts @ Value::Object(_)) => {
            body.push_str("<div class=\"facts\" id=\"facts\">");
            tree(&mut body, facts, "facts", true);
            body.push_str("</div>");
        }
        _ => body.push_str("<p class=\"muted\">No facts reported yet.</p>"),
    }
    Ok(render(&ui.frame(&v.name, Nav::Nodes, &who), &body))
}

fn exit(task: &TaskInfo) -> String {
    if crate::cmd::jobs::view::is_final(task.state()) && task.exit_code >= 0 {
        task.exit_code.to_string()
    } else {
        String::new()
    }
}

/// Number of leaves under `v`.
fn leaves(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.values().map(leaves).sum(),
        Value::Array(a) => a.iter().map(leaves).sum(),
        _ => 1,
    }
}

/// Renders `v` at `path` as nested `<details>` (objects, arrays) and leaves. Pure.
pub fn tree(out: &mut String, v: &Value, path: &str, top: bool) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    out.push_str("<ul>");
    for (key, child) in children {
        let child_path = format!("{path}.{key}");
        match child {
            Value::Object(_) | Value::Array(_) => {
                let open = top && leaves(child) <= OPEN_LEAVES;
                let _ = write!(
                    out,
                    "<li class=\"branch\"><details{}><summary>{} <span class=\"muted\">({})</span></summary>",
                    if open { " open" } else { "" },
                    Esc(&key),
                    leaves(child)
                );
                tree(out, child, &child_path, false);
                out.push_str("</details></li>");
            }
            leaf => {
                let text = match leaf {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = write!(
                    out,
                    "<li class=\"leaf\" data-path=\"{p}\"><span class=\"k\" title=\"{p}\">{}</span> <span class=\"v\">{}</span></li>",
                    Esc(&key),
                    Esc(&text),
                    p = Esc(&child_path),
                );
            }
        }
    }
    out.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_become_a_tree_with_selector_paths() {
        let facts: Value = serde_json::json!({
            "platform": {"cpus": 4, "os": "debian"},
            "hardware": {"disks": [{"model": "<x>"}]}
        });
        let mut out = String::new();
        tree(&mut out, &facts, "facts", true);
        assert!(out.contains("data-path=\"facts.platform.cpus\""), "{out}");
        assert!(out.contains("<span class=\"v\">4</span>"), "{out}");
        assert!(
            out.contains("data-path=\"facts.hardware.disks.0.model\""),
            "{out}"
        );
        assert!(out.contains("&lt;x&gt;"), "{out}");
        assert!(out.contains("<details open><summary>platform"), "{out}");
        assert_eq!(leaves(&facts), 3);
    }
}
