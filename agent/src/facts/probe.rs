//! What a collection may look at ([`Probe`]): files under a root directory, and, only for the
//! running system, programs to ask (`systemctl`, `k3s --version`, `ceph status`, `psql`).
//!
//! Programs are found in the agent's `PATH`, then in the usual system directories (a systemd
//! unit's `PATH` on NixOS lacks `/run/current-system/sw/bin`). They run through
//! [`crate::process::exec`] like every other program the agent runs: no shell, stdin closed, in
//! their own process group, which is killed at the deadline, so a hung `ceph` and whatever it
//! started are gone when [`Probe::run`] returns.
//!
//! Under any other root (a mounted image, a fixture tree) no program runs: the image's binaries
//! are not this machine's, and this machine's services do not describe the image.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::process::exec::{self, Event, Limits};
use crate::process::{ExecSpec, Ran};

/// Directories searched after `PATH`.
const SYSTEM_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/run/current-system/sw/bin",
];

/// The sources of one collection.
#[derive(Debug, Clone)]
pub struct Probe {
    root: PathBuf,
    /// Where programs are looked up; empty when programs must not run.
    program_dirs: Vec<PathBuf>,
}

/// One program to run for a fact: what to run (the environment always has `LC_ALL=C`), and
/// when to kill it and its process group.
#[derive(Debug, Clone)]
pub struct Command {
    /// Program path, arguments, environment, user.
    pub spec: ExecSpec,
    /// Killed (with its process group) after this long.
    pub timeout: Duration,
}

impl Command {
    /// `program` with `args`, as the agent's user, killed after `timeout`.
    pub fn new(program: &Path, args: &[&str], timeout: Duration) -> Self {
        let mut argv = vec![program.to_string_lossy().into_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        Command {
            spec: ExecSpec {
                argv,
                env: BTreeMap::from([("LC_ALL".to_owned(), "C".to_owned())]),
                cwd: String::new(),
                user: String::new(),
            },
            timeout,
        }
    }

    /// Adds `key=value` to its environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.spec.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Runs it as `user` instead.
    pub fn user(mut self, user: &str) -> Self {
        self.spec.user = user.to_owned();
        self
    }
}

impl Probe {
    /// Files under `root`; programs only when `root` is `/` (found in `PATH`, then the system
    /// directories).
    pub fn new(root: &Path) -> Self {
        let program_dirs = if root == Path::new("/") {
            let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default();
            for dir in SYSTEM_DIRS {
                if !dirs.iter().any(|d| d == Path::new(dir)) {
                    dirs.push(PathBuf::from(dir));
                }
            }
            dirs.retain(|d| d.is_absolute());
            dirs
        } else {
            Vec::new()
        };
        Probe {
            root: root.to_path_buf(),
            program_dirs,
        }
    }

    /// Files under `root`, programs from `dirs` only: for tests with stand-in programs.
    pub fn with_programs(root: &Path, dirs: Vec<PathBuf>) -> Self {
        Probe {
            root: root.to_path_buf(),
            program_dirs: dirs,
        }
    }

    /// The root files are read under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the root is the running system (`/`): only then do `statvfs`, interface
    /// addresses and engine sockets describe it.
    pub fn live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The executable `name` in the program directories; `None` when not found or when
    /// programs are not run for this root.
    pub fn program(&self, name: &str) -> Option<PathBuf> {
        self.program_dirs
            .iter()
            .map(|dir| dir.join(name))
            .find(|path| is_executable(path))
    }

