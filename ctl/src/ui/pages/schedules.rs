//! `GET /schedules`: every schedule with its next and last firing and the last job's result;
//! pause and resume buttons for operators and admins.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use lab_proto::v1::ListSchedulesRequest;

use crate::cmd::schedule::view::ScheduleView;
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// `GET /schedules`.
pub async fn get(State(ui): State<Arc<Ui>>) -> PageResult {
    let who = ui.who().await?;
    let mut schedules = ui
        .client()
        .list_schedules(ListSchedulesRequest {})
        .await?
        .into_inner()
        .schedules;
    schedules.sort_by(|a, b| {
        let name = |s: &lab_proto::v1::Schedule| s.spec.as_ref().map(|s| s.name.clone());
        name(a).cmp(&name(b))
    });
    let now = output::now_ms();
    let mut rows = String::new();
    for s in &schedules {
        let v = ScheduleView::from(s);
        let state = if v.paused { "paused" } else { "active" };
        let result = match (&v.last_error, v.last_result) {
            (Some(e), _) => format!("{} {}", html::badge("failed"), Esc(e)),
            (None, Some(r)) => html::badge(r),
            (None, None) => String::new(),
        };
        let last_job = v
            .last_job_id
            .as_deref()
            .map(|j| format!("<a href=\"/jobs/{}\"><code>{}</code></a>", Url(j), Esc(j)))
            .unwrap_or_default();
        let action = match (who.can_act, v.paused) {
            (false, _) => String::new(),
            (true, false) => html::action_button(
                &format!("/schedules/{}/pause", Url(&v.name)),
                "Pause",
                &ui.keys.csrf,
                None,
            ),
            (true, true) => html::action_button(
                &format!("/schedules/{}/resume", Url(&v.name)),
                "Resume",
                &ui.keys.csrf,
                None,
            ),
        };
        let _ = write!(
            rows,
            "<tr id=\"schedule-{name}\" data-state=\"{state}\"><td><b>{name}</b></td><td>{kind} <code>{desc}</code></td>\
<td><code>{cron}</code> <span class=\"muted\">{tz}</span></td><td>{badge}</td><td>{next}</td><td>{last}</td>\
<td>{last_job}</td><td>{result}</td><td>{action}</td></tr>",
            name = Esc(&v.name),
            kind = v.kind,
            desc = Esc(&v.description),
            cron = Esc(&v.cron),
            tz = Esc(&v.timezone),
            badge = html::badge(state),
            next = time(s.next_unix_ms, now),
            last = time(s.last_fired_unix_ms, now),
        );
    }
    let body = if schedules.is_empty() {
        "<p class=\"muted\">No schedules: <code>labctl schedule create</code> or a <code>kind: Schedule</code> spec makes one.</p>".to_owned()
    } else {
        super::table(
            "schedules",
            "<th>Name</th><th>Job</th><th>Cron</th><th>State</th><th>Next</th><th>Last</th><th>Last job</th><th>Result</th><th></th>",
            &rows,
        )
    };
    Ok(render(&ui.frame("Schedules", Nav::Schedules, &who), &body))
}
