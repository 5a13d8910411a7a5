//! Real systemd hosts for end-to-end tests: Debian 12 containers with systemd as PID 1.
//!
//! The root filesystem is built once per machine with `debootstrap --variant=minbase` and
//! imported as a local Docker image ([`ensure_image`]); nothing is ever pulled from a registry.
//! Containers share the host's network (`--network host`), so tests reach them, and they reach
//! each other, only on loopback ports the tests choose. Each container is removed when its
//! [`SystemdHost`] is dropped, and every container of a test process is also removed by a
//! reaper process when the test process ends, however it ends (panic, `exit`, SIGKILL): the
//! reaper waits for EOF on a pipe only the test process holds. Names carry the process id and
//! start time, so two runs on one machine never collide.
//!
//! Without Docker or debootstrap, [`ensure_image`] returns an error saying what to install:
//! these tests fail then, they never pass silently.

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Packages debootstrap adds to `minbase`: systemd as init, D-Bus for systemctl, `ps`/`pgrep`
/// for the tests, and everything the labfleet packages depend on or use in their maintainer
/// scripts (`adduser`, `passwd`), so `apt install ./x.deb` needs no network.
pub const INCLUDE: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "procps",
    "adduser",
    "passwd",
];

/// Debian suite of the image.
pub const SUITE: &str = "bookworm";

/// Image repository name; the tag is a hash of what goes into the image.
const IMAGE_REPO: &str = "labfleet-e2e-debian12-systemd";

/// Label on every container the rig makes; the value is the run id.
const RUN_LABEL: &str = "labfleet.e2e.run";

/// The `docker run` options that make systemd work as PID 1 in a container on this kind of
/// host (`--privileged` does not): capabilities systemd uses, the host's cgroup tree, tmpfs on
/// /run, and SIGRTMIN+3 (systemd's "halt") as the stop signal so `docker stop` shuts down cleanly.
pub const RUN_OPTIONS: &[&str] = &[
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "SYS_PTRACE",
    "--cap-add",
    "SYS_BOOT",
    "--cap-add",
    "MKNOD",
    "--cap-add",
    "AUDIT_CONTROL",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--stop-signal",
    "SIGRTMIN+3",
    "--network",
    "host",
];

/// Runs `cmd`, returning its output or an error naming the command.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, String> {
    cmd.output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))
}

/// Runs `cmd` and requires success; the error carries its stderr.
pub(crate) fn run_ok(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = run(cmd)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The image tag: a hash of the suite, the package list and the rootfs tweaks, so changing any
/// of them builds a new image instead of reusing a stale one.
fn image_tag() -> String {
    use std::hash::{Hash, Hasher};
    // DefaultHasher's algorithm may change between Rust releases; that only costs a rebuild
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (SUITE, INCLUDE, TWEAKS).hash(&mut h);
    format!("{IMAGE_REPO}:{:016x}", h.finish())
}

/// Shell run on the host against the fresh root filesystem (`$1`) before it is imported: no apt
/// sources (the containers have no network; apt installs local .debs only), a machine id made
/// at each boot, and no package caches.
const TWEAKS: &str = r#"set -e
root="$1"
: > "$root/etc/apt/sources.list"
: > "$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
"#;

/// Makes sure the systemd host image exists locally, building it the first time (once per
/// machine; concurrent test processes wait on a lock file). Returns the image reference.
pub fn ensure_image() -> Result<String, String> {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    IMAGE.get_or_init(build_image_once).clone()
}

fn image_exists(tag: &str) -> Result<bool, String> {
    let out = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", tag]))
        .map_err(|e| {
            format!("{e}; the systemd host tests need Docker (apt-get install docker.io)")
        })?;
    Ok(out.status.success())
}

fn build_image_once() -> Result<String, String> {
    let tag = image_tag();
    let out = run(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]))
        .map_err(|e| {
            format!("{e}; the systemd host tests need Docker (apt-get install docker.io)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "the systemd host tests need a working Docker engine: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if image_exists(&tag)? {
        return Ok(tag);
    }
    let _lock = machine_lock("labfleet-e2e-rootfs.lock")?;
    if image_exists(&tag)? {
        return Ok(tag); // another test process built it while we waited
    }
    let started = Instant::now();
    build_image(&tag)?;
    eprintln!(
        "built the systemd host image {tag} in {:.0?} (once per machine)",
        started.elapsed()
    );
    Ok(tag)
}

/// An exclusive lock on the file `name` in the temp dir, held until dropped: test processes
/// that build a shared image once per machine take it, and the others wait.
pub(crate) fn machine_lock(name: &str) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    let path = std::env::temp_dir().join(name);
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// debootstrap into a scratch directory, tweak, `docker import`, remove the directory.
fn build_image(tag: &str) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix("labfleet-rootfs-")
        .tempdir_in("/var/tmp")
        .map_err(|e| format!("cannot make a scratch dir in /var/tmp: {e}"))?;
    let root = scratch.path().join("root");
    debootstrap(INCLUDE, &root)?;
    run_ok(
        Command::new("sh").args(["-c", TWEAKS, "tweaks"]).arg(&root),
        "rootfs tweaks",
    )?;
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let stdout = tar.stdout.ok_or("tar has no stdout")?;
    run_ok(
        Command::new("docker")
            .args(["import", "-", tag])
            .stdin(Stdio::from(stdout)),
        "docker import",
    )?;
    Ok(())
}

/// `debootstrap --variant=minbase --include=INCLUDE` of [`SUITE`] into `root`, from
/// `$LAB_DEBIAN_MIRROR` (default deb.debian.org). The test rigs build their root filesystems
/// with it.
pub(crate) fn debootstrap(include: &[&str], root: &Path) -> Result<(), String> {
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(
            "debootstrap not found; the test rigs build their Debian images with it \
             (apt-get install debootstrap; .ci/run installs it)"
                .into(),
        );
    }
    let mirror = std::env::var("LAB_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    run_ok(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", include.join(",")))
            .arg(SUITE)
            .arg(root)
            .arg(&mirror),
        &format!("debootstrap {SUITE} from {mirror} (set LAB_DEBIAN_MIRROR for another mirror)"),
    )?;
    Ok(())
}

