//! `GET /`: the fleet at a glance — nodes online/offline, OS and agent version mix, backups by
//! health, jobs that failed in the last 24 hours, the schedules firing next, and whether the
//! coordinator answers (and how fast).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use lab_proto::v1::{BackupHealth, ListBackupsRequest, ListSchedulesRequest, Node};

use super::{counts_bar, job_state, recent_jobs};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// Jobs looked at for the "failed in the last 24 hours" list.
const RECENT_JOBS: u32 = 500;
/// Schedules listed as firing next.
const NEXT_SCHEDULES: usize = 5;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// `GET /`.
pub async fn get(State(ui): State<Arc<Ui>>) -> PageResult {
    let started = Instant::now();
    let who = ui.who().await?;
    let rtt = started.elapsed();
    let (mut c1, mut c2, mut c3, mut c4) = (ui.client(), ui.client(), ui.client(), ui.client());
    let (nodes, backups, jobs, schedules) = tokio::join!(
        lab_proto::pages::all_nodes(&mut c1, ""),
        c2.list_backups(ListBackupsRequest::default()),
        recent_jobs(&mut c3, RECENT_JOBS),
        c4.list_schedules(ListSchedulesRequest {}),
    );
    let nodes = nodes?;
    let backups = backups?.into_inner().backups;
    let jobs = jobs?;
    let schedules = schedules?.into_inner().schedules;
    let now = output::now_ms();
    let mut body = String::from("<div class=\"cards\">");

    // Nodes.
    let online = nodes.iter().filter(|n| n.online).count();
    let revoked = nodes.iter().filter(|n| n.revoked).count();
    let offline = nodes.iter().filter(|n| !n.online && !n.revoked).count();
    let _ = write!(
        body,
        "<section class=\"card\" id=\"card-nodes\"><h2><a href=\"/nodes\">Nodes</a></h2>\
<p class=\"big\"><span id=\"nodes-online\">{online}</span> online · \
<a href=\"/nodes?l=status%3Doffline\" id=\"nodes-offline\" class=\"{}\">{offline} offline</a> · \
<span id=\"nodes-total\">{}</span> total</p>{}",
        if offline > 0 { "bad" } else { "" },
        nodes.len(),
        html::stacked_bar(&[
            ("good", online as u64, "online"),
            ("bad", offline as u64, "offline"),
            ("neutral", revoked as u64, "revoked"),
        ])
    );
    body.push_str(&mix("OS", &os_mix(&nodes), "os-mix"));
    body.push_str(&mix(
        "Agent versions",
        &count_by(&nodes, |n| {
            if n.agent_version.is_empty() {
                "unknown".into()
            } else {
                n.agent_version.clone()
            }
        }),
        "agent-mix",
    ));
    body.push_str("</section>");

    // Backups.
    let mut health = [0u64; 4];
    for b in &backups {
        health[b.health() as usize] += 1;
    }
    let _ = write!(
        body,
        "<section class=\"card\" id=\"card-backups\"><h2><a href=\"/backups\">Backups</a></h2>\
<p class=\"big\"><span class=\"good\">{} green</span> · <span class=\"warn\">{} amber</span> · \
<span class=\"bad\" id=\"backups-red\">{} red</span>{}</p>{}</section>",
        health[BackupHealth::Green as usize],
        health[BackupHealth::Amber as usize],
        health[BackupHealth::Red as usize],
        match health[BackupHealth::Unspecified as usize] {
            0 => String::new(),
            n => format!(" · {n} without maxAge"),
        },
        html::stacked_bar(&[
            ("good", health[1], "green"),
            ("warn", health[2], "amber"),
            ("bad", health[3], "red"),
            ("neutral", health[0], "without maxAge"),
        ])
    );

    // Coordinator.
    let _ = write!(
        body,
        "<section class=\"card\" id=\"card-coordinator\"><h2>Coordinator</h2>\
<p class=\"big\"><span class=\"good\">reachable</span></p>\
<p>{} · answered in {} ms · as <b>{}</b> ({}) with context {}</p></section>",
        Esc(&ui.coordinator),
        rtt.as_millis(),
        Esc(&who.user),
        who.role,
        Esc(&who.context)
    );
    body.push_str("</div>");

    // Failed jobs of the last 24 h.
    let failed: Vec<_> = jobs
        .iter()
        .filter(|j| j.submitted_unix_ms >= now - DAY_MS)
        .filter(|j| job_state(j) == "failed")
        .collect();
    let _ = write!(
        body,
        "<section id=\"failed-jobs\"><h2>Failed jobs, last 24 hours ({})</h2>",
        failed.len()
    );
    if failed.is_empty() {
        body.push_str("<p class=\"muted\">None.</p>");
    } else {
        let mut rows = String::new();
        for j in failed {
            let spec = j.spec.clone().unwrap_or_default();
            let (kind, description) = crate::cmd::jobs::view::describe(&spec);
            let _ = write!(
                rows,
                "<tr><td><a href=\"/jobs/{}\">{}</a></td><td>{}</td><td>{kind} <code>{}</code></td><td>{}</td><td>{}</td></tr>",
                Url(&j.job_id),
                Esc(&j.job_id),
                html::badge(job_state(j)),
                Esc(&description),
                counts_bar(&j.counts.unwrap_or_default()),
                time(j.submitted_unix_ms, now)
            );
        }
        body.push_str(&super::table(
            "failed-jobs-table",
            "<th>Job</th><th>State</th><th>Task</th><th>Tasks</th><th>Submitted</th>",
            &rows,
        ));
    }
    body.push_str("</section>");

    // Schedules firing next.
    let mut next: Vec<_> = schedules
        .iter()
        .filter(|s| !s.paused && s.next_unix_ms > 0)
        .collect();
    next.sort_by_key(|s| s.next_unix_ms);
    let _ = write!(
        body,
        "<section id=\"next-schedules\"><h2><a href=\"/schedules\">Schedules firing next</a></h2>"
    );
    if next.is_empty() {
        body.push_str("<p class=\"muted\">No active schedule.</p>");
    } else {
        body.push_str("<ul class=\"plain\">");
        for s in next.into_iter().take(NEXT_SCHEDULES) {
            let name = s.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("");
            let _ = write!(
                body,
                "<li><b>{}</b> {}</li>",
                Esc(name),
                time(s.next_unix_ms, now)
            );
        }
        body.push_str("</ul>");
    }
    body.push_str("</section>");
    Ok(render(&ui.frame("Overview", Nav::Overview, &who), &body))
}

/// "debian 12" per node (from the derived labels), counted.
fn os_mix(nodes: &[Node]) -> BTreeMap<String, usize> {
    count_by(nodes, |n| {
        match (n.labels.get("os"), n.labels.get("os-version")) {
            (Some(os), Some(v)) => format!("{os} {v}"),
            (Some(os), None) => os.clone(),
            _ => "unknown".into(),
        }
    })
}

fn count_by(nodes: &[Node], key: impl Fn(&Node) -> String) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in nodes {
        *out.entry(key(n)).or_insert(0) += 1;
    }
    out
}

/// A small list of values with counts, most common first.
fn mix(title: &str, counts: &BTreeMap<String, usize>, id: &str) -> String {
    let mut items: Vec<_> = counts.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out = format!("<h3>{title}</h3><ul class=\"mix\" id=\"{id}\">");
    for (value, n) in items.iter().take(8) {
        let _ = write!(out, "<li><span>{}</span> <b>{n}</b></li>", Esc(value));
    }
    if items.len() > 8 {
        let _ = write!(out, "<li class=\"muted\">and {} more</li>", items.len() - 8);
    }
    out.push_str("</ul>");
    out
}
