//! `lab-loadgen compare`: a benchmark run against the committed baseline (`bench/baseline.json`).
//!
//! The baseline names each metric by its path in the scenarios' JSON (`fan_out.submit_to_done_secs.p50`),
//! whether lower or higher is better, and its last value. The comparison itself is a pure function
//! of (baseline, results, threshold) → rows with a verdict; reading the files, printing the table
//! and rewriting the baseline (`--update-baseline`) sit around it. It measures nothing itself.

use std::path::Path;

use anyhow::Context as _;
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::CompareArgs;

/// The committed figures a run is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// What this file is and how it is written (kept as is by `--update-baseline`).
    pub about: String,
    /// Where the figures came from: the `bench` header of the results file they were taken from
    /// (date, commit, profile, machine, load averages), or a note for hand-seeded figures.
    pub measured: Value,
    /// Settings a run must share with the baseline to be comparable, by metric path (e.g.
    /// `fan_out.agents`: 1000); a run that differs is an input error, not a regression.
    #[serde(default)]
    pub conditions: Map<String, Value>,
    /// The metrics, in the order the table shows them.
    pub metrics: Vec<Metric>,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Path in the merged results: section, field, and the statistic of a distribution.
    pub name: String,
    /// Which direction is an improvement.
    pub better: Better,
    /// The baseline value, in the unit the JSON has (seconds, KiB, per second, percent).
    pub value: f64,
}

/// Which direction of a metric is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Times, memory, CPU: less is better.
    Lower,
    /// Rates: more is better.
    Higher,
}

/// How a metric moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Worse than the baseline by more than the threshold.
    Regression,
    /// Better than the baseline by more than the threshold.
    Improved,
    /// Within the threshold either way.
    Unchanged,
    /// Not in the results (its scenario failed or did not run, or the field was renamed).
    Missing,
}

impl Verdict {
    /// The word in the table.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Regression => "REGRESSION",
            Verdict::Improved => "better",
            Verdict::Unchanged => "ok",
            Verdict::Missing => "MISSING",
        }
    }

    /// Whether this verdict fails the run (unless `--no-fail`).
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Regression | Verdict::Missing)
    }
}

/// One line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The metric's path.
    pub name: String,
    /// Its direction.
    pub better: Better,
    /// The baseline value.
    pub baseline: f64,
    /// This run's value, if the results have it.
    pub now: Option<f64>,
    /// (now − baseline) / baseline in percent; infinite when the baseline is 0 and now is not.
    pub change_percent: Option<f64>,
    /// The verdict at the threshold.
    pub verdict: Verdict,
}

/// Compares `results` (the merged sections, see [`merged_results`]) with `baseline`: a metric
/// is a regression when it is worse by more than `threshold` percent in its own direction.
pub fn compare(baseline: &Baseline, results: &Map<String, Value>, threshold: f64) -> Vec<Row> {
    baseline
        .metrics
        .iter()
        .map(|m| {
            let now = lookup(results, &m.name).and_then(Value::as_f64);
            let change = now.map(|n| change_percent(m.value, n));
            let verdict = match change {
                None => Verdict::Missing,
                Some(c) => {
                    let worse_by = match m.better {
                        Better::Lower => c,
                        Better::Higher => -c,
                    };
                    if worse_by > threshold {
                        Verdict::Regression
                    } else if worse_by < -threshold {
                        Verdict::Improved
                    } else {
                        Verdict::Unchanged
                    }
                }
            };
            Row {
                name: m.name.clone(),
                better: m.better,
                baseline: m.value,
                now,
                change_percent: change,
                verdict,
            }
        })
        .collect()
}

/// (now − base) / |base| in percent; 0 when both are 0, ±infinity when only the base is.
pub fn change_percent(base: f64, now: f64) -> f64 {
    if base == 0.0 {
        if now == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(now)
        }
    } else {
        (now - base) / base.abs() * 100.0
    }
}

