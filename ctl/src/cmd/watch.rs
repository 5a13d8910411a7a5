//! `--watch` for list commands (`labctl nodes -w`, `labctl jobs -w`): fetch and render every
//! [`INTERVAL`]; print again when the rendering's change key differs from the last one. On a
//! terminal the screen is redrawn; elsewhere (a pipe, a file) each change appends a new copy,
//! separated by a blank line. Ctrl-C ends the watch with exit status 0.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the list is fetched.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Clears a terminal and moves to its top-left corner.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// What a watch prints for one fetch, given the last change key it printed; `None` when
/// nothing changed. On a terminal every fetch redraws (ages move on); elsewhere only a changed
/// key prints, after a blank line. Pure.
pub fn frame(last_key: Option<&str>, key: &str, text: &str, terminal: bool) -> Option<String> {
    let text = text.trim_end();
    match last_key {
        None if terminal => Some(format!("{CLEAR}{text}\n")),
        None => Some(format!("{text}\n")),
        Some(_) if terminal => Some(format!("{CLEAR}{text}\n")),
        Some(last) if last == key => None,
        Some(_) => Some(format!("\n{text}\n")),
    }
}

/// Runs `fetch` (returning a change key and the text to print) every [`INTERVAL`] until
/// `shutdown`; a fetch error ends the watch with that error.
pub async fn run<F, Fut>(shutdown: CancellationToken, mut fetch: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(String, String)>>,
{
    let terminal = std::io::stdout().is_terminal();
    let mut last: Option<String> = None;
    loop {
        let (key, text) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            got = fetch() => got?,
        };
        if let Some(printed) = frame(last.as_deref(), &key, &text, terminal) {
            crate::out!("{printed}")?;
        }
        last = Some(key);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_gets_a_new_table_per_change_and_a_terminal_a_redraw() {
        assert_eq!(frame(None, "a", "T1\n", false).as_deref(), Some("T1\n"));
        assert_eq!(frame(Some("a"), "a", "T1 later", false), None);
        assert_eq!(
            frame(Some("a"), "b", "T2", false).as_deref(),
            Some("\nT2\n")
        );
        assert_eq!(
            frame(Some("a"), "a", "T1", true).as_deref(),
            Some("\x1b[H\x1b[2JT1\n")
        );
    }
}
