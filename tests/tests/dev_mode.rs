//! `labctl dev`: one command brings up a coordinator and a local agent; a second terminal uses the
//! printed config; Ctrl-C stops cleanly; a second run reuses the state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use lab_tests::{bin, free_port, labctl, wait_until};

#[test]
fn dev_mode_starts_serves_stops_and_restarts_with_the_same_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.join("labctl.toml");
    for round in 0..2 {
        let mut child = Command::new(bin("labctl"))
            .args(["dev", "--dir"])
            .arg(&dir)
            .args(["--listen", &listen, "--heartbeat-interval", "1s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nodes = || {
            let out = labctl(&config, &["nodes", "-o", "json"]);
            serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap_or_default()
        };
        wait_until(
            || {
                nodes()
                    .iter()
                    .any(|n| n["online"] == true && n["os"].is_string())
            },
            Duration::from_secs(30),
            "dev node online with facts",
        );
        assert_eq!(nodes().len(), 1, "round {round}: exactly one node, reused");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let mut status = None;
        wait_until(
            || {
                status = child.try_wait().unwrap();
                status.is_some()
            },
            Duration::from_secs(15),
            "labctl dev exits after Ctrl-C",
        );
        assert!(status.unwrap().success());
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(stdout.contains("export LABCTL_CONFIG="), "{stdout}");
        let expect = if round == 0 {
            "new state"
        } else {
            "reusing state"
        };
        assert!(stdout.contains(expect), "{stdout}");
    }
}
