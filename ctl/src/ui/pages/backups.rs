//! `GET /backups?l=SELECTOR`: per node and backup name, the age of the last success against
//! its `maxAge` as a bar coloured by the health the coordinator computed (green, amber, red),
//! the last attempt and the last restore drill.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use lab_proto::v1::ListBackupsRequest;
use serde::Deserialize;

use crate::cmd::backups::{view, BackupView};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// Query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Selector of the nodes.
    #[serde(default)]
    pub l: String,
}

/// The age bar: filled by age / maxAge (full when over it or never succeeded). Pure.
pub fn age_bar(v: &BackupView) -> String {
    let (fill, text) = match (v.age_seconds, v.max_age_seconds) {
        (None, _) => (100.0, "never succeeded".to_owned()),
        (Some(age), Some(max)) if max > 0 => (
            (age as f64 * 100.0 / max as f64).min(100.0),
            format!(
                "{} of {}",
                output::human_secs(age),
                humantime::format_duration(std::time::Duration::from_secs(max))
            ),
        ),
        (Some(age), _) => (0.0, format!("{} (no maxAge)", output::human_secs(age))),
    };
    let label = format!("{}: {text}", v.health);
    format!(
        "{}<span class=\"agetext\">{}</span>",
        html::fill_bar(html::state_class(v.health), fill, &label),
        Esc(&text)
    )
}

/// The backups table (also on a node's page).
pub fn table(views: &[BackupView], now: i64) -> String {
    let mut rows = String::new();
    for v in views {
        let drill = match (v.last_drill_ok, &v.drill) {
            (None, _) => "<span class=\"muted\">never</span>".to_owned(),
            (Some(ok), drill) => format!(
                "{} {}{}",
                html::badge(if ok { "ok" } else { "failed" }),
                time(v.last_drill_unix_ms, now),
                drill
                    .as_ref()
                    .map(|d| format!(
                        " <span class=\"muted\">{} of {} files</span>",
                        d.files_verified, d.files_in_snapshot
                    ))
                    .unwrap_or_default()
            ),
        };
        let attempt = match (&v.last_attempt_state, &v.last_attempt_error) {
            (Some(state), Some(err)) => format!("{} {}", html::badge(state), Esc(err)),
            (Some(state), None) => html::badge(state),
            (None, _) => String::new(),
        };
        let _ = write!(
            rows,
            "<tr id=\"backup-{node}-{name}\" data-health=\"{health}\"><td><a href=\"/nodes/{url}\">{node}</a></td>\
<td>{name}</td><td>{badge}</td><td class=\"bar\">{bar}</td><td>{success}</td><td class=\"num\">{size}</td>\
<td>{attempt}</td><td>{drill}</td></tr>",
            node = Esc(&v.node),
            url = Url(&v.node),
            name = Esc(&v.name),
            health = v.health,
            badge = html::badge(v.health),
            bar = age_bar(v),
            success = time(output::unix_ms(v.last_success.as_deref()), now),
            size = v.size_bytes.map(output::bytes).unwrap_or_default(),
        );
    }
    super::table(
        "backups",
        "<th>Node</th><th>Backup</th><th>Health</th><th>Age vs maxAge</th><th>Last success</th><th>Size</th><th>Last attempt</th><th>Last drill</th>",
        &rows,
    )
}

/// `GET /backups`.
pub async fn get(State(ui): State<Arc<Ui>>, Query(p): Query<Params>) -> PageResult {
    let who = ui.who().await?;
    let selector = p.l.trim().to_owned();
    let mut body = super::selector_form("/backups", "Nodes", &selector, "role=nas", "");
    if let Some(error) = super::selector_error(&selector) {
        body.push_str(&error);
        return Ok(render(&ui.frame("Backups", Nav::Backups, &who), &body));
    }
    let now = output::now_ms();
    let backups = ui
        .client()
        .list_backups(ListBackupsRequest { selector })
        .await?
        .into_inner()
        .backups;
    let views: Vec<BackupView> = backups.into_iter().map(|b| view(b, now)).collect();
    if views.is_empty() {
        body.push_str("<p class=\"muted\">No backup records: they appear when a backup task with a name (or a job name) has run.</p>");
    } else {
        let count = |h: &str| views.iter().filter(|v| v.health == h).count();
        let _ = write!(
            body,
            "<p id=\"backups-summary\"><span class=\"good\">{} green</span> · <span class=\"warn\">{} amber</span> · <span class=\"bad\">{} red</span></p>",
            count("green"),
            count("amber"),
            count("red")
        );
        body.push_str(&table(&views, now));
    }
    Ok(render(&ui.frame("Backups", Nav::Backups, &who), &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{BackupHealth, BackupStatus};

    #[test]
    fn the_bar_fills_with_age_and_takes_the_health_colour() {
        let now = 100 * 3600 * 1000;
        let status = |age_h: i64, max_h: u64, health: BackupHealth| BackupStatus {
            node: "n1".into(),
            name: "home".into(),
            max_age_ms: max_h * 3600 * 1000,
            last_success_unix_ms: now - age_h * 3600 * 1000,
            health: health as i32,
            ..Default::default()
        };
        let green = age_bar(&view(status(13, 26, BackupHealth::Green), now));
        assert!(
            green.contains("agebar good") && green.contains("width=\"50.0\""),
            "{green}"
        );
        assert!(green.contains("13h of 1day 2h"), "{green}");
        let red = age_bar(&view(status(52, 26, BackupHealth::Red), now));
        assert!(
            red.contains("agebar bad") && red.contains("width=\"100.0\""),
            "{red}"
        );
        let mut never = status(0, 26, BackupHealth::Red);
        never.last_success_unix_ms = 0;
        assert!(age_bar(&view(never, now)).contains("never succeeded"));
    }
}
