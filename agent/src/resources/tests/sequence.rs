//! The resource list as a whole: order, failures stopping the rest, continue_on_error,
//! invalid and unknown resources, stopping, and the kinds that cannot work on this machine
//! (service without systemd, nixosRebuild off NixOS).

use lab_proto::v1::{
    CommandResource, FileResource, NixosRebuildResource, ServiceResource, ServiceState,
};

use super::*;
use crate::resources::nixos::NOT_NIXOS_MESSAGE;
use crate::resources::service::NO_SYSTEMD_MESSAGE;

fn file(path: &Path, content: &str) -> Resource {
    res(resource::Kind::File(FileResource {
        path: path_str(path),
        content: content.into(),
        ..Default::default()
    }))
}

fn command(argv: &[&str]) -> Resource {
    res(resource::Kind::Command(CommandResource {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }))
}

fn statuses(report: &ConfigReport) -> Vec<Status> {
    report.resources.iter().map(|r| r.report.status).collect()
}

#[tokio::test]
async fn a_failure_skips_the_rest_unless_continue_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = tmp_path(&dir, "a");
    let b = tmp_path(&dir, "b");
    let failing = command(&["false"]);
    let (report, out) = run(false, vec![file(&a, "1"), failing.clone(), file(&b, "2")]).await;
    assert_eq!(
        statuses(&report),
        [Status::Changed, Status::Failed, Status::Skipped]
    );
    assert_eq!(
        report.resources[2].report.message,
        "not run: 'command false' failed"
    );
    assert!(!b.exists());
    assert_eq!(report.failures().count(), 1);
    assert!(out.ends_with(&format!(
        "command false: failed ('false' failed (exit code 1))\nfile {}: skipped (not run: 'command false' failed)\n",
        path_str(&b)
    )), "{out}");

    let tolerated = Resource {
        continue_on_error: true,
        name: "may fail".into(),
        ..failing
    };
    let (report, _) = run(false, vec![tolerated, file(&b, "2")]).await;
    assert_eq!(statuses(&report), [Status::Failed, Status::Changed]);
    assert_eq!(report.resources[0].resource, "may fail");
    assert!(b.exists());
}

#[tokio::test]
async fn invalid_and_unknown_resources_fail_without_panicking() {
    let (report, _) = run(
        false,
        vec![
            Resource {
                continue_on_error: true,
                ..Default::default()
            },
            Resource {
                continue_on_error: true,
                ..command(&[])
            },
            Resource {
                continue_on_error: true,
                ..res(resource::Kind::Service(ServiceResource {
                    unit: "-bad".into(),
                    ..Default::default()
                }))
            },
        ],
    )
    .await;
    assert_eq!(statuses(&report), [Status::Failed; 3]);
    assert_eq!(report.resources[0].resource, "resource #1");
    assert!(report.resources[0]
        .report
        .message
        .contains("upgrade the agent"));
    assert_eq!(
        report.resources[1].report.message,
        "the command has no program (argv is empty)"
    );
    assert!(report.resources[2]
        .report
        .message
        .starts_with("invalid unit name"));
}

#[tokio::test]
async fn service_and_nixos_fail_clearly_here() {
    // The build machine has no systemd as PID 1 and is not NixOS.
    let service = res(resource::Kind::Service(ServiceResource {
        unit: "nginx.service".into(),
        state: ServiceState::Running as i32,
        enabled: Some(true),
    }));
    for check in [true, false] {
        let (report, _) = run(check, vec![service.clone()]).await;
        assert_eq!(report.resources[0].resource, "service nginx.service");
        assert_eq!(
            report.resources[0].report,
            Report::failed(NO_SYSTEMD_MESSAGE)
        );
    }
    let nixos = res(resource::Kind::NixosRebuild(NixosRebuildResource {
        flake: "/etc/nixos#nas".into(),
        ..Default::default()
    }));
    let (report, _) = run(false, vec![nixos.clone()]).await;
    assert_eq!(report.resources[0].resource, "nixosRebuild /etc/nixos#nas");
    assert_eq!(
        report.resources[0].report,
        Report::failed(NOT_NIXOS_MESSAGE)
    );

    // On a NixOS root without nixos-rebuild in PATH, the failure names the generation.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/NIXOS"), "").unwrap();
    std::fs::create_dir_all(root.path().join("nix/var/nix/profiles")).unwrap();
    std::os::unix::fs::symlink(
        "system-7-link",
        root.path().join("nix/var/nix/profiles/system"),
    )
    .unwrap();
    if which("nixos-rebuild") {
        return;
    }
    let (report, _) = run_at(root.path(), false, vec![nixos]).await;
    let got = &report.resources[0].report;
    assert_eq!(
        (got.status, got.message.as_str()),
        (
            Status::Failed,
            "cannot run 'nixos-rebuild': No such file or directory; generation 7 is still active"
        )
    );
    let outcome = got.nixos.as_ref().unwrap();
    assert_eq!((outcome.before, outcome.after), (Some(7), Some(7)));
    assert!(!outcome.rolled_back);
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
}

#[tokio::test]
async fn stopping_kills_the_running_command_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let after = tmp_path(&dir, "after");
    let spec = ConfigSpec::from(ConfigTask {
        resources: vec![command(&["sleep", "100"]), file(&after, "x")],
        check: false,
    });
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let mut emit = |_, _| {};
    let mut cx = Cx::new(false, stop, Duration::from_secs(1), &mut emit);
    let started = std::time::Instant::now();
    let report = apply(&spec, &mut cx).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(statuses(&report), [Status::Failed, Status::Skipped]);
    assert_eq!(
        report.resources[0].report.message,
        "'sleep 100' was stopped: the task was cancelled or timed out"
    );
    assert_eq!(
        report.resources[1].report.message,
        "not run: the task was stopped"
    );
    assert!(!after.exists());
}

#[tokio::test]
async fn in_check_mode_a_failure_does_not_hide_the_later_resources() {
    let dir = tempfile::tempdir().unwrap();
    let b = tmp_path(&dir, "b");
    let invalid = || file(Path::new("relative/motd"), "x");
    let (report, _) = run(true, vec![invalid(), file(&b, "2")]).await;
    assert_eq!(statuses(&report), [Status::Failed, Status::Changed]);
    assert!(!b.exists(), "check mode wrote a file");
    // Applied for real, the failure still stops the rest.
    let (report, _) = run(false, vec![invalid(), file(&b, "2")]).await;
    assert_eq!(statuses(&report), [Status::Failed, Status::Skipped]);
}
