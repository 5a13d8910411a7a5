//! The coordinator as a packaged systemd service, short of systemd itself: `init` never
//! replaces a CA unless forced (exit 2), `init` and `cert` run as root leave the state with the
//! data directory's owner (the package's `lab-coordinator` user), and `serve` sends `READY=1`
//! to `NOTIFY_SOCKET` (`Type=notify`) only once it accepts connections, `STOPPING=1` when
//! it stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lab_tests::{bin, free_port, stderr, stop, Coordinator};

fn init(dir: &Path, extra: &[&str]) -> Output {
    Command::new(bin("lab-coordinator"))
        .args(["init", "--data-dir"])
        .arg(dir)
        .args([
            "--advertise",
            "127.0.0.1:7443",
            "--trust-domain",
            "svc.test",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn init_twice_refuses_to_replace_the_ca_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let first = init(&dir, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let ca_key = std::fs::read(dir.join("ca.key")).unwrap();
    let admin = std::fs::read(dir.join("labctl.toml")).unwrap();

    let again = init(&dir, &[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let msg = stderr(&again);
    assert!(
        msg.contains("already has a CA") && msg.contains("--force"),
        "{msg}"
    );
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), ca_key);
    assert_eq!(std::fs::read(dir.join("labctl.toml")).unwrap(), admin);

    // A running coordinator holds the store: --force refuses and changes nothing.
    let mut coord = Coordinator::init(tmp.path(), "running", "svc.test");
    coord.start();
    let running_key = std::fs::read(coord.dir.join("ca.key")).unwrap();
    let busy = init(&coord.dir, &["--force"]);
    assert_eq!(busy.status.code(), Some(1), "{}", stderr(&busy));
    assert!(
        stderr(&busy).contains("stop the coordinator first"),
        "{}",
        stderr(&busy)
    );
    assert_eq!(
        std::fs::read(coord.dir.join("ca.key")).unwrap(),
        running_key
    );
    assert!(coord.is_running());
    coord.stop(false);

    let forced = init(&dir, &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(dir.join("ca.key")).unwrap(), ca_key);
    assert_ne!(std::fs::read(dir.join("labctl.toml")).unwrap(), admin);
}

#[test]
fn init_refuses_bad_arguments_with_exit_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, what) in [
        (
            vec!["--advertise", "no-port", "--trust-domain", "ok.test"],
            "is not HOST:PORT",
        ),
        (
            vec!["--advertise", "127.0.0.1:1", "--trust-domain", "Bad Domain"],
            "--trust-domain",
        ),
        (
            vec!["--advertise", "127.0.0.1:1", "--san", "not a name"],
            "neither an IP address nor a DNS name",
        ),
    ] {
        let dir = tmp.path().join("bad");
        let out = Command::new(bin("lab-coordinator"))
            .args(["init", "--data-dir"])
            .arg(&dir)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(what), "{args:?}: {}", stderr(&out));
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }
}

#[test]
fn init_and_cert_as_root_leave_the_state_with_the_directory_owner() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (the package's 'lab-coordinator init' runs as root)");
        return;
    }
    // The package makes /var/lib/lab-coordinator 0700 for its user; nobody:nogroup stands in.
    let (uid, gid) = (65534, 65534);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    let out = init(&dir, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cert = Command::new(bin("lab-coordinator"))
        .args(["cert", "--data-dir"])
        .arg(&dir)
        .args(["--san", "coord.svc.test"])
        .output()
        .unwrap();
    assert!(cert.status.success(), "{}", stderr(&cert));
    let mut seen = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (uid, gid),
                "{} is not the directory owner's",
                path.display()
            );
            seen += 1;
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    assert!(seen > 6, "only {seen} entries under {}", dir.display());
    let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(
        std::fs::metadata(dir.join("ca.key")).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn serve_notifies_systemd_when_ready_and_when_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::init(tmp.path(), "c", "svc.test");
    let socket_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Killed(
        Command::new(bin("lab-coordinator"))
            .args(["serve", "--data-dir"])
            .arg(&coord.dir)
            .args(["--listen", &addr, "--metrics-listen", "off"])
            .env("NOTIFY_SOCKET", &socket_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let ready = receive(&socket, Duration::from_secs(20));
    assert_eq!(ready.trim(), "READY=1");
    // Ready means serving: the listener accepts at once, no retry needed.
    std::net::TcpStream::connect(&addr).expect("connect right after READY=1");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = receive(&socket, Duration::from_secs(20));
    assert_eq!(stopping.trim(), "STOPPING=1");
    stop(&mut child.0, false);
}

/// A child process killed when the test ends, also when it fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        stop(&mut self.0, true);
    }
}

/// The next datagram on `socket`, waiting at most `timeout`.
fn receive(socket: &UnixDatagram, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 512];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                assert!(
                    Instant::now() < deadline,
                    "no notification within {timeout:?}"
                );
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}
