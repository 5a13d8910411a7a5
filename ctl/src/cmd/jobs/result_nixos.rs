//! The `nixos` part of a nixosRebuild resource's result as labctl shows it: generation before
//! and after, the health gate's verdict and output, whether it rolled back and why. Pure.
//!
//! JSON (`result.config.resources[].nixos`, present only for nixosRebuild switch and
//! rollback; field names are stable): `generation_before`, `generation_after` (null when
//! unknown), `health` (`not_run`, `passed`, `failed`, `timed_out`), `health_attempts`,
//! `health_output`, `rolled_back`, `rollback_reason`, `rollback_error` (null when empty).

use std::fmt::Write as _;

use lab_proto::v1::{NixosHealth, NixosOutcome};
use serde::Serialize;

use super::result::clean;

/// Lines of health output shown in text (all of it is in JSON).
const OUTPUT_LINES: usize = 10;

/// `result.config.resources[].nixos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NixosView {
    /// The system profile's generation before.
    pub generation_before: Option<u64>,
    /// After (after the rollback, if any).
    pub generation_after: Option<u64>,
    /// not_run, passed, failed, timed_out.
    pub health: &'static str,
    /// Health attempts run.
    pub health_attempts: u32,
    /// The tail of the last attempt's output.
    pub health_output: Option<String>,
    /// A generation was rolled back.
    pub rolled_back: bool,
    /// Why it was rolled back (or needed to be).
    pub rollback_reason: Option<String>,
    /// How the rollback failed.
    pub rollback_error: Option<String>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The view of the wire outcome.
pub fn view(n: &NixosOutcome) -> NixosView {
    let number = |g: u64| (g != 0).then_some(g);
    NixosView {
        generation_before: number(n.generation_before),
        generation_after: number(n.generation_after),
        health: match n.health() {
            NixosHealth::Unspecified => "not_run",
            NixosHealth::Passed => "passed",
            NixosHealth::Failed => "failed",
            NixosHealth::TimedOut => "timed_out",
        },
        health_attempts: n.health_attempts,
        health_output: non_empty(&n.health_output),
        rolled_back: n.rolled_back,
        rollback_reason: non_empty(&n.rollback_reason),
        rollback_error: non_empty(&n.rollback_error),
    }
}

/// Indented lines below the resource's line: "generation 41 → 42, rolled back", the health
/// verdict, the last lines of its output.
pub fn render(out: &mut String, n: &NixosView) {
    let shown = |g: Option<u64>| g.map_or_else(|| "?".to_owned(), |g| g.to_string());
    let _ = write!(
        out,
        "    generation {} → {}",
        shown(n.generation_before),
        shown(n.generation_after)
    );
    if n.rolled_back {
        out.push_str(", rolled back");
    } else if n.rollback_error.is_some() {
        out.push_str(", rollback failed");
    }
    out.push('\n');
    if n.health_attempts > 0 {
        let attempts = match n.health_attempts {
            1 => "1 attempt".to_owned(),
            a => format!("{a} attempts"),
        };
        let verdict = n.health.replace('_', " ");
        let _ = writeln!(out, "    health check {verdict} ({attempts})");
        let lines: Vec<&str> = n.health_output.as_deref().unwrap_or("").lines().collect();
        for line in &lines[lines.len().saturating_sub(OUTPUT_LINES)..] {
            let _ = writeln!(out, "      | {}", clean(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolled_back_switch() {
        let v = view(&NixosOutcome {
            generation_before: 41,
            generation_after: 41,
            health: NixosHealth::Failed as i32,
            health_attempts: 2,
            health_output: "starting\nconnection refused\x1b[2J".into(),
            rolled_back: true,
            rollback_reason: "health check 'check-web' failed".into(),
            rollback_error: String::new(),
        });
        let mut text = String::new();
        render(&mut text, &v);
        assert_eq!(
            text,
            "    generation 41 → 41, rolled back\n    health check failed (2 attempts)\n      \
             | starting\n      | connection refused\\x1b[2J\n"
        );
        let json = serde_json::to_value(&v).unwrap_or_default();
        assert_eq!(json["health"], "failed");
        assert_eq!(json["rollback_error"], serde_json::Value::Null);
        assert_eq!(json["generation_before"], 41);
    }

    #[test]
    fn unknown_generations_and_no_health() {
        let v = view(&NixosOutcome::default());
        assert_eq!((v.generation_after, v.health), (None, "not_run"));
        let mut text = String::new();
        render(&mut text, &v);
        assert_eq!(text, "    generation ? → ?\n");
    }
}
