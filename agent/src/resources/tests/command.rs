//! Command resources: the `creates` and `unless` guards, check mode, output, failures.

use lab_proto::v1::CommandResource;

use super::*;

fn cmd(argv: &[&str]) -> CommandResource {
    CommandResource {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn r(c: CommandResource) -> Resource {
    res(resource::Kind::Command(c))
}

#[tokio::test]
async fn creates_guard() {
    let dir = tempfile::tempdir().unwrap();
    let marker = tmp_path(&dir, "marker");
    let touch = CommandResource {
        creates: path_str(&marker),
        ..cmd(&["touch", &path_str(&marker)])
    };
    let got = one(true, r(touch.clone())).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Changed, "would run")
    );
    assert!(!marker.exists(), "check mode ran the command");
    let got = one(false, r(touch.clone())).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Changed, "exit code 0")
    );
    assert!(marker.exists());
    let got = one(false, r(touch)).await;
    assert_status(&got, Status::Unchanged);
    assert_eq!(
        got.message,
        format!("not run: {} exists", path_str(&marker))
    );
}

#[tokio::test]
async fn unless_guard() {
    let dir = tempfile::tempdir().unwrap();
    let marker = tmp_path(&dir, "marker");
    let guarded = |unless: &[&str]| CommandResource {
        unless: unless.iter().map(|s| s.to_string()).collect(),
        ..cmd(&["touch", &path_str(&marker)])
    };
    let got = one(false, r(guarded(&["true"]))).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Unchanged, "not run: the 'unless' command succeeded")
    );
    assert!(!marker.exists());
    // The guard sees the resource's env and cwd.
    let mut env_guard = guarded(&["sh", "-c", "test \"$LAB_X\" = 1 && test \"$PWD\" = /tmp"]);
    env_guard.env.insert("LAB_X".into(), "1".into());
    env_guard.cwd = "/tmp".into();
    assert_status(&one(false, r(env_guard)).await, Status::Unchanged);

    assert_status(&one(false, r(guarded(&["false"]))).await, Status::Changed);
    assert!(marker.exists());

    let got = one(false, r(guarded(&["no-such-program-lab"]))).await;
    assert_status(&got, Status::Failed);
    assert_eq!(
        got.message,
        "'unless' guard: cannot run 'no-such-program-lab': No such file or directory"
    );
}

#[tokio::test]
async fn output_is_streamed_and_failures_carry_the_exit_code() {
    let (report, out) = run(
        false,
        vec![r(cmd(&["sh", "-c", "echo hello from the command"]))],
    )
    .await;
    assert_status(&report.resources[0].report, Status::Changed);
    assert_eq!(
        out,
        "hello from the command\ncommand sh -c echo hello from the command: changed (exit code 0)\n"
    );

    let got = one(false, r(cmd(&["sh", "-c", "echo bad input >&2; exit 3"]))).await;
    assert_status(&got, Status::Failed);
    assert_eq!(
        got.message,
        "'sh -c echo bad input >&2; exit 3' failed (exit code 3): bad input"
    );
}
