//! `GET /jobs?page=N`: the job history, newest first, with state and task counts (from the
//! coordinator's counts, so a job to 10,000 nodes costs no more than one to 1).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use serde::Deserialize;

use super::{counts_bar, job_state, recent_jobs, Paging};
use crate::cmd::jobs::view::describe;
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// Jobs listed over all pages.
const LISTED: u32 = 1000;
/// Rows a page.
const PER_PAGE: usize = 50;

/// Query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// 1-based page.
    pub page: Option<usize>,
}

/// `GET /jobs`.
pub async fn get(State(ui): State<Arc<Ui>>, Query(p): Query<Params>) -> PageResult {
    let who = ui.who().await?;
    let jobs = recent_jobs(&mut ui.client(), LISTED).await?;
    let now = output::now_ms();
    let paging = Paging::new(p.page, PER_PAGE, jobs.len());
    let pager = paging.nav(|n| format!("/jobs?page={n}"));
    let mut rows = String::new();
    for j in &jobs[paging.range()] {
        let spec = j.spec.clone().unwrap_or_default();
        let (kind, description) = describe(&spec);
        let name = if spec.name.is_empty() {
            String::new()
        } else {
            format!("<span class=\"muted\">{}</span> ", Esc(&spec.name))
        };
        let duration = if j.finished_unix_ms > 0 {
            output::human_secs(((j.finished_unix_ms - j.submitted_unix_ms).max(0) / 1000) as u64)
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            "<tr id=\"job-{id}\" data-state=\"{st}\"><td><a href=\"/jobs/{url}\"><code>{id}</code></a></td><td>{badge}</td>\
<td>{name}{kind} <code>{desc}</code></td><td class=\"bar\">{counts}</td><td>{by}</td><td>{at}</td><td class=\"num\">{duration}</td></tr>",
            id = Esc(&j.job_id),
            url = Url(&j.job_id),
            st = job_state(j),
            badge = html::badge(job_state(j)),
            desc = Esc(&description),
            counts = counts_bar(&j.counts.unwrap_or_default()),
            by = Esc(&j.submitted_by),
            at = time(j.submitted_unix_ms, now),
        );
    }
    let mut body = String::new();
    if jobs.is_empty() {
        body.push_str(
            "<p class=\"muted\">No jobs yet: <code>labctl run -- uptime</code> makes one.</p>",
        );
    } else {
        body.push_str(&pager);
        body.push_str(&super::table(
            "jobs",
            "<th>Job</th><th>State</th><th>Task</th><th>Tasks</th><th>By</th><th>Submitted</th><th>Took</th>",
            &rows,
        ));
        if paging.pages() > 1 {
            body.push_str(&pager);
        }
    }
    Ok(render(&ui.frame("Jobs", Nav::Jobs, &who), &body))
}
