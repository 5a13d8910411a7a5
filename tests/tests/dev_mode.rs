//! `labctl dev`: one command brings up a coordinator and a local agent; a second terminal uses the
//! printed config; Ctrl-C stops cleanly; a second run reuses the state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lab_tests::{bin, free_port, labctl, wait_until};

#[test]
fn dev_mode_starts_serves_stops_and_restarts_with_the_same_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let listen = format!("127.0.0.1:{}", free_port());
    let config = dir.join("labctl.toml");
    for round in 0..2 {
        let log = tmp.path().join(format!("dev-{round}.log"));
        let mut child = Command::new(bin("labctl"))
            .args(["dev", "--dir"])
            .arg(&dir)
            .args(["--listen", &listen, "--heartbeat-interval", "1s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stdout.take().unwrap();
        let sink = stdout.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let logs = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_until(
            || stdout.lock().unwrap().contains("first job"),
            Duration::from_secs(30),
            &format!("dev mode banner and first job\n{}", logs()),
        );
        wait_until(
            || stdout.lock().unwrap().contains("Linux"),
            Duration::from_secs(5),
            "the first job's uname output",
        );
        let out = labctl(&config, &["nodes", "-o", "json"]);
        let nodes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(nodes.len(), 1, "round {round}: exactly one node, reused");
        assert_eq!(nodes[0]["online"], true);
        assert!(nodes[0]["os"].is_string(), "facts reported: {}", nodes[0]);

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
        assert!(status.unwrap().success(), "exit {status:?}\n{}", logs());
        reader.join().unwrap();
        let stdout = stdout.lock().unwrap();
        assert!(stdout.contains("export LABCTL_CONFIG="), "{stdout}");
        let expect = if round == 0 {
            "new state"
        } else {
            "reusing state"
        };
        assert!(stdout.contains(expect), "{stdout}");
    }
}
