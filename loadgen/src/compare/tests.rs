//! Unit tests of the comparison: verdicts per direction, missing metrics, conditions, the
//! baseline update and the units people read.

use serde_json::json;

use super::*;

fn baseline() -> Baseline {
    serde_json::from_value(json!({
        "about": "test",
        "measured": {"note": "hand-written"},
        "conditions": {"fan_out.agents": 1000},
        "metrics": [
            {"name": "fan_out.submit_to_done_secs.p50", "better": "lower", "value": 0.2},
            {"name": "throughput.results_per_sec", "better": "higher", "value": 4000.0},
            {"name": "restart.results_lost", "better": "lower", "value": 0.0},
        ]
    }))
    .unwrap()
}

fn results(p50: f64, rate: f64, lost: u64) -> Map<String, Value> {
    let doc = json!({
        "bench": {"profile": "release"},
        "runs": {
            "suite": {"results": {
                "fan_out": {"agents": 1000, "submit_to_done_secs": {"p50": p50, "p99": 1.0}},
                "throughput": {"results_per_sec": rate},
                "restart": {"results_lost": lost},
            }},
            "real-agents": {"results": {"real_agents": {"agents": 100}}},
        }
    });
    merged_results(&doc).unwrap()
}

fn verdicts(rows: &[Row]) -> Vec<Verdict> {
    rows.iter().map(|r| r.verdict).collect()
}

#[test]
fn a_slower_time_and_a_lower_rate_are_regressions() {
    // p50 +25 %, rate −20 %: both worse in their own direction.
    let rows = compare(&baseline(), &results(0.25, 3200.0, 0), 10.0);
    assert_eq!(
        verdicts(&rows),
        [Verdict::Regression, Verdict::Regression, Verdict::Unchanged]
    );
    assert!((rows[0].change_percent.unwrap() - 25.0).abs() < 1e-9);
    assert!((rows[1].change_percent.unwrap() + 20.0).abs() < 1e-9);
    assert!(rows.iter().filter(|r| r.verdict.fails()).count() == 2);
}

#[test]
fn a_faster_time_and_a_higher_rate_are_improvements_not_flags() {
    let rows = compare(&baseline(), &results(0.1, 5000.0, 0), 10.0);
    assert_eq!(
        verdicts(&rows),
        [Verdict::Improved, Verdict::Improved, Verdict::Unchanged]
    );
    assert!(rows.iter().all(|r| !r.verdict.fails()));
}

#[test]
fn changes_within_the_threshold_are_unchanged() {
    // +9 % and −9 %: worse, but not beyond 10 %; beyond 5 % they are flagged.
    let r = results(0.218, 3640.0, 0);
    assert_eq!(
        verdicts(&compare(&baseline(), &r, 10.0)),
        [Verdict::Unchanged; 3]
    );
    assert_eq!(
        verdicts(&compare(&baseline(), &r, 5.0)),
        [Verdict::Regression, Verdict::Regression, Verdict::Unchanged]
    );
}

#[test]
fn any_lost_result_against_a_zero_baseline_is_a_regression() {
    let rows = compare(&baseline(), &results(0.2, 4000.0, 3), 10.0);
    assert_eq!(rows[2].verdict, Verdict::Regression);
    assert_eq!(rows[2].change_percent, Some(f64::INFINITY));
    assert_eq!(change_text(&rows[2]), "from 0");
    assert_eq!(change_percent(0.0, 0.0), 0.0);
}

#[test]
fn a_missing_metric_is_reported_and_fails() {
    let mut r = results(0.2, 4000.0, 0);
    r.remove("throughput");
    // A section present but the field renamed, or not a number, is missing too.
    r.insert("restart".into(), json!({"results_lost": "none"}));
    let rows = compare(&baseline(), &r, 10.0);
    assert_eq!(
        verdicts(&rows),
        [Verdict::Unchanged, Verdict::Missing, Verdict::Missing]
    );
    assert!(rows[1].verdict.fails() && rows[1].now.is_none());
    let text = table(&rows).to_string();
    assert!(text.contains("MISSING"), "{text}");
    let err = updated(&baseline(), &rows, json!({})).unwrap_err();
    assert!(
        err.to_string().contains("throughput.results_per_sec"),
        "{err}"
    );
}