    /// Runs `cmd` to its end or its deadline. Blocking; collectors run on their own threads.
    pub fn run(&self, cmd: Command) -> Ran {
        run(cmd)
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd` on a small current-thread runtime (on a thread of its own when called from
/// inside a runtime, where `block_on` would panic).
fn run(cmd: Command) -> Ran {
    let what = cmd.spec.argv.join(" ");
    let go = move || -> Ran {
        let mut ran = Ran::new(cmd.spec.argv.join(" "));
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                ran.error = format!("cannot run '{}': {e}", ran.what);
                return ran;
            }
        };
        rt.block_on(async {
            let prepared = match exec::prepare(&cmd.spec).await {
                Ok(p) => p,
                Err(e) => {
                    ran.error = e;
                    return;
                }
            };
            let limits = Limits {
                timeout: Some(cmd.timeout),
                cancel: CancellationToken::new(),
                cancel_grace: Duration::ZERO,
            };
            let kept = &mut ran;
            let outcome = prepared
                .run(limits, |event| {
                    if let Event::Output(stream, data) = event {
                        kept.keep(stream, &data);
                    }
                })
                .await;
            ran.end(outcome);
        });
        ran
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(go).join()).unwrap_or_else(|_| {
            let mut ran = Ran::new(what);
            ran.error = "the program runner failed".to_owned();
            ran
        })
    } else {
        go()
    }
}

/// Why `ran` gave no usable output, for a collector error: "'ceph status -f json' did not
/// finish within 5s and was killed", or the failure with the last lines it printed.
pub fn failure(ran: &Ran, timeout: Duration) -> String {
    match ran.state {
        crate::process::FinalState::TimedOut => format!(
            "'{}' did not finish within {} and was killed",
            ran.what,
            humantime::format_duration(timeout)
        ),
        _ => ran.failure(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::facts::testutil::write;

    #[test]
    fn programs_only_for_the_running_system() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Probe::new(dir.path()).program("sh"), None);
        assert!(Probe::new(Path::new("/")).program("sh").is_some());
        assert!(Probe::new(Path::new("/")).live());
        assert!(!Probe::new(dir.path()).live());
    }

    #[test]
    fn stand_in_programs_are_found_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bin/tool", "#!/bin/sh\necho hi\n");
        let probe = Probe::with_programs(dir.path(), vec![dir.path().join("bin")]);
        assert_eq!(probe.program("tool"), None, "not executable yet");
        std::fs::set_permissions(
            dir.path().join("bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let tool = probe.program("tool").unwrap();
        let ran = probe.run(Command::new(&tool, &[], Duration::from_secs(10)));
        assert!(ran.success(), "{}", ran.failure());
        assert_eq!(ran.stdout_text(), "hi");
    }

    #[test]
    fn output_exit_codes_and_missing_programs() {
        let probe = Probe::new(Path::new("/"));
        let echo = probe.program("echo").unwrap();
        let ran = probe.run(Command::new(&echo, &["hello"], Duration::from_secs(10)));
        assert_eq!(ran.stdout_text(), "hello");
        let sh = probe.program("sh").unwrap();
        let ran = probe.run(Command::new(
            &sh,
            &["-c", "echo broken >&2; exit 3"],
            Duration::from_secs(10),
        ));
        assert!(!ran.success());
        assert_eq!(
            failure(&ran, Duration::from_secs(10)),
            format!(
                "'{} -c echo broken >&2; exit 3' failed (exit code 3): broken",
                sh.display()
            )
        );
        let ran = probe.run(Command::new(
            Path::new("/nonexistent/tool"),
            &[],
            Duration::from_secs(10),
        ));
        assert!(!ran.success());
        assert!(
            ran.failure().contains("/nonexistent/tool"),
            "{}",
            ran.failure()
        );
    }

    #[test]
    fn large_output_does_not_stall() {
        let probe = Probe::new(Path::new("/"));
        let seq = probe.program("seq").unwrap();
        let ran = probe.run(Command::new(
            &seq,
            &["1", "100000"],
            Duration::from_secs(10),
        ));
        assert!(ran.success());
        // the tail is kept: the last CAPTURE_MAX bytes
        assert!(ran.stdout_text().ends_with("99999\n100000"));
    }

    /// A program that hangs, and a child it started, are killed at the deadline.
    #[test]
    fn a_hung_program_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        let probe = Probe::new(Path::new("/"));
        let sh = probe.program("sh").unwrap();
        let script = format!("sleep 300 & echo $! > {}; wait", marker.display());
        let timeout = Duration::from_millis(300);
        let ran = probe.run(Command::new(&sh, &["-c", &script], timeout));
        assert_eq!(ran.state, crate::process::FinalState::TimedOut);
        assert_eq!(
            failure(&ran, timeout),
            format!(
                "'{} -c {script}' did not finish within 300ms and was killed",
                sh.display()
            )
        );
        let pid = std::fs::read_to_string(&marker).unwrap();
        // gone, or a zombie nobody reaped yet (PID 1 of a container may not)
        let gone = || {
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).map_or(true, |stat| {
                stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z'))
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(), "the hung program's child {pid} is still running");
    }

    #[tokio::test]
    async fn runs_from_inside_a_runtime() {
        let probe = Probe::new(Path::new("/"));
        let echo = probe.program("echo").unwrap();
        let ran = probe.run(Command::new(&echo, &["ok"], Duration::from_secs(10)));
        assert_eq!(ran.stdout_text(), "ok");
    }
}
