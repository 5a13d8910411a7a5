//! The process driver with real programs: stdout lines, stderr tails, stop, and pipelines.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::backup::Out;

fn sh(script: &str) -> Step {
    Step::new(&["sh", "-c", script])
}

#[tokio::test]
async fn lines_go_to_the_handler_and_stderr_to_the_output() {
    let mut seen = Vec::new();
    let mut emit = |o: Out| seen.push(o);
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
    let mut lines = Vec::new();
    let ran = run(
        &mut cx,
        &sh("echo one; echo two; echo oops >&2; exit 4"),
        None,
        |_, l| lines.push(l.to_owned()),
    )
    .await;
    drop(cx);
    assert_eq!(lines, ["one", "two"]);
    assert!(!ran.success());
    assert_eq!(ran.main.exit_code, 4);
    assert_eq!(
        ran.failure(),
        "'sh -c echo one; echo two; echo oops >&2; exit 4' failed (exit code 4): oops"
    );
    assert_eq!(
        seen,
        [Out::Output(OutputStream::Stderr, b"oops\n".to_vec())]
    );
}

#[tokio::test]
async fn a_missing_program_says_so() {
    let mut emit = |_: Out| {};
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
    let ran = run(&mut cx, &Step::new(&["no-such-tool-xyz"]), None, |_, _| {}).await;
    assert!(
        ran.failure().contains("'no-such-tool-xyz': not found"),
        "{}",
        ran.failure()
    );
}

#[tokio::test]
async fn stop_ends_the_whole_group() {
    let stop = CancellationToken::new();
    let mut emit = |_: Out| {};
    let mut cx = Cx::new(stop, Duration::from_millis(500), &mut emit);
    let t0 = Instant::now();
    // The child ignores SIGTERM; its grandchild keeps stdout open: both go with SIGKILL. The
    // stop fires once the program said it is ready.
    let script = sh("trap '' TERM; sleep 30 & echo ready; sleep 30");
    let ran = run(&mut cx, &script, None, |cx, line| {
        if line == "ready" {
            cx.stop.cancel();
        }
    })
    .await;
    assert_eq!(ran.main.state, FinalState::Cancelled);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_failed_producer_kills_the_consumer_before_it_sees_the_end() {
    let mut emit = |_: Out| {};
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
    let mut lines = Vec::new();
    // The consumer would print "complete" on end of input.
    let consumer = sh("cat >/dev/null; echo complete");
    let producer = sh("echo data; echo broken >&2; exit 2");
    let ran = run(&mut cx, &consumer, Some(&producer), |_, l| {
        lines.push(l.to_owned())
    })
    .await;
    assert!(lines.is_empty(), "{lines:?}");
    assert!(!ran.success());
    let p = ran.producer.clone().unwrap();
    assert_eq!(p.exit_code, 2);
    assert!(
        ran.failure().contains("exit code 2") && ran.failure().contains("broken"),
        "{}",
        ran.failure()
    );

    let mut lines = Vec::new();
    let ok = run(&mut cx, &sh("wc -c"), Some(&sh("printf 12345")), |_, l| {
        lines.push(l.trim().to_owned())
    })
    .await;
    assert!(ok.success(), "{}", ok.failure());
    assert_eq!(lines, ["5"]);
}

#[tokio::test]
async fn a_consumer_failing_on_its_own_is_the_reported_cause() {
    let mut emit = |_: Out| {};
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
    let consumer = sh("echo 'Fatal: wrong password or no key found' >&2; exit 1");
    let producer = sh("yes | head -c 50000000");
    let ran = run(&mut cx, &consumer, Some(&producer), |_, _| {}).await;
    assert!(!ran.success());
    assert!(
        ran.failure().contains("wrong password"),
        "{}",
        ran.failure()
    );
}

#[tokio::test]
async fn overlong_lines_are_cut() {
    let mut emit = |_: Out| {};
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
    let mut lines = Vec::new();
    let script = format!(
        "head -c {} /dev/zero | tr '\\0' a; echo; echo next",
        MAX_JSON_LINE + 10
    );
    let ran = run(&mut cx, &sh(&script), None, |_, l| lines.push(l.len())).await;
    assert!(ran.success(), "{}", ran.failure());
    assert_eq!(lines, [MAX_JSON_LINE, 4]);
}