#[test]
fn merging_runs_rejects_a_section_in_two_runs_and_reads_one_scenario_file() {
    let twice = json!({"runs": {
        "a": {"results": {"fan_out": {}}},
        "b": {"results": {"fan_out": {}}},
        "c": null,
    }});
    assert!(merged_results(&twice)
        .unwrap_err()
        .to_string()
        .contains("fan_out"));
    let single = json!({"scenario": "fan-out", "results": {"fan_out": {"agents": 5}}});
    assert_eq!(
        lookup(&merged_results(&single).unwrap(), "fan_out.agents"),
        Some(&json!(5))
    );
    assert!(merged_results(&json!({"x": 1})).is_err());
}

#[test]
fn conditions_must_match_unless_the_section_is_missing() {
    let b = baseline();
    assert!(unmet_conditions(&b, &results(0.2, 4000.0, 0)).is_empty());
    let mut r = results(0.2, 4000.0, 0);
    r.insert("fan_out".into(), json!({"agents": 50}));
    let unmet = unmet_conditions(&b, &r);
    assert_eq!(unmet.len(), 1);
    assert!(unmet[0].contains("fan_out.agents is 50"), "{unmet:?}");
    r.remove("fan_out");
    assert!(unmet_conditions(&b, &r).is_empty());
}

#[test]
fn update_takes_the_new_values_and_keeps_directions() {
    let b = baseline();
    let rows = compare(&b, &results(0.3, 3000.0, 0), 10.0);
    let next = updated(&b, &rows, json!({"commit": "abc"})).unwrap();
    let values: Vec<f64> = next.metrics.iter().map(|m| m.value).collect();
    assert_eq!(values, [0.3, 3000.0, 0.0]);
    assert_eq!(next.metrics[1].better, Better::Higher);
    assert_eq!(next.conditions, b.conditions);
    assert_eq!(next.measured, json!({"commit": "abc"}));
}

#[test]
fn values_are_shown_in_the_unit_their_path_names() {
    assert_eq!(human("fan_out.submit_to_done_secs.p50", 0.1375), "137.5 ms");
    assert_eq!(human("restart.all_reconnected_secs", 1.657), "1.66 s");
    assert_eq!(
        human("idle.coordinator_rss_per_agent_kib", 65.3),
        "65.3 KiB"
    );
    assert_eq!(
        human("connect_storm.coordinator_peak_rss_kib", 70656.0),
        "69.0 MiB"
    );
    assert_eq!(human("throughput.results_per_sec", 3683.2), "3683/s");
    assert_eq!(
        human("real_agents.agent_cpu_percent.mean", 0.033),
        "0.033 %"
    );
    assert_eq!(
        human("idle.coordinator_cpu_us_per_heartbeat", 48.25),
        "48.2 µs"
    );
    assert_eq!(
        human("real_agents.agents_cpu_ms_per_run", 206.0),
        "206.0 ms"
    );
    assert_eq!(human("restart.results_lost", 0.0), "0");
    assert_eq!(
        human("fan_out.coordinator_cpu_secs_per_job", 0.14),
        "140.0 ms"
    );
    assert_eq!(human("real_agents.agent_rss_kib_total", 512.0), "512.0 KiB");
}

#[test]
fn a_run_above_the_cpu_count_is_noted_as_under_load() {
    let header = |before: &str| json!({"nproc": 2, "loadavg_before": before, "loadavg_after": "1.5 1.0 0.9"});
    let note = load_note(&header("8.15 8.68 9.72")).unwrap();
    assert!(note.contains("8.15 before, 1.5 after, on 2 CPUs"), "{note}");
    assert_eq!(load_note(&header("0.40 0.2 0.1")), None);
    assert_eq!(load_note(&json!({"note": "hand-seeded"})), None);
}

#[test]
fn the_committed_baseline_parses_and_names_distinct_metrics() {
    let text = include_str!("../../../bench/baseline.json");
    let b: Baseline = serde_json::from_str(text).unwrap();
    assert!(!b.metrics.is_empty());
    let mut names: Vec<&str> = b.metrics.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), b.metrics.len(), "a metric is listed twice");
}
