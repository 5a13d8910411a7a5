//! HTML building blocks of `labctl ui`: escaping, the page frame (navigation, who is signed in,
//! the stylesheet and script), times shown relative with the absolute time on hover, badges and
//! bars. Pure: pages build their bodies with these and never write text from the coordinator
//! into HTML any other way.
//!
//! Text from nodes, specs and the coordinator goes through [`Esc`] (or [`EscLine`] for task
//! output): the terminal escaping of `crate::output` first (controls, bidi overrides and
//! zero-width characters become visible `\u{202e}`-style escapes, as in labctl's tables), then
//! HTML escaping, so a node cannot inject markup or hide and reorder text on the page.

use std::fmt::{self, Display, Write as _};

use crate::output;

/// Pages of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`
    Overview,
    /// `/nodes` and node pages
    Nodes,
    /// `/jobs` and job pages
    Jobs,
    /// `/backups`
    Backups,
    /// `/schedules`
    Schedules,
    /// `/topology`
    Topology,
}

impl Nav {
    /// Every entry, in the bar's order.
    pub const ALL: [Nav; 6] = [
        Nav::Overview,
        Nav::Nodes,
        Nav::Jobs,
        Nav::Backups,
        Nav::Schedules,
        Nav::Topology,
    ];

    /// Path and label.
    pub fn link(self) -> (&'static str, &'static str) {
        match self {
            Nav::Overview => ("/", "Overview"),
            Nav::Nodes => ("/nodes", "Nodes"),
            Nav::Jobs => ("/jobs", "Jobs"),
            Nav::Backups => ("/backups", "Backups"),
            Nav::Schedules => ("/schedules", "Schedules"),
            Nav::Topology => ("/topology", "Topology"),
        }
    }
}

/// Who the dashboard acts as, shown in the header.
#[derive(Debug, Clone)]
pub struct Who {
    /// User name from the context's certificate.
    pub user: String,
    /// viewer, operator or admin.
    pub role: &'static str,
    /// Whether the role may run, cancel and pause (operator or admin).
    pub can_act: bool,
    /// labctl context name.
    pub context: String,
}

/// One page's frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// `<title>` and `<h1>`.
    pub title: &'a str,
    /// Highlighted navigation entry.
    pub nav: Nav,
    /// Who is acting.
    pub who: &'a Who,
    /// The run's CSRF token, for forms and the script.
    pub csrf: &'a str,
}

/// A value escaped for HTML text and attributes (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        html_escape(f, &output::escape(self.0))
    }
}

/// A line of task output: as [`Esc`], but tabs are kept.
#[derive(Debug, Clone, Copy)]
pub struct EscLine<'a>(pub &'a str);

impl Display for EscLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        html_escape(f, &output::escape_line(self.0))
    }
}

/// Several lines (an error message with its caret line): as [`EscLine`], newlines kept.
#[derive(Debug, Clone, Copy)]
pub struct EscText<'a>(pub &'a str);

impl Display for EscText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        html_escape(f, &output::escape_text(self.0))
    }
}

/// A value for a URL path segment or query value: everything but unreserved characters is
/// percent-encoded (the result needs no HTML escaping).
#[derive(Debug, Clone, Copy)]
pub struct Url<'a>(pub &'a str);

impl Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                f.write_char(b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

fn html_escape(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '&' => f.write_str("&amp;")?,
            '<' => f.write_str("&lt;")?,
            '>' => f.write_str("&gt;")?,
            '"' => f.write_str("&quot;")?,
            '\'' => f.write_str("&#39;")?,
            c => f.write_char(c)?,
        }
    }
    Ok(())
}

/// "3m ago" / "in 5m" for Unix ms `at` seen at `now_ms`. Pure.
pub fn relative(at: i64, now_ms: i64) -> String {
    let d = now_ms - at;
    if d.abs() < 1000 {
        return "now".into();
    }
    let text = output::human_secs((d.unsigned_abs()) / 1000);
    if d > 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// A `<time>` element: relative text, the absolute UTC time on hover (and for the script, which
/// keeps the relative text current); "–" for 0 (never).
pub fn time(at: i64, now_ms: i64) -> String {
    match output::time(at) {
        None => "<span class=\"muted\">–</span>".into(),
        Some(abs) => format!(
            "<time datetime=\"{abs}\" title=\"{abs}\">{}</time>",
            relative(at, now_ms)
        ),
    }
}

/// CSS class of a task, job, node or backup state word.
pub fn state_class(state: &str) -> &'static str {
    match state {
        "online" | "succeeded" | "green" | "ok" | "active" => "good",
        "failed" | "timed_out" | "lost" | "red" | "offline" | "revoked" | "no_nodes" => "bad",
        "amber" | "expired" | "cancelling" | "paused" => "warn",
        "running" | "assigned" => "busy",
        _ => "neutral",
    }
}

