//! One module per dashboard page; each has a `get` handler that asks the coordinator, then
//! renders with `ui::html`. What several pages need (a job's state from its counts, the counts
//! bar, the recent jobs without their tasks, paging links) lives here.

pub mod backups;
pub mod job;
pub mod jobs;
pub mod node;
pub mod nodes;
pub mod overview;
pub mod schedules;
pub mod topology;

use std::fmt::Write as _;

use lab_proto::v1::{JobCounts, JobInfo};

use super::html::{self, Esc};
use super::server::{Client, PageError};

/// The overall state of a job from its counts (the words of `labctl jobs`). Pure.
pub fn job_state(job: &JobInfo) -> &'static str {
    let c = job.counts.unwrap_or_default();
    match (job.done, job.cancel_requested) {
        (false, false) => "running",
        (false, true) => "cancelling",
        (true, _) if c.total == 0 => "no_nodes",
        (true, _) if c.succeeded == c.total => "succeeded",
        (true, true) => "cancelled",
        (true, false) => "failed",
    }
}

/// Tasks neither pending nor final: assigned or running. Pure.
pub fn in_flight(c: &JobCounts) -> u32 {
    c.total.saturating_sub(c.pending).saturating_sub(c.finished)
}

/// The counts as a bar and words: succeeded, failed, other final, running, pending.
pub fn counts_bar(c: &JobCounts) -> String {
    let other = c.finished.saturating_sub(c.succeeded + c.failed);
    let running = in_flight(c);
    let bar = html::stacked_bar(&[
        ("good", c.succeeded.into(), "succeeded"),
        ("bad", c.failed.into(), "failed"),
        ("warn", other.into(), "cancelled or expired"),
        ("busy", running.into(), "running"),
        ("neutral", c.pending.into(), "pending"),
    ]);
    format!(
        "{bar}<span class=\"counts\">{} of {} ok{}</span>",
        c.succeeded,
        c.total,
        if c.failed + other > 0 {
            format!(", {} not", c.failed + other)
        } else {
            String::new()
        }
    )
}

/// The `limit` newest jobs, newest first, without their tasks.
pub async fn recent_jobs(client: &mut Client, limit: u32) -> Result<Vec<JobInfo>, PageError> {
    Ok(lab_proto::pages::recent_job_summaries(client, limit).await?)
}

/// A page of a long list: which items to show and the links to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page shown.
    pub page: usize,
    /// Items per page.
    pub per: usize,
    /// All items.
    pub total: usize,
}

impl Paging {
    /// Page `page` (clamped to the pages there are) of `total` items, `per` a page. Pure.
    pub fn new(page: Option<usize>, per: usize, total: usize) -> Paging {
        let per = per.max(1);
        let pages = total.div_ceil(per).max(1);
        Paging {
            page: page.unwrap_or(1).clamp(1, pages),
            per,
            total,
        }
    }

    /// Index range of the items on this page.
    pub fn range(&self) -> std::ops::Range<usize> {
        let start = (self.page - 1) * self.per;
        start.min(self.total)..(start + self.per).min(self.total)
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.per).max(1)
    }

    /// "1–100 of 10000" and previous/next links; `href(page)` makes a page's URL.
    pub fn nav(&self, href: impl Fn(usize) -> String) -> String {
        let r = self.range();
        let mut out = format!(
            "<nav class=\"paging\" aria-label=\"Pages\"><span>{}–{} of {}</span>",
            if self.total == 0 { 0 } else { r.start + 1 },
            r.end,
            self.total
        );
        if self.page > 1 {
            let _ = write!(
                out,
                "<a href=\"{}\" rel=\"prev\">← previous</a>",
                Esc(&href(self.page - 1))
            );
        }
        if self.page < self.pages() {
            let _ = write!(
                out,
                "<a href=\"{}\" rel=\"next\">next →</a>",
                Esc(&href(self.page + 1))
            );
        }
        out.push_str("</nav>");
        out
    }
}

/// The selector box: a GET form to `action` with the selector `value` and `hidden` inputs.
pub fn selector_form(
    action: &str,
    label: &str,
    value: &str,
    placeholder: &str,
    hidden: &str,
) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\" role=\"search\" class=\"selector\">\
<label for=\"l\">{label}</label>\
<input id=\"l\" name=\"l\" value=\"{}\" placeholder=\"{}\" \
autocomplete=\"off\" autocapitalize=\"off\" spellcheck=\"false\">{hidden}\
<button type=\"submit\">Filter</button></form>",
        Esc(value),
        Esc(placeholder),
    )
}

/// The selector's syntax error with the caret line, as labctl prints it; None when it parses.
pub fn selector_error(selector: &str) -> Option<String> {
    crate::cmd::nodes::parse_selector(selector).err().map(|e| {
        format!(
            "<pre class=\"error caret\" id=\"selector-error\" role=\"alert\">{}</pre>",
            html::EscText(&e.to_string())
        )
    })
}

/// A `<table>` wrapped so that it scrolls sideways on a phone instead of the page.
pub fn table(id: &str, head: &str, rows: &str) -> String {
    format!(
        "<div class=\"scroll\"><table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(done: bool, cancel: bool, counts: JobCounts) -> JobInfo {
        JobInfo {
            done,
            cancel_requested: cancel,
            counts: Some(counts),
            ..Default::default()
        }
    }

    #[test]
    fn job_states_come_from_the_counts() {
        let c = |total, succeeded, failed| JobCounts {
            total,
            finished: total,
            succeeded,
            failed,
            pending: 0,
        };
        assert_eq!(job_state(&job(false, false, c(2, 0, 0))), "running");
        assert_eq!(job_state(&job(false, true, c(2, 0, 0))), "cancelling");
        assert_eq!(job_state(&job(true, false, c(0, 0, 0))), "no_nodes");
        assert_eq!(job_state(&job(true, false, c(2, 2, 0))), "succeeded");
        assert_eq!(job_state(&job(true, false, c(2, 1, 1))), "failed");
        assert_eq!(job_state(&job(true, true, c(2, 1, 0))), "cancelled");
    }

    #[test]
    fn a_selector_typo_shows_the_caret() {
        let e = selector_error("role in (nas").unwrap_or_default();
        assert!(e.contains("id=\"selector-error\""), "{e}");
        assert!(e.contains('^'), "{e}");
        assert_eq!(selector_error("os=debian,role in (a,b)"), None);
    }

    #[test]
    fn paging_clamps_and_links() {
        let p = Paging::new(Some(7), 100, 250);
        assert_eq!((p.page, p.range()), (3, 200..250));
        let nav = p.nav(|n| format!("/x?page={n}"));
        assert!(nav.contains("201–250 of 250"), "{nav}");
        assert!(nav.contains("/x?page=2") && !nav.contains("next"), "{nav}");
        let empty = Paging::new(None, 100, 0);
        assert_eq!(empty.range(), 0..0);
        assert!(empty.nav(|_| String::new()).contains("0–0 of 0"));
    }

    #[test]
    fn counts_say_what_the_bar_shows() {
        let c = JobCounts {
            total: 4,
            pending: 1,
            finished: 2,
            succeeded: 1,
            failed: 1,
        };
        assert_eq!(in_flight(&c), 1);
        let bar = counts_bar(&c);
        assert!(bar.contains("1 of 4 ok, 1 not"), "{bar}");
        assert!(
            bar.contains("1 running") && bar.contains("1 pending"),
            "{bar}"
        );
    }
}
