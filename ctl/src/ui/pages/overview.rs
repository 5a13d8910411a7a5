//! `GET /`: the fleet at a glance — nodes online/offline, OS and agent version mix, backups by
//! health, jobs that failed in the last 24 hours, the schedules firing next, and whether the
//! coordinator answers (and how fast).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use lab_proto::v1::{
    BackupHealth, CountNodesRequest, CountNodesResponse, ListBackupsRequest, ListSchedulesRequest,
};

use super::{counts_bar, job_state, recent_jobs};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// Jobs looked at for the "failed in the last 24 hours" list.
const RECENT_JOBS: u32 = 500;
/// The grouping of the OS mix: "debian 12".
const OS_MIX: &str = "os,os-version";
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
        c1.count_nodes(CountNodesRequest {
            selector: String::new(),
            group_by: vec![OS_MIX.into()],
        }),
        c2.list_backups(ListBackupsRequest::default()),
        recent_jobs(&mut c3, RECENT_JOBS),
        c4.list_schedules(ListSchedulesRequest {}),
    );
    let nodes = nodes?.into_inner();
    let backups = backups?.into_inner().backups;
    let jobs = jobs?;
    let schedules = schedules?.into_inner().schedules;
    let now = output::now_ms();
    let mut body = String::from("<div class=\"cards\">");

    // Nodes.
    let _ = write!(
        body,
        "<section class=\"card\" id=\"card-nodes\"><h2><a href=\"/nodes\">Nodes</a></h2>\
<p class=\"big\"><span id=\"nodes-online\">{}</span> online · \
<a href=\"/nodes?l=status%3Doffline\" id=\"nodes-offline\" class=\"{}\">{} offline</a> · \
<span id=\"nodes-total\">{}</span> total</p>{}",
        nodes.online,
        if nodes.offline > 0 { "bad" } else { "" },
        nodes.offline,
        nodes.total,
        html::stacked_bar(&[
            ("good", nodes.online.into(), "online"),
            ("bad", nodes.offline.into(), "offline"),
            ("neutral", nodes.revoked.into(), "revoked"),
        ])
    );
    let (os, other) = os_mix(&nodes);
    body.push_str(&mix("OS", &os, other, "os-mix"));
    let agents: Vec<(String, u64)> = nodes
        .agent_versions
        .iter()
        .map(|(v, n)| {
            let v = if v.is_empty() { "unknown" } else { v };
            (v.to_owned(), u64::from(*n))
        })
        .collect();
    body.push_str(&mix("Agent versions", &agents, 0, "agent-mix"));
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

/// "debian 12" per node (from the derived labels) as the coordinator counted them, and the
/// nodes in combinations it left out. Pure.
fn os_mix(counts: &CountNodesResponse) -> (Vec<(String, u64)>, u64) {
    let Some(groups) = counts.groups.first() else {
        return (Vec::new(), 0);
    };
    let mix = groups
        .groups
        .iter()
        .map(|g| {
            let text = match g.values.as_slice() {
                [os, v] if !os.is_empty() && !v.is_empty() => format!("{os} {v}"),
                [os, _] if !os.is_empty() => os.clone(),
                _ => "unknown".into(),
            };
            (text, u64::from(g.nodes))
        })
        .collect();
    (mix, groups.other_nodes.into())
}

/// A small list of values with counts, most common first; `other` nodes were not counted by
/// value.
fn mix(title: &str, counts: &[(String, u64)], other: u64, id: &str) -> String {
    let mut items: Vec<&(String, u64)> = counts.iter().collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out = format!("<h3>{title}</h3><ul class=\"mix\" id=\"{id}\">");
    for (value, n) in items.iter().take(8) {
        let _ = write!(out, "<li><span>{}</span> <b>{n}</b></li>", Esc(value));
    }
    let more: u64 = items.iter().skip(8).map(|(_, n)| n).sum::<u64>() + other;
    if more > 0 {
        let _ = write!(out, "<li class=\"muted\">and {more} more</li>");
    }
    out.push_str("</ul>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{NodeGroup, NodeGroups};

    #[test]
    fn the_os_mix_reads_the_coordinators_counts() {
        let group = |os: &str, v: &str, nodes| NodeGroup {
            values: vec![os.into(), v.into()],
            nodes,
        };
        let counts = CountNodesResponse {
            groups: vec![NodeGroups {
                keys: vec!["os".into(), "os-version".into()],
                groups: vec![
                    group("debian", "12", 5),
                    group("", "", 2),
                    group("alpine", "", 1),
                ],
                other_nodes: 3,
            }],
            ..Default::default()
        };
        let (os, other) = os_mix(&counts);
        assert_eq!(
            os,
            [
                ("debian 12".into(), 5),
                ("unknown".into(), 2),
                ("alpine".into(), 1)
            ]
        );
        let out = mix("OS", &os, other, "os-mix");
        assert!(out.contains("<span>debian 12</span> <b>5</b>"), "{out}");
        assert!(out.contains("and 3 more"), "{out}");
    }
}