/// This process's run id: process id and start time.
fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{}-{:x}", std::process::id(), nanos % 0xffff_ffff)
    })
}

/// Starts (once) the reaper: a process in its own session that waits for EOF on its stdin, which
/// only this process holds open, then removes every container labelled with this run's id.
fn start_reaper() -> Result<(), String> {
    static REAPER: OnceLock<Result<Mutex<ChildStdin>, String>> = OnceLock::new();
    let r = REAPER.get_or_init(|| {
        let script = format!(
            "cat >/dev/null; docker ps -aq --filter label={RUN_LABEL}={} | xargs -r docker rm -f -v >/dev/null 2>&1",
            run_id()
        );
        let child = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the container reaper: {e}"))?;
        // the write end stays open, unused, until this process ends
        child
            .stdin
            .map(Mutex::new)
            .ok_or_else(|| "the container reaper has no stdin".to_owned())
    });
    r.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// A Debian 12 container with systemd as PID 1, removed when dropped.
pub struct SystemdHost {
    /// Container name (unique per run).
    pub name: String,
}

impl SystemdHost {
    /// Boots a container named after `role` and waits until systemd reports the system
    /// running (or degraded).
    pub fn boot(role: &str) -> Result<SystemdHost, String> {
        let image = ensure_image()?;
        start_reaper()?;
        let name = format!("labfleet-e2e-{}-{role}", run_id());
        let out = run(Command::new("docker")
            .args(["run", "-d", "--name", &name])
            .args(["--label", &format!("{RUN_LABEL}={}", run_id())])
            .args(RUN_OPTIONS)
            .args([&image, "/sbin/init"]))?;
        let host = SystemdHost { name };
        if !out.status.success() {
            return Err(format!(
                "docker run {}: {}",
                host.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        host.wait_booted(Duration::from_secs(60))?;
        Ok(host)
    }

    /// Polls `systemctl is-system-running` until it says `running` or `degraded`.
    pub fn wait_booted(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.exec("systemctl is-system-running");
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            match state.as_str() {
                "running" => return Ok(()),
                "degraded" => {
                    let failed = self.exec("systemctl --failed --no-legend --plain");
                    eprintln!(
                        "{}: system degraded: {}",
                        self.name,
                        String::from_utf8_lossy(&failed.stdout)
                    );
                    return Ok(());
                }
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "{} did not finish booting within {timeout:?}: is-system-running says '{state}' {}",
                        self.name,
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(200)), // sleep-ok: polling interval
            }
        }
    }

    /// `sh -c SCRIPT` inside the container.
    pub fn exec(&self, script: &str) -> Output {
        Command::new("docker")
            .args(["exec", &self.name, "sh", "-c", script])
            .output()
            .expect("run docker exec")
    }

    /// `sh -c SCRIPT` inside the container; panics with its output unless it succeeds.
    /// Returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self.exec(script);
        assert!(
            out.status.success(),
            "{}: '{script}' failed ({}):\n{}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies a host file into the container.
    pub fn copy_in(&self, src: &Path, dest: &str) {
        let out = run_ok(
            Command::new("docker")
                .arg("cp")
                .arg(src)
                .arg(format!("{}:{dest}", self.name)),
            "docker cp",
        );
        if let Err(e) = out {
            panic!("copy {} into {}:{dest}: {e}", src.display(), self.name);
        }
    }

    /// Writes `content` to `dest` inside the container.
    pub fn write(&self, dest: &str, content: &str) {
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &self.name,
                "sh",
                "-c",
                "cat > \"$1\"",
                "write",
            ])
            .arg(dest)
            .stdin(Stdio::piped())
            .spawn()
            .expect("run docker exec");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(content.as_bytes())
            .expect("write to docker exec");
        let status = child.wait().expect("docker exec");
        assert!(status.success(), "{}: writing {dest} failed", self.name);
    }

    /// Copies a file out of the container to `dest` on the host.
    pub fn copy_out(&self, src: &str, dest: &Path) {
        let out = run_ok(
            Command::new("docker")
                .arg("cp")
                .arg(format!("{}:{src}", self.name))
                .arg(dest),
            "docker cp",
        );
        if let Err(e) = out {
            panic!("copy {}:{src} out: {e}", self.name);
        }
    }

    /// `docker restart`: systemd shuts down on the stop signal and boots again; waits until
    /// the system is running.
    pub fn reboot(&self) {
        let out = run_ok(
            Command::new("docker").args(["restart", "-t", "30", &self.name]),
            "docker restart",
        );
        if let Err(e) = out {
            panic!("{e}");
        }
        if let Err(e) = self.wait_booted(Duration::from_secs(60)) {
            panic!("{e}");
        }
    }

    /// When the container's PID 1 last started (`docker inspect .State.StartedAt`).
    pub fn started_at(&self) -> String {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.State.StartedAt}}", &self.name])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .output();
    }
}
