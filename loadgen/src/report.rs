//! Figures as people and scripts read them: percentiles and histograms (pure), a two-column
//! table per scenario on stdout, and one JSON document per run.

use std::path::Path;

use anyhow::Context as _;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Serialize;
use serde_json::Value;

/// The value at quantile `q` (0..=1) of `sorted` (nearest rank); 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64) * q.clamp(0.0, 1.0)).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Distribution of a sample.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// Summarizes `values` (any order).
    pub fn of(values: &[f64]) -> Summary {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return Summary::default();
        }
        Summary {
            n: v.len(),
            min: v[0],
            p50: percentile(&v, 0.5),
            p90: percentile(&v, 0.9),
            p99: percentile(&v, 0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }

    /// "p50 X, p99 Y, max Z" with `unit`, scaled by `scale`.
    pub fn brief(&self, scale: f64, unit: &str) -> String {
        format!(
            "p50 {:.1} {unit}, p99 {:.1} {unit}, max {:.1} {unit} (n={})",
            self.p50 * scale,
            self.p99 * scale,
            self.max * scale,
            self.n
        )
    }
}

/// Counts of `times` in buckets of `width` starting at 0: `(bucket start, count)`, up to the
/// last non-empty bucket.
pub fn histogram(times: &[f64], width: f64) -> Vec<(f64, usize)> {
    if width <= 0.0 {
        return Vec::new();
    }
    let mut counts: Vec<usize> = Vec::new();
    for &t in times.iter().filter(|t| t.is_finite() && **t >= 0.0) {
        let i = (t / width).floor() as usize;
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i as f64 * width, c))
        .collect()
}

/// Largest count in any bucket of `width` (a herd shows up as one big bucket).
pub fn peak_rate(times: &[f64], width: f64) -> usize {
    histogram(times, width)
        .into_iter()
        .map(|(_, c)| c)
        .max()
        .unwrap_or(0)
}

/// A text bar chart of a histogram, one line per bucket.
pub fn bars(hist: &[(f64, usize)], width: f64, unit: &str) -> String {
    let max = hist.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    hist.iter()
        .map(|(start, c)| {
            let len = (*c * 50).div_ceil(max);
            format!(
                "{:>7.1}-{:<7.1}{unit} {:>6} {}",
                start,
                start + width,
                c,
                "#".repeat(len)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints a titled two-column table.
pub fn print_table(title: &str, rows: &[(String, String)]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["measure", "value"]);
    for (k, v) in rows {
        table.add_row(vec![k, v]);
    }
    print_out(&format!("\n{title}\n{table}\n"));
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error: the run goes on
/// and still writes its JSON.
pub fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Writes `value` as pretty JSON to `path`, creating its directory.
pub fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Kibibytes as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.n, s.min, s.p50, s.max), (3, 1.0, 2.0, 3.0));
    }

    #[test]
    fn histogram_buckets_and_peak() {
        let h = histogram(&[0.1, 0.2, 1.5, 3.9], 1.0);
        assert_eq!(h, vec![(0.0, 2), (1.0, 1), (2.0, 0), (3.0, 1)]);
        assert_eq!(peak_rate(&[0.1, 0.2, 1.5], 1.0), 2);
        assert!(histogram(&[1.0], 0.0).is_empty());
        assert!(bars(&h, 1.0, "s").lines().count() == 4);
    }
}
