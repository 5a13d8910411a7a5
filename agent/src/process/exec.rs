//! Running one `Exec` task: resolve the user, spawn the program (no shell) in its own process
//! group with stdin closed, stream stdout and stderr as they are read, and end it on timeout
//! (SIGKILL to the group) or cancel (SIGTERM to the group, SIGKILL after a grace period).
//!
//! It knows nothing of sequence numbers, the journal or the coordinator: it reports
//! [`Event`]s to a callback and returns an [`Outcome`]. The process group is killed if the
//! future is dropped before the program exited (agent shutdown), so no task outlives the
//! runner unnoticed; processes a task leaves behind after a normal exit are left alone.
//!
//! [`crate::resources`] runs its commands (apt-get, systemctl, command resources) through this
//! module too, so they are stopped the same way when a config task is cancelled.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use lab_proto::limits::MAX_OUTPUT_CHUNK;
use lab_proto::v1::OutputStream;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Pid, User};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::{describe, ExecSpec, FinalState, Outcome};

/// How long output is still read after the program exited, for processes it left behind that
/// keep its stdout or stderr open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Something the running task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The process was spawned.
    Started,
    /// Bytes read from one of its streams (at most `MAX_OUTPUT_CHUNK`).
    Output(OutputStream, Vec<u8>),
}

/// How a running task is stopped from outside.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Kill the group after this long; `None` = never.
    pub timeout: Option<Duration>,
    /// Cancelled by the coordinator.
    pub cancel: CancellationToken,
    /// SIGTERM → SIGKILL delay on cancel.
    pub cancel_grace: Duration,
}

/// A command ready to spawn.
#[derive(Debug)]
pub struct Prepared {
    program: String,
    /// The working directory as given (empty = `/`), named in spawn errors.
    cwd: String,
    cmd: Command,
}

/// Builds the command for `spec`; fails (with the message to report) on an unknown user or a
/// working directory that does not exist.
pub async fn prepare(spec: &ExecSpec) -> Result<Prepared, String> {
    let program = spec.argv.first().cloned().unwrap_or_default();
    if !spec.cwd.is_empty() {
        match tokio::fs::metadata(&spec.cwd).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working directory {} is not a directory; change the task's cwd",
                    spec.cwd
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "working directory {} does not exist on this node; create it or change \
                     the task's cwd",
                    spec.cwd
                ))
            }
            Err(e) => {
                return Err(format!(
                    "cannot use working directory {}: {}",
                    spec.cwd,
                    describe(&e)
                ))
            }
        }
    }
    let mut cmd = Command::new(&program);
    cmd.args(spec.argv.iter().skip(1))
        .current_dir(if spec.cwd.is_empty() { "/" } else { &spec.cwd })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if !spec.user.is_empty() {
        let name = spec.user.clone();
        let user = tokio::task::spawn_blocking(move || User::from_name(&name))
            .await
            .map_err(|e| format!("cannot look up user '{}': {e}", spec.user))?
            .map_err(|e| format!("cannot look up user '{}': {}", spec.user, e.desc()))?
            .ok_or_else(|| {
                format!(
                    "unknown user '{}'; create it on the node or change the task's user",
                    spec.user
                )
            })?;
        cmd.uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env("HOME", &user.dir)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    cmd.envs(&spec.env);
    Ok(Prepared {
        program,
        cwd: spec.cwd.clone(),
        cmd,
    })
}

/// SIGKILLs a process group when dropped while armed.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH: the group is already gone, which is what we want.
            let _ = killpg(pgid, sig);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Reads from `r` if it is still open; never ready once it is closed.
async fn read_some<R: AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Why the agent stopped the program, if it did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled { kill_at: Instant },
}

impl Prepared {
    /// The command as built (user, environment, own process group, stdin closed, stdout and
    /// stderr piped), for callers that drive the process themselves (the backup pipelines of
    /// [`crate::backup::proc`]).
    pub fn into_command(self) -> Command {
        self.cmd
    }

