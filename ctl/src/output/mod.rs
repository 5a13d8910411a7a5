//! Output for people (tables, `-o wide`, `-o name`) and scripts (JSON, YAML): one `-o` flag on
//! every read command;
//! writing to stdout without panicking on a closed pipe; escaping for terminals (`escape`).

mod color;
mod escape;
mod table;

pub use color::{paint, state_style, use_color, use_color_stderr};
pub use escape::{escape, escape_line, escape_text};
pub use table::{table, truncate, Table, WIDTH};

use clap::ValueEnum;
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
    /// Aligned columns for people, fitted to 80 columns (long cells end in `…`).
    Table,
    /// The table with more columns and nothing truncated.
    Wide,
    /// Only the names (ids), one per line, for scripts and `xargs`.
    Name,
    /// Pretty JSON (stable field names).
    Json,
    /// YAML.
    Yaml,
}

impl Format {
    /// The width a table fits: [`WIDTH`] for `table`, nothing for `wide`.
    pub fn fit(self) -> Option<usize> {
        (self != Format::Wide).then_some(WIDTH)
    }

    /// Whether the table shows its extra columns (`-o wide`).
    pub fn is_wide(self) -> bool {
        self == Format::Wide
    }
}

/// Prints `value` as JSON or YAML; returns false for `table`, `wide` and `name` so the caller
/// prints a table (or the names).
pub fn print_structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<bool> {
    match format {
        Format::Json => crate::outln!("{}", serde_json::to_string_pretty(value)?)?,
        Format::Yaml => crate::out!("{}", serde_yaml_ng::to_string(value)?)?,
        Format::Table | Format::Wide | Format::Name => return Ok(false),
    }
    Ok(true)
}

/// Prints a list as JSON or YAML, or with `-o name` the name of each item (escaped), one per
/// line; returns false for `table` and `wide` so the caller prints its table.
pub fn print_list<T: Serialize>(
    format: Format,
    items: &[T],
    name: impl Fn(&T) -> String,
) -> anyhow::Result<bool> {
    if format == Format::Name {
        crate::out!("{}", names(items, name))?;
        return Ok(true);
    }
    print_structured(format, &items)
}

/// The `-o name` output of a list: each item's name, escaped, one per line. Pure.
pub fn names<T>(items: &[T], name: impl Fn(&T) -> String) -> String {
    items
        .iter()
        .map(|item| format!("{}\n", escape(&name(item))))
        .collect()
}

/// Prints one object for `show` commands: `-o json|yaml` as data, `-o name` its `name`, the
/// default (`table`, `wide`) as YAML for people, escaped for the terminal ([`escape_text`]).
pub fn print_detail<T: Serialize>(format: Format, value: &T, name: &str) -> anyhow::Result<()> {
    if format == Format::Name {
        crate::outln!("{}", escape(name))?;
    } else if matches!(format, Format::Table | Format::Wide) {
        let yaml = serde_yaml_ng::to_string(value)?;
        crate::out!("{}", escape_text(&yaml))?;
    } else {
        print_structured(format, value)?;
    }
    Ok(())
}

/// RFC 3339 UTC time of Unix milliseconds; `None` for 0.
pub fn time(unix_ms: i64) -> Option<String> {
    if unix_ms <= 0 {
        return None;
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms as u64);
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// Unix milliseconds of an RFC 3339 time as [`time`] writes it; 0 for none or an unreadable one.
pub fn unix_ms(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
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