/// The value at a dotted path (`fan_out.submit_to_done_secs.p50`) in `results`.
pub fn lookup<'a>(results: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = results.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The sections of a results document, merged into one map: a `bench/run` file (`runs`, each a
/// lab-loadgen JSON with its `results`; a run that wrote nothing is `null` and skipped) or one
/// lab-loadgen JSON (`results`). A section in two runs is an error: its metrics would be
/// ambiguous.
pub fn merged_results(doc: &Value) -> anyhow::Result<Map<String, Value>> {
    if let Some(Value::Object(results)) = doc.get("results") {
        return Ok(results.clone());
    }
    let runs = doc
        .get("runs")
        .and_then(Value::as_object)
        .context("neither 'runs' (a bench/run results file) nor 'results' (a lab-loadgen JSON)")?;
    let mut merged = Map::new();
    for (run, value) in runs {
        let Some(Value::Object(sections)) = value.get("results") else {
            continue;
        };
        for (name, section) in sections {
            anyhow::ensure!(
                merged.insert(name.clone(), section.clone()).is_none(),
                "section '{name}' appears in two runs (the second in '{run}')"
            );
        }
    }
    Ok(merged)
}

/// The conditions of `baseline` that `results` does not meet, as messages.
pub fn unmet_conditions(baseline: &Baseline, results: &Map<String, Value>) -> Vec<String> {
    baseline
        .conditions
        .iter()
        .filter_map(|(path, want)| {
            let section = path.split('.').next().unwrap_or_default();
            match lookup(results, path) {
                // The whole section is missing: its metrics are reported as missing instead.
                None if !results.contains_key(section) => None,
                None => Some(format!(
                    "{path} is not in the results (the baseline has {want})"
                )),
                Some(got) => {
                    // Numbers compare by value: 1000 and 1000.0 are the same condition.
                    let same = match (got.as_f64(), want.as_f64()) {
                        (Some(a), Some(b)) => a == b,
                        _ => got == want,
                    };
                    (!same)
                        .then(|| format!("{path} is {got} in the results, {want} in the baseline"))
                }
            }
        })
        .collect()
}

/// The baseline with this run's values, keeping the metric list, directions and conditions.
/// Refuses when a metric is missing: a baseline is only written from a complete run.
pub fn updated(baseline: &Baseline, rows: &[Row], measured: Value) -> anyhow::Result<Baseline> {
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| r.now.is_none())
        .map(|r| r.name.as_str())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "not updating the baseline: the results lack {}",
        missing.join(", ")
    );
    let mut next = baseline.clone();
    next.measured = measured;
    for (metric, row) in next.metrics.iter_mut().zip(rows) {
        metric.value = row.now.unwrap_or(metric.value);
    }
    Ok(next)
}

