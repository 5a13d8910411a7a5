//! `GET /jobs/{id}?page=N`: one job — what it runs, its counts, cancel and "run again" for
//! operators and admins, its tasks (100 a page) and their output. The page's script follows
//! `/jobs/{id}/events` (see `ui::live`): stored output first, then live lines, task states and
//! backup progress as they happen; rows and output boxes have fixed places, so nothing jumps.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use lab_proto::v1::{GetJobRequest, JobInfo, TaskInfo};
use serde::Deserialize;

use super::{counts_bar, job_state, Paging};
use crate::cmd::jobs::view::{describe, is_final, task_state_name};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, Client, PageError, PageResult, Ui};

/// Task rows a page.
const PER_PAGE: usize = 100;
/// Output boxes start open up to this many tasks on the page.
const OPEN_OUTPUTS: usize = 10;

/// Query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// 1-based page of tasks.
    pub page: Option<usize>,
}

/// How long a finished task ran ("3s"); None unless it started and finished. Pure.
pub fn took(t: &TaskInfo) -> Option<String> {
    (t.started_unix_ms > 0 && t.finished_unix_ms >= t.started_unix_ms)
        .then(|| output::human_secs(((t.finished_unix_ms - t.started_unix_ms) / 1000) as u64))
}

/// The job with its tasks up to the end of `page` (pages of [`PER_PAGE`]).
async fn job_through(client: &mut Client, id: &str, page: usize) -> Result<JobInfo, PageError> {
    let wanted = page.saturating_mul(PER_PAGE);
    let mut job = client
        .get_job(GetJobRequest {
            job_id: id.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    while !job.next_page_token.is_empty() && job.tasks.len() < wanted {
        let next = client
            .get_job(GetJobRequest {
                job_id: id.to_owned(),
                page_token: std::mem::take(&mut job.next_page_token),
                ..Default::default()
            })
            .await?
            .into_inner();
        job.tasks.extend(next.tasks);
        job.next_page_token = next.next_page_token;
    }
    Ok(job)
}

/// `GET /jobs/{id}`.
pub async fn get(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> PageResult {
    let who = ui.who().await?;
    let page = p.page.unwrap_or(1).max(1);
    let job = job_through(&mut ui.client(), &id, page).await?;
    let counts = job.counts.unwrap_or_default();
    let paging = Paging::new(Some(page), PER_PAGE, counts.total as usize);
    let now = output::now_ms();
    let spec = job.spec.clone().unwrap_or_default();
    let (kind, description) = describe(&spec);
    let state = job_state(&job);
    let mut body = format!(
        "<section id=\"job\" data-job=\"{id}\" data-events=\"/jobs/{url}/events\" data-done=\"{done}\">",
        id = Esc(&job.job_id),
        url = Url(&job.job_id),
        done = job.done,
    );
    let _ = write!(
        body,
        "<dl class=\"facts-summary\"><dt>State</dt><dd id=\"job-state\">{}</dd>\
<dt>Task</dt><dd>{kind} <code>{}</code></dd><dt>Selector</dt><dd><code>{}</code></dd>\
<dt>Submitted</dt><dd>{} by {}</dd><dt>Finished</dt><dd id=\"job-finished\">{}</dd>\
<dt>Tasks</dt><dd class=\"bar\" id=\"job-counts\">{}</dd></dl>",
        html::badge(state),
        Esc(&description),
        Esc(if spec.selector.is_empty() {
            "(every node)"
        } else {
            &spec.selector
        }),
        time(job.submitted_unix_ms, now),
        Esc(&job.submitted_by),
        time(job.finished_unix_ms, now),
        counts_bar(&counts),
    );
    if who.can_act {
        body.push_str("<div class=\"actions\" id=\"job-actions\">");
        if !job.done {
            body.push_str(&html::action_button(
                &format!("/jobs/{}/cancel", Url(&job.job_id)),
                "Cancel",
                &ui.keys.csrf,
                Some("Cancel the unfinished tasks of this job?"),
            ));
        }
        body.push_str(&html::action_button(
            &format!("/jobs/{}/rerun", Url(&job.job_id)),
            "Run again",
            &ui.keys.csrf,
            Some("Submit this job again, to the nodes its selector matches now?"),
        ));
        body.push_str("</div>");
    } else {
        body.push_str("<p class=\"muted\" id=\"read-only\">Read-only: your role is viewer.</p>");
    }

    let pager = paging.nav(|n| format!("/jobs/{}?page={n}", Url(&job.job_id)));
    let range = paging.range();
    let tasks: &[TaskInfo] = job
        .tasks
        .get(range.start.min(job.tasks.len())..range.end.min(job.tasks.len()))
        .unwrap_or(&[]);
    body.push_str("<h2>Tasks</h2>");
    if paging.pages() > 1 {
        body.push_str(&pager);
    }
    let mut rows = String::new();
    for t in tasks {
        let duration = took(t).unwrap_or_default();
        let exit = if is_final(t.state()) && t.exit_code >= 0 {
            t.exit_code.to_string()
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            "<tr id=\"task-{tid}\" data-task=\"{tid}\" data-node=\"{node}\" data-state=\"{st}\">\
<td><a href=\"/nodes/{url}\">{node}</a></td><td class=\"state\">{badge}</td>\
<td class=\"num exit\">{exit}</td><td class=\"started\">{started}</td><td class=\"num took\">{duration}</td>\
<td class=\"progress\"><progress max=\"100\" hidden></progress> <span class=\"ptext\"></span></td>\
<td class=\"err\">{err}</td></tr>",
            tid = Esc(&t.task_id),
            node = Esc(&t.node),
            url = Url(&t.node),
            st = task_state_name(t),
            badge = html::badge(task_state_name(t)),
            started = time(t.started_unix_ms, now),
            err = Esc(&t.error),
        );
    }
    body.push_str(&super::table(
        "tasks",
        "<th>Node</th><th>State</th><th>Exit</th><th>Started</th><th>Took</th><th>Progress</th><th>Error</th>",
        &rows,
    ));
    body.push_str("<h2>Output</h2><noscript><p>Output is streamed by the page's script; `labctl job logs` shows it too.</p></noscript><div id=\"outputs\">");
    for t in tasks {
        let _ = write!(
            body,
            "<details class=\"output\" data-task=\"{tid}\"{open}><summary>{node}</summary>\
<pre id=\"out-{tid}\" class=\"lines\" tabindex=\"0\"></pre></details>",
            tid = Esc(&t.task_id),
            node = Esc(&t.node),
            open = if tasks.len() <= OPEN_OUTPUTS {
                " open"
            } else {
                ""
            },
        );
    }
    body.push_str("</div>");
    if paging.pages() > 1 {
        body.push_str(&pager);
    }
    body.push_str("</section>");
    let title = format!("Job {}", job.job_id);
    Ok(render(&ui.frame(&title, Nav::Jobs, &who), &body))
}