/// A state word as a coloured badge (the word stays readable without colour).
pub fn badge(state: &str) -> String {
    format!(
        "<span class=\"badge {}\" data-state=\"{}\">{}</span>",
        state_class(state),
        Esc(state),
        Esc(state)
    )
}

/// A horizontal bar of segments `(css class, count, title)`, widths by share of the sum. An
/// SVG (widths as attributes): the page's Content-Security-Policy allows no inline styles.
pub fn stacked_bar(segments: &[(&str, u64, &str)]) -> String {
    let total: u64 = segments.iter().map(|s| s.1).sum();
    let words: Vec<String> = segments
        .iter()
        .filter(|s| s.1 > 0)
        .map(|(_, n, t)| format!("{n} {t}"))
        .collect();
    let mut out = format!(
        "<svg class=\"stack\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}\">",
        Esc(&words.join(", "))
    );
    let mut x = 0.0;
    if total > 0 {
        for (class, n, title) in segments.iter().filter(|s| s.1 > 0) {
            let w = *n as f64 * 100.0 / total as f64;
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.2}\" width=\"{w:.2}\" height=\"10\"><title>{n} {}</title></rect>",
                Esc(title)
            );
            x += w;
        }
    }
    out.push_str("</svg>");
    out
}

/// A bar filled to `percent` (0–100) in the colour of `class`, with `label` for screen readers
/// and on hover. An SVG, as [`stacked_bar`].
pub fn fill_bar(class: &str, percent: f64, label: &str) -> String {
    format!(
        "<svg class=\"agebar {class}\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{l}\">\
<title>{l}</title><rect class=\"fill\" width=\"{:.1}\" height=\"10\"/></svg>",
        percent.clamp(0.0, 100.0),
        l = Esc(label),
    )
}

/// The whole page: head, header with navigation and identity, `<main>` with `body`.
pub fn page(frame: &Frame<'_>, body: &str) -> String {
    let mut nav = String::new();
    for entry in Nav::ALL {
        let (href, label) = entry.link();
        let current = if entry == frame.nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\">\
<meta name=\"csrf\" content=\"{csrf}\">\
<title>{title} · labfleet</title>\
<link rel=\"stylesheet\" href=\"/assets/ui.css?v={version}\">\
<script src=\"/assets/ui.js?v={version}\" defer></script></head>\
<body><a class=\"skip\" href=\"#main\">Skip to content</a>\
<header><span class=\"brand\">labfleet</span><nav aria-label=\"Main\">{nav}</nav>\
<span class=\"who\" title=\"labctl context {context}\">{user} · <span class=\"role\">{role}</span></span></header>\
<main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>\n{body}\n</main></body></html>\n",
        csrf = Esc(frame.csrf),
        title = Esc(frame.title),
        version = env!("CARGO_PKG_VERSION"),
        context = Esc(&frame.who.context),
        user = Esc(&frame.who.user),
        role = frame.who.role,
    )
}

/// A form with one button that POSTs to `action` with the CSRF token; `confirm` is asked first
/// by the script.
pub fn action_button(action: &str, label: &str, csrf: &str, confirm: Option<&str>) -> String {
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", Esc(c)))
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"{confirm}>\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
        Esc(action),
        Esc(csrf),
        Esc(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_stops_markup_and_shows_hidden_characters() {
        assert_eq!(
            Esc("<b>\"x\" & 'y'</b>").to_string(),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
        assert_eq!(Esc("a\u{202e}b").to_string(), "a\\u{202e}b");
        assert_eq!(EscLine("a\tb\x1b[31m").to_string(), "a\tb\\x1b[31m");
        assert_eq!(Url("n 1/é").to_string(), "n%201%2F%C3%A9");
    }

    #[test]
    fn relative_times_read_both_ways() {
        assert_eq!(relative(1_000, 1_500), "now");
        assert_eq!(relative(0, 180_000), "3m ago");
        assert_eq!(relative(180_000, 0), "in 3m");
        assert!(time(0, 5).contains('–'));
        let t = time(1_000, 61_000);
        assert!(t.contains("datetime=\"1970-01-01T00:00:01Z\""), "{t}");
        assert!(t.contains(">1m ago<"), "{t}");
    }

    #[test]
    fn bars_split_by_share_and_say_it_in_words() {
        let bar = stacked_bar(&[("good", 3, "online"), ("bad", 1, "offline")]);
        assert!(bar.contains("width=\"75.00\""), "{bar}");
        assert!(bar.contains("x=\"75.00\" width=\"25.00\""), "{bar}");
        assert!(bar.contains("aria-label=\"3 online, 1 offline\""), "{bar}");
        assert!(!stacked_bar(&[("good", 0, "x")]).contains("<rect"));
        assert!(fill_bar("bad", 140.0, "red").contains("width=\"100.0\""));
    }
}
