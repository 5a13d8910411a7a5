//! Progress of long tasks (restic reports it about once a second) in text mode: on a terminal,
//! one indicatif bar per task on stderr, prefixed with the node name; otherwise a plain line on
//! stderr at most every [`LINE_INTERVAL`] per task (`n1: 45% 1.2GiB/2.6GiB, 120/300 files,
//! ETA 30s`). A task's bar is cleared when the task reaches a final state, before its result is
//! printed. JSON mode does not come here (it prints progress objects).

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lab_proto::v1::{TaskProgress, TaskProgressEvent};

use crate::output;

/// Least time between two plain progress lines of one task.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Bar positions per 100 %.
const BAR_SCALE: u64 = 1000;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not at all (stored logs, JSON).
    Off,
    /// Plain lines on stderr, throttled.
    Lines,
    /// Bars on stderr (a terminal).
    Bars,
}

impl Mode {
    /// Bars when stdout and stderr are both terminals, lines otherwise.
    pub fn detect() -> Mode {
        if io::stdout().is_terminal() && io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// "45% 1.2GiB/2.6GiB, 120/300 files, ETA 30s": the parts that are known. Pure.
pub fn summary(p: &TaskProgress) -> String {
    let mut parts = vec![format!("{:.0}%", p.percent.clamp(0.0, 100.0))];
    if p.bytes_total > 0 {
        parts.push(format!(
            "{}/{}",
            output::bytes(p.bytes_done),
            output::bytes(p.bytes_total)
        ));
    } else if p.bytes_done > 0 {
        parts.push(output::bytes(p.bytes_done));
    }
    let mut text = parts.join(" ");
    if p.files_total > 0 {
        text.push_str(&format!(", {}/{} files", p.files_done, p.files_total));
    }
    if p.seconds_remaining > 0 {
        text.push_str(&format!(
            ", ETA {}",
            output::human_secs(p.seconds_remaining)
        ));
    }
    text
}

/// Whether `p` carries nothing beyond 0 % (no bytes, no files): not worth a plain line. Pure.
fn knows_nothing(p: &TaskProgress) -> bool {
    p.percent <= 0.0 && p.bytes_done == 0 && p.bytes_total == 0 && p.files_total == 0
}

/// "n1: 45% 1.2GiB/2.6GiB, ...". Pure.
pub fn line(node: &str, p: &TaskProgress) -> String {
    format!("{node}: {}", summary(p))
}

/// Progress display state of one follower.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    last_line: HashMap<String, Instant>,
}

impl Progress {
    /// A display in `mode`; bars draw on stderr.
    pub fn new(mode: Mode) -> Self {
        let target = match mode {
            Mode::Bars => Some(ProgressDrawTarget::stderr()),
            Mode::Off | Mode::Lines => None,
        };
        Self::with_target(mode, target)
    }

    /// Bars drawn nowhere (tests exercise the bar path without a terminal).
    #[cfg(test)]
    pub fn hidden_bars() -> Self {
        Self::with_target(Mode::Bars, Some(ProgressDrawTarget::hidden()))
    }

    fn with_target(mode: Mode, target: Option<ProgressDrawTarget>) -> Self {
        Progress {
            mode,
            multi: target.map(MultiProgress::with_draw_target),
            bars: HashMap::new(),
            last_line: HashMap::new(),
        }
    }

    /// The bars while any is shown; print other output through its `suspend`.
    pub fn active(&self) -> Option<&MultiProgress> {
        self.multi.as_ref().filter(|_| !self.bars.is_empty())
    }

    /// Shows `ev` at `now`: moves the task's bar, or prints a line to `err` when the last one
    /// of this task is at least [`LINE_INTERVAL`] old.
    pub fn update(
        &mut self,
        ev: &TaskProgressEvent,
        now: Instant,
        err: &mut dyn Write,
    ) -> io::Result<()> {
        let Some(p) = &ev.progress else {
            return Ok(());
        };
        match self.mode {
            Mode::Off => Ok(()),
            Mode::Lines => {
                if knows_nothing(p) {
                    // restic's first status, before it has scanned anything: "n1: 0%" says
                    // nothing, and would hold back the first real line for LINE_INTERVAL.
                    return Ok(());
                }
                let due = self
                    .last_line
                    .get(&ev.task_id)
                    .is_none_or(|last| now.saturating_duration_since(*last) >= LINE_INTERVAL);
                if due {
                    self.last_line.insert(ev.task_id.clone(), now);
                    writeln!(err, "{}", line(&ev.node, p))?;
                }
                Ok(())
            }
            Mode::Bars => {
                let Some(multi) = &self.multi else {
                    return Ok(());
                };
                let bar = self.bars.entry(ev.task_id.clone()).or_insert_with(|| {
                    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                    let bar = multi.add(ProgressBar::new(BAR_SCALE));
                    bar.set_style(style);
                    bar.set_prefix(format!("{}:", ev.node));
                    bar
                });
                let position = (p.percent.clamp(0.0, 100.0) * (BAR_SCALE as f64) / 100.0) as u64;
                bar.set_position(position);
                bar.set_message(summary(p));
                Ok(())
            }
        }
    }