/// A value for people, in the unit a word of its field names (`secs`, `kib`, `ms`, `us`,
/// `percent`, a `_per_sec` ending).
pub fn human(path: &str, v: f64) -> String {
    // The field is the last part that is not a statistic of a distribution.
    let field = path
        .rsplit('.')
        .find(|p| !matches!(*p, "n" | "min" | "p50" | "p90" | "p99" | "max" | "mean"))
        .unwrap_or(path);
    let words: Vec<&str> = field.split('_').collect();
    let has = |w: &str| words.contains(&w);
    if has("secs") {
        if v.abs() < 1.0 {
            format!("{:.1} ms", v * 1e3)
        } else {
            format!("{v:.2} s")
        }
    } else if has("kib") {
        if v.abs() >= 1024.0 {
            format!("{:.1} MiB", v / 1024.0)
        } else {
            format!("{v:.1} KiB")
        }
    } else if has("ms") {
        format!("{v:.1} ms")
    } else if has("us") {
        format!("{v:.1} µs")
    } else if has("percent") {
        format!("{v:.3} %")
    } else if field.ends_with("_per_sec") {
        format!("{v:.0}/s")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The change column: signed percent, "new" when the baseline was 0.
fn change_text(row: &Row) -> String {
    match row.change_percent {
        None => "–".to_owned(),
        Some(c) if c.is_infinite() => "from 0".to_owned(),
        Some(c) => format!("{c:+.1} %"),
    }
}

/// The comparison as a table for people.
pub fn table(rows: &[Row]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["metric", "better", "baseline", "now", "change", ""]);
    for r in rows {
        table.add_row(vec![
            r.name.clone(),
            match r.better {
                Better::Lower => "lower".to_owned(),
                Better::Higher => "higher".to_owned(),
            },
            human(&r.name, r.baseline),
            r.now.map_or_else(|| "–".to_owned(), |n| human(&r.name, n)),
            change_text(r),
            r.verdict.label().to_owned(),
        ]);
    }
    for col in 2..=4 {
        if let Some(c) = table.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// A warning for figures measured on a busy machine: a 1-minute load average (before or after
/// the run) above the number of CPUs in a `bench/run` header.
pub fn load_note(measured: &Value) -> Option<String> {
    let nproc = measured.get("nproc")?.as_f64()?;
    let load1 = |k: &str| -> Option<f64> {
        measured
            .get(k)?
            .as_str()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let (before, after) = (load1("loadavg_before")?, load1("loadavg_after")?);
    (before.max(after) > nproc).then(|| {
        format!(
            "measured under load: 1-minute load average {before} before, {after} after, on {nproc} CPUs \
             (the machine was shared); latencies are upper bounds, memory and CPU time are less affected"
        )
    })
}

/// One line about where a set of figures came from: date, commit, profile, load averages.
fn provenance(measured: &Value) -> String {
    let field = |k: &str| match measured.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".to_owned(),
        Some(v) => v.to_string(),
    };
    let note = measured.get("note").and_then(Value::as_str);
    if let (Some(note), None) = (note, measured.get("commit")) {
        return note.to_owned();
    }
    format!(
        "{}, commit {}, profile {}, {} CPUs, load {} before / {} after{}",
        field("date"),
        field("commit"),
        field("profile"),
        field("nproc"),
        field("loadavg_before"),
        field("loadavg_after"),
        note.map(|n| format!("\n         {n}")).unwrap_or_default(),
    )
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// What a comparison found, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Metrics worse than the threshold or missing.
    pub failing: usize,
}

/// Reads both files, prints the comparison on stdout and, with `--update-baseline`, writes the
/// run's figures as the new baseline. Errors are input errors (unreadable or incomparable files).
pub fn run(args: &CompareArgs) -> anyhow::Result<Outcome> {
    let baseline: Baseline = serde_json::from_value(read_json(&args.baseline)?)
        .with_context(|| format!("{} is not a baseline", args.baseline.display()))?;
    let doc = read_json(&args.results)?;
    let results = merged_results(&doc).with_context(|| format!("in {}", args.results.display()))?;
    let unmet = unmet_conditions(&baseline, &results);
    anyhow::ensure!(
        unmet.is_empty(),
        "{} is not comparable with {}: {}",
        args.results.display(),
        args.baseline.display(),
        unmet.join("; ")
    );
    let rows = compare(&baseline, &results, args.threshold);
    let measured = doc
        .get("bench")
        .cloned()
        .unwrap_or_else(|| doc.get("machine").cloned().unwrap_or(Value::Null));
    let failing: Vec<&str> = rows
        .iter()
        .filter(|r| r.verdict.fails())
        .map(|r| r.name.as_str())
        .collect();
    let mut text = format!(
        "baseline {}: {}\nnow      {}: {}\n",
        args.baseline.display(),
        provenance(&baseline.measured),
        args.results.display(),
        provenance(&measured),
    );
    if let (Some(a), Some(b)) = (baseline.measured.get("profile"), measured.get("profile")) {
        if a != b {
            text += &format!("note: the baseline was built with profile {a}, this run with {b}\n");
        }
    }
    text += &format!("{}\n", table(&rows));
    text += &if failing.is_empty() {
        format!(
            "no metric worse than the baseline by more than {} %\n",
            args.threshold
        )
    } else {
        format!(
            "{} of {} metrics worse by more than {} % or missing: {}\n",
            failing.len(),
            rows.len(),
            args.threshold,
            failing.join(", ")
        )
    };
    // A closed pipe (`| head`) is not an error of the comparison.
    crate::report::print_out(&text);
    if args.update_baseline {
        let mut measured = measured;
        if let (Some(note), Value::Object(m)) = (load_note(&measured), &mut measured) {
            m.insert("note".to_owned(), Value::String(note));
        }
        let next = updated(&baseline, &rows, measured)?;
        std::fs::write(&args.baseline, serde_json::to_string_pretty(&next)? + "\n")
            .with_context(|| format!("cannot write {}", args.baseline.display()))?;
        eprintln!(
            "wrote {} with the figures of {}",
            args.baseline.display(),
            args.results.display()
        );
        return Ok(Outcome { failing: 0 });
    }
    Ok(Outcome {
        failing: failing.len(),
    })
}

#[cfg(test)]
mod tests;
