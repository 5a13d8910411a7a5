//! The coordinator's store on a small real tmpfs: new work is refused with a clear error below
//! the free-space reserve; a disk that fills completely fails writes but the same process writes
//! again once space is freed; SIGTERM ends it within seconds while writes fail; a start that met
//! a full disk leaves nothing that stops the next start. Also: a damaged or missing store gives a
//! clear error and exit code instead of a panic or an empty store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lab_tests::{bin, stderr, wait_until, Cluster, Coordinator, Tmpfs};

/// The disk under test: a tmpfs with helpers to fill it.
struct Disk(Tmpfs);

impl Disk {
    fn mount(at: &Path, size: &str) -> Disk {
        Disk(Tmpfs::mount(at, size))
    }

    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0.at)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Writes `name` until only `leave` bytes are free (or the disk is full).
    fn fill(&self, name: &str, leave: u64) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.0.at.join(name))
            .unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        while self.free() > leave {
            if f.write_all(&chunk).and_then(|()| f.sync_all()).is_err() {
                break; // full
            }
        }
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.0.at.join(name)).unwrap();
    }
}

/// Runs `lab-coordinator serve` until it exits by itself or `within` passes (then it gets
/// SIGTERM): its exit code (`None` when it had to be stopped) and stderr.
fn serve_once(dir: &Path, within: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(bin("lab-coordinator"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    let exited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            || {
                status = child.try_wait().unwrap();
                status.is_some()
            },
            within,
            "lab-coordinator serve exits by itself",
        )
    }))
    .is_ok();
    if !exited {
        lab_tests::stop(&mut child, false);
    }
    let out = child.wait_with_output().unwrap();
    (status.and_then(|s| s.code()), stderr(&out))
}

/// `lab-coordinator serve` that must refuse to start: its exit code and stderr.
fn serve_expecting_exit(dir: &Path) -> (Option<i32>, String) {
    let (code, err) = serve_once(dir, Duration::from_secs(20));
    assert!(
        code.is_some(),
        "lab-coordinator serve started on a store it should refuse: {err}"
    );
    (code, err)
}

