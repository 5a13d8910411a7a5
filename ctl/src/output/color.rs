//! Colours for people: only on a terminal and when `NO_COLOR` is unset or empty. Styles are ANSI
//! SGR sequences applied around text that was already escaped ([`super::escape`]).

use std::io::IsTerminal;

const RESET: &str = "\x1b[0m";

/// Whether to color text on stdout: a terminal, and `NO_COLOR` unset or empty.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether to color text on stderr (the state lines of `labctl run`): as [`use_color`], for
/// stderr.
pub fn use_color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in `style` when `color`, else as is.
pub fn paint(text: &str, style: &str, color: bool) -> String {
    if color && !style.is_empty() {
        format!("{style}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// Green.
pub const GREEN: &str = "\x1b[32m";
/// Red.
pub const RED: &str = "\x1b[31m";
/// Yellow.
pub const YELLOW: &str = "\x1b[33m";
/// Dim.
pub const DIM: &str = "\x1b[2m";

/// The style of a state name wherever labctl prints one (nodes, jobs, tasks, `run`): green for
/// done well or up, red for failed or down, yellow for not there yet, dim for nothing ran.
pub fn state_style(state: &str) -> &'static str {
    match state {
        "online" | "succeeded" | "ok" => GREEN,
        "offline" | "revoked" | "failed" | "timed_out" | "timed out" | "expired" | "lost"
        | "no_nodes" => RED,
        "pending" | "assigned" | "running" | "cancelling" => YELLOW,
        "cancelled" | "skipped" => DIM,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_the_colours_people_expect() {
        assert_eq!(state_style("online"), GREEN);
        assert_eq!(state_style("succeeded"), GREEN);
        assert_eq!(state_style("offline"), RED);
        assert_eq!(state_style("failed"), RED);
        assert_eq!(state_style("timed out"), RED);
        assert_eq!(state_style("running"), YELLOW);
        assert_eq!(state_style("pending"), YELLOW);
        assert_eq!(state_style("skipped"), DIM);
        assert_eq!(state_style("whatever"), "");
        assert_eq!(paint("failed", RED, false), "failed");
        assert_eq!(paint("failed", RED, true), "\x1b[31mfailed\x1b[0m");
    }
}