    /// Clears the bar of a task that reached a final state (before its result is printed).
    pub fn finish_task(&mut self, task_id: &str) {
        self.last_line.remove(task_id);
        if let Some(bar) = self.bars.remove(task_id) {
            bar.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(&bar);
            }
        }
    }

    /// Clears every bar (the job is done or following stopped).
    pub fn clear(&mut self) {
        let tasks: Vec<String> = self.bars.keys().cloned().collect();
        for task in tasks {
            self.finish_task(&task);
        }
        self.last_line.clear();
    }

    /// Number of bars shown.
    pub fn bars_shown(&self) -> usize {
        self.bars.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(task: &str, node: &str, percent: f64) -> TaskProgressEvent {
        TaskProgressEvent {
            task_id: task.into(),
            node: node.into(),
            progress: Some(TaskProgress {
                percent,
                bytes_done: 1_288_490_189,
                bytes_total: 2_791_728_742,
                files_done: 120,
                files_total: 300,
                seconds_remaining: 30,
                current: "/home/a".into(),
            }),
        }
    }

    #[test]
    fn line_formats() {
        let p = event("t", "n1", 45.4).progress.unwrap_or_default();
        assert_eq!(
            line("n1", &p),
            "n1: 45% 1.2GiB/2.6GiB, 120/300 files, ETA 30s"
        );
        let early = TaskProgress {
            percent: 0.0,
            bytes_done: 2048,
            ..Default::default()
        };
        assert_eq!(line("n2", &early), "n2: 0% 2.0KiB");
        let odd = TaskProgress {
            percent: 250.0,
            seconds_remaining: 3700,
            ..Default::default()
        };
        assert_eq!(summary(&odd), "100%, ETA 1h");
    }

    #[test]
    fn lines_are_throttled_per_task() {
        let mut progress = Progress::new(Mode::Lines);
        let mut err = Vec::new();
        let t0 = Instant::now();
        progress
            .update(&event("a", "n1", 10.0), t0, &mut err)
            .unwrap();
        progress
            .update(&event("b", "n2", 20.0), t0, &mut err)
            .unwrap();
        progress
            .update(
                &event("a", "n1", 11.0),
                t0 + Duration::from_secs(1),
                &mut err,
            )
            .unwrap();
        progress
            .update(&event("a", "n1", 12.0), t0 + LINE_INTERVAL, &mut err)
            .unwrap();
        let text = String::from_utf8(err).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("n1: 10% "), "{text}");
        assert!(lines[1].starts_with("n2: 20% "), "{text}");
        assert!(lines[2].starts_with("n1: 12% "), "{text}");
        assert_eq!(progress.bars_shown(), 0);
        assert!(progress.active().is_none());
    }

    #[test]
    fn a_line_that_knows_nothing_is_skipped_and_does_not_hold_back_the_next() {
        let mut progress = Progress::new(Mode::Lines);
        let mut err = Vec::new();
        let t0 = Instant::now();
        let empty = TaskProgressEvent {
            task_id: "a".into(),
            node: "n1".into(),
            progress: Some(TaskProgress::default()),
        };
        progress.update(&empty, t0, &mut err).unwrap();
        progress
            .update(
                &event("a", "n1", 3.0),
                t0 + Duration::from_secs(1),
                &mut err,
            )
            .unwrap();
        let text = String::from_utf8(err).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("n1: 3% "), "{text}");
    }

    #[test]
    fn off_prints_nothing() {
        let mut progress = Progress::new(Mode::Off);
        let mut err = Vec::new();
        progress
            .update(&event("a", "n1", 10.0), Instant::now(), &mut err)
            .unwrap();
        assert!(err.is_empty());
    }

    #[test]
    fn bars_per_task_are_cleared_when_tasks_finish() {
        let mut progress = Progress::hidden_bars();
        let mut err = Vec::new();
        let now = Instant::now();
        progress
            .update(&event("a", "n1", 10.0), now, &mut err)
            .unwrap();
        progress
            .update(&event("b", "n2", 50.0), now, &mut err)
            .unwrap();
        progress
            .update(&event("a", "n1", 60.0), now, &mut err)
            .unwrap();
        assert!(err.is_empty(), "bars never print lines");
        assert_eq!(progress.bars_shown(), 2);
        assert!(progress.active().is_some());
        let bar = &progress.bars["a"];
        assert_eq!(bar.position(), 600);
        assert_eq!(bar.prefix(), "n1:");
        assert!(bar.message().starts_with("60% "), "{}", bar.message());
        progress.finish_task("a");
        assert_eq!(progress.bars_shown(), 1);
        progress.clear();
        assert_eq!(progress.bars_shown(), 0);
        assert!(progress.active().is_none());
    }
}