/// A job on n1 that writes output (so store writes) for up to two minutes; its id.
fn noisy_job(c: &Cluster) -> String {
    let out = c.labctl(&[
        "run",
        "--detach",
        "--timeout",
        "120s",
        "-l",
        "node=n1",
        "--",
        "sh",
        "-c",
        "while true; do head -c 200000 /dev/zero | tr '\\0' x; echo; sleep 0.1; done",
    ]);
    assert!(out.status.success(), "noisy job: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn run_detached(c: &Cluster) -> std::process::Output {
    c.labctl(&["run", "--detach", "-l", "node=n1", "--", "true"])
}

/// The node names tokens are bound to.
fn token_names(c: &Cluster) -> Vec<String> {
    let out = c.labctl(&["token", "list", "-o", "json"]);
    assert!(out.status.success(), "token list: {}", stderr(&out));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .map(|t| t["node_name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_full_disk_refuses_new_work_and_never_wedges_or_corrupts_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::mount(&tmp.path().join("coordinator"), "48m");
    let mut coord = Coordinator::init(tmp.path(), "coordinator", "lab.test");
    coord.start_with(&["--min-free-mib", "16"]);
    let mut c = Cluster {
        tmp,
        coord,
        agents: Vec::new(),
    };
    let mut agent = c.new_agent("n1");
    let out = agent.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(out.status.success(), "enroll: {}", stderr(&out));
    agent.start();
    c.agents.push(agent);
    c.wait_online("n1", true, Duration::from_secs(20));
    let state = c.coord.dir.join("state");

    // Below the reserve: new work is refused, naming the directory and its free space.
    disk.fill("filler", 8 * 1024 * 1024);
    let out = run_detached(&c);
    assert!(
        !out.status.success(),
        "a job was accepted below the reserve"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&state.display().to_string()) && err.contains("MiB free, below the 16 MiB"),
        "unclear refusal: {err}"
    );
    let late = c.new_agent("n2");
    let out = late.enroll_output(&c.coord.addr, &c.token(&[]));
    assert!(
        !out.status.success(),
        "an enrollment was accepted below the reserve"
    );
    assert!(stderr(&out).contains("MiB free"), "{}", stderr(&out));

    // Space returns: the same process takes new work again.
    disk.remove("filler");
    wait_until(
        || run_detached(&c).status.success(),
        Duration::from_secs(20),
        &format!("jobs accepted again after space was freed\n{}", c.logs()),
    );
    assert!(c.coord.is_running(), "the coordinator restarted");
    let token = c.token(&["--name", "n2"]);
    let out = late.enroll_output(&c.coord.addr, &token);
    assert!(
        out.status.success(),
        "enroll after space was freed: {}",
        stderr(&out)
    );

    // Completely full (someone else filled the disk) while a job writes output: writes fail
    // without hanging, and then are refused at once.
    let noisy = noisy_job(&c);
    disk.fill("filler", 0);
    wait_until(
        || {
            let started = Instant::now();
            let out = c.labctl(&["token", "create"]);
            assert!(started.elapsed() < Duration::from_secs(30), "a write hung");
            let err = stderr(&out);
            !out.status.success()
                && (err.contains("disk is full") || err.contains("failed to write"))
        },
        Duration::from_secs(60),
        &format!("a write fails on the full disk\n{}", c.logs()),
    );
    wait_until(
        || stderr(&c.labctl(&["token", "create"])).contains("failed to write"),
        Duration::from_secs(30),
        "writes refused at once after a failed write",
    );
    let refused = c.labctl(&["token", "create", "--name", "never-stored"]);
    assert!(
        !refused.status.success(),
        "a write succeeded after a failed one"
    );

    // SIGTERM while writes fail: the process ends within seconds.
    let started = Instant::now();
    c.coord.stop(false);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "SIGTERM on a full disk took {took:?}"
    );

    // A start on the still-full disk fails cleanly or runs (whether sled needs to write while
    // opening varies); once space is back the next one works, with everything acknowledged and
    // nothing refused.
    let (code, err) = serve_once(&c.coord.dir, Duration::from_secs(5));
    assert!(matches!(code, None | Some(1)), "{code:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    disk.remove("filler");
    c.coord.start_with(&["--min-free-mib", "16"]);
    c.wait_online("n1", true, Duration::from_secs(20));
    let names = token_names(&c);
    assert!(names.contains(&"n2".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"never-stored".to_owned()),
        "a refused write is listed: {names:?}"
    );

    // A write fails while the coordinator runs, then space returns: it stops by itself (for its
    // service manager to start it again), saying why.
    disk.fill("filler", 0);
    wait_until(
        || stderr(&c.labctl(&["token", "create"])).contains("failed to write"),
        Duration::from_secs(60),
        "writes fail on the full disk",
    );
    disk.remove("filler");
    wait_until(
        || !c.coord.is_running(),
        Duration::from_secs(30),
        "the coordinator stops once space is back",
    );
    let log = std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap();
    assert!(log.contains("has room again"), "{log}");
    c.coord.start_with(&["--min-free-mib", "16"]);
    assert!(run_detached(&c).status.success());
    let out = c.labctl(&["job", "cancel", &noisy]);
    assert!(out.status.success(), "cancel: {}", stderr(&out));
    c.coord.stop(false);
    drop(disk);
}

#[test]
fn a_left_over_snapshot_file_is_removed_and_a_damaged_or_missing_store_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::init(tmp.path(), "coordinator", "lab.test");
    let state = coord.dir.join("state");

    // An empty snapshot left by a start that met a full disk made every later start fail.
    let planted = state.join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&planted, b"").unwrap();
    coord.start();
    let out = lab_tests::labctl(&coord.admin_config(), &["user", "list", "-o", "json"]);
    assert!(
        out.status.success(),
        "the admin is locked out: {}",
        stderr(&out)
    );
    coord.stop(false);
    assert!(!planted.exists());

    // A truncated database: a clear error and exit code 1, no panic.
    let db = state.join("db");
    let copy = tmp.path().join("db.orig");
    std::fs::copy(&db, &copy).unwrap();
    // Cut inside what was written (the rest of the file is the unused part of a segment).
    for keep in [0, 100, 1000] {
        std::fs::copy(&copy, &db).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(keep)
            .unwrap();
        let (code, err) = serve_expecting_exit(&coord.dir);
        assert_eq!(code, Some(1), "truncated to {keep} bytes: {err}");
        assert!(
            err.contains(&state.display().to_string()) && !err.contains("panicked"),
            "truncated to {keep} bytes: {err}"
        );
    }
    std::fs::copy(&copy, &db).unwrap();

    // No store at all under an initialized data directory: refused, nothing created.
    let moved = tmp.path().join("state.moved");
    std::fs::rename(&state, &moved).unwrap();
    let (code, err) = serve_expecting_exit(&coord.dir);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is missing") && err.contains("restore it from a backup"),
        "{err}"
    );
    assert!(!state.join("db").exists(), "an empty store was created");
}