    /// Spawns and runs the program to its end, reporting events to `emit`.
    pub async fn run(mut self, limits: Limits, mut emit: impl FnMut(Event)) -> Outcome {
        let mut child: Child = match self.cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let place = if self.cwd.is_empty() {
                    String::new()
                } else {
                    format!(" in {}", self.cwd)
                };
                return Outcome::failed(format!(
                    "cannot run '{}'{place}: {}",
                    self.program,
                    describe(&e)
                ));
            }
        };
        let mut guard = GroupGuard {
            pgid: child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .map(Pid::from_raw),
        };
        emit(Event::Started);
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut out_buf = vec![0u8; MAX_OUTPUT_CHUNK];
        let mut err_buf = vec![0u8; MAX_OUTPUT_CHUNK];
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let timeout_at = limits.timeout.map_or(far, |t| Instant::now() + t);
        let mut stop: Option<Stop> = None;
        let mut status: Option<std::io::Result<ExitStatus>> = None;
        let mut drain_until = far;

        while status.is_none() || stdout.is_some() || stderr.is_some() {
            let kill_at = match stop {
                Some(Stop::Cancelled { kill_at }) if status.is_none() => kill_at,
                _ => far,
            };
            tokio::select! {
                r = read_some(&mut stdout, &mut out_buf) => match r {
                    Ok(n) if n > 0 => emit(Event::Output(OutputStream::Stdout, out_buf[..n].to_vec())),
                    _ => stdout = None,
                },
                r = read_some(&mut stderr, &mut err_buf) => match r {
                    Ok(n) if n > 0 => emit(Event::Output(OutputStream::Stderr, err_buf[..n].to_vec())),
                    _ => stderr = None,
                },
                s = child.wait(), if status.is_none() => {
                    status = Some(s);
                    drain_until = Instant::now() + DRAIN_GRACE;
                    if stop.is_some() {
                        // Whatever of the group survived the signal goes now.
                        guard.signal(Signal::SIGKILL);
                    }
                }
                _ = sleep_until(timeout_at), if stop.is_none() && status.is_none() => {
                    guard.signal(Signal::SIGKILL);
                    stop = Some(Stop::TimedOut);
                }
                _ = limits.cancel.cancelled(), if stop.is_none() && status.is_none() => {
                    guard.signal(Signal::SIGTERM);
                    stop = Some(Stop::Cancelled { kill_at: Instant::now() + limits.cancel_grace });
                }
                _ = sleep_until(kill_at), if kill_at != far => {
                    guard.signal(Signal::SIGKILL);
                    stop = Some(Stop::Cancelled { kill_at: far });
                }
                _ = sleep_until(drain_until), if status.is_some() => break,
            }
        }
        // The program exited. After a timeout or cancel its group was killed then; after a
        // normal exit, what it deliberately left running is left alone.
        guard.pgid = None;
        let exit_code = match &status {
            Some(Ok(s)) => s.code().unwrap_or(-1),
            _ => -1,
        };
        let (state, error) = match (stop, &status) {
            (_, Some(Err(e))) => (
                FinalState::Failed,
                format!("cannot wait for '{}': {}", self.program, describe(e)),
            ),
            (Some(Stop::TimedOut), _) => (FinalState::TimedOut, String::new()),
            (Some(Stop::Cancelled { .. }), _) => (FinalState::Cancelled, String::new()),
            (None, _) if exit_code == 0 => (FinalState::Succeeded, String::new()),
            (None, Some(Ok(s))) if s.code().is_none() => (
                FinalState::Failed,
                format!(
                    "'{}' was killed by signal {}",
                    self.program,
                    s.signal().unwrap_or(0)
                ),
            ),
            (None, _) => (FinalState::Failed, String::new()),
        };
        Outcome {
            state,
            exit_code,
            error,
            result: None,
        }
    }
}
