//! Colours for people: only on a terminal and when `NO_COLOR` is unset or empty. Styles are ANSI
//! SGR sequences applied around text that was already escaped ([`super::escape`]).

use std::io::IsTerminal;

const RESET: &str = "\x1b[0m";

/// Whether to color text on stdout: a terminal, and `NO_COLOR` unset or empty.
pub fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in `style` when `color`, else as is.
pub fn paint(text: &str, style: &str, color: bool) -> String {
    if color && !style.is_empty() {
        format!("{style}{text}{RESET}")
    } else {
        text.to_owned()
    }
}
