//! Output for people (tables) and scripts (JSON, YAML): one `-o` flag on every read command;
//! writing to stdout without panicking on a closed pipe; escaping for terminals (`escape`).

mod color;
mod escape;

pub use color::{paint, use_color};
pub use escape::{escape, escape_line, escape_text};

use clap::ValueEnum;
use comfy_table::presets::NOTHING;
use serde::Serialize;

/// `print!` for labctl's stdout that returns the write error instead of panicking: a closed pipe
/// (`labctl jobs | head -1`) then ends labctl quietly (see [`crate::failure::closed_pipe`]).
/// labctl denies `print!`/`println!`, so every write to stdout goes through here.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// [`out!`] with a trailing newline.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for notes and errors on stderr that never panics: a closed stderr loses the note
/// and the command goes on (it may still have work to do and its exit status to give).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout and flushes; see [`out!`].
pub fn write_stdout(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()
}

/// Writes to stderr, ignoring errors; see [`errln!`].
pub fn write_stderr(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// Pretty JSON (stable field names).
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML; returns false for `Table` so the caller prints a table.
pub fn print_structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(value)?)?,
        Format::Yaml => crate::out!("{}", serde_yaml_ng::to_string(value)?)?,
        Format::Table => return Ok(false),
    }
    Ok(true)
}

/// Prints one object for `show` commands: `-o json|yaml` as data, the default (`table`) as YAML
/// for people, escaped for the terminal ([`escape_text`]).
pub fn print_detail<T: Serialize>(format: Format, value: &T) -> anyhow::Result<()> {
    if format == Format::Table {
        let yaml = serde_yaml_ng::to_string(value)?;
        crate::out!("{}", escape_text(&yaml))?;
    } else {
        print_structured(format, value)?;
    }
    Ok(())
}

/// A borderless table for people with `N` columns: every row has exactly as many cells as the
/// header (the compiler checks it), so no value can sit under another column's title; every cell
/// is escaped ([`escape`]).
pub struct Table<const N: usize> {
    inner: comfy_table::Table,
}

/// A table with `header` as its titles.
pub fn table<const N: usize>(header: [&str; N]) -> Table<N> {
    let mut inner = comfy_table::Table::new();
    inner.load_preset(NOTHING);
    inner.set_header(header);
    Table { inner }
}

impl<const N: usize> Table<N> {
    /// Appends one row of `N` cells.
    pub fn row(&mut self, cells: [String; N]) {
        self.inner.add_row(cells.map(|c| escape(&c).into_owned()));
    }

    /// Appends one row whose cells are painted in `styles` (ANSI SGR, "" for none) when
    /// `color`; the text is escaped first, so only labctl's own styles reach the terminal.
    pub fn row_styled(&mut self, cells: [String; N], styles: [&str; N], color: bool) {
        let mut i = 0;
        self.inner.add_row(cells.map(|c| {
            let cell = paint(&escape(&c), styles[i], color);
            i += 1;
            cell
        }));
    }
}

impl<const N: usize> std::fmt::Display for Table<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// RFC 3339 UTC time of Unix milliseconds; `None` for 0.
pub fn time(unix_ms: i64) -> Option<String> {
    if unix_ms <= 0 {
        return None;
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms as u64);
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// "3m ago"-style age of Unix milliseconds; "-" for 0.
pub fn age(unix_ms: i64, now_ms: i64) -> String {
    if unix_ms <= 0 {
        return "-".into();
    }
    let secs = ((now_ms - unix_ms).max(0) / 1000) as u64;
    human_secs(secs) + " ago"
}

/// Compact duration: 45s, 12m, 3h, 5d.
pub fn human_secs(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Bytes in binary units: 15.6GiB.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Test helper: asserts that every row of a rendered table starts its cells at the columns where
/// the header starts its titles. Titles may hold single spaces ("LAST SEEN"); cells in the test
/// data must be non-empty and must not hold two spaces in a row.
#[cfg(test)]
pub(crate) fn assert_aligned(rendered: &str) {
    /// Char offsets where a cell starts: the first non-space, and each one after 2+ spaces.
    fn starts(line: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut spaces = usize::MAX; // before the first cell any indentation counts
        for (i, c) in line.chars().enumerate() {
            if c == ' ' {
                spaces = spaces.saturating_add(1);
            } else {
                if spaces >= 2 {
                    out.push(i);
                }
                spaces = 0;
            }
        }
        out
    }
    let mut lines = rendered.lines();
    let header = starts(lines.next().unwrap_or_default());
    assert!(!header.is_empty(), "no header in\n{rendered}");
    for line in lines {
        assert_eq!(
            starts(line),
            header,
            "row cells do not line up with the header titles:\n{rendered}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assert_aligned_catches_a_cell_without_a_title() {
        let mut t = table(["NAME", "LAST SEEN"]);
        t.row(["n1".into(), "3m ago".into()]);
        assert_aligned(&t.to_string());
        let shifted = "NAME  LAST SEEN\nn1    kvm        3m ago";
        assert!(std::panic::catch_unwind(|| assert_aligned(shifted)).is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(16 * 1024 * 1024 * 1024), "16.0GiB");
        assert_eq!(human_secs(59), "59s");
        assert_eq!(human_secs(3 * 3600 + 5), "3h");
        assert_eq!(age(0, 5), "-");
        assert_eq!(age(1_000, 61_000), "1m ago");
        assert_eq!(time(0), None);
        assert_eq!(time(1_000).as_deref(), Some("1970-01-01T00:00:01Z"));
    }
}
