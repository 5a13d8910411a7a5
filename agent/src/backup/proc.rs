//! Running the backup tools (restic, pg_dump, psql, snapraid): no shell, in their own process
//! groups (built by the task runner's [`crate::process::exec::prepare`], so users and
//! environments work as for exec tasks), stdout read line by line for JSON, stderr lines
//! streamed to the task's output (with secrets redacted) and their tail kept for messages.
//!
//! A [`Step`] may be fed by a producer (`pg_dump | restic backup --stdin`,
//! `restic dump | psql`): the agent copies the producer's stdout into the consumer's stdin and
//! closes it only when the producer exited 0; when the producer fails, the consumer is killed
//! before it sees the end of its input, so a failed dump never becomes a snapshot.
//!
//! Stopping: once `cx.stop` fires the consumer group gets SIGTERM (SIGKILL while it is being
//! fed) and SIGKILL after `cx.grace`; the producer is killed at once. Dropping the future kills
//! both groups.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use lab_proto::v1::OutputStream;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::{describe, Cx};
use crate::process::exec;
pub use crate::process::Ran;
use crate::process::{capture, ExecSpec, FinalState};

/// Longest line kept from a tool's output; longer lines are cut (restic's JSON lines are far
/// shorter, except `snapshots --json`, which is one line; see [`MAX_JSON_LINE`]).
const MAX_LINE: usize = 64 * 1024;

/// Longest stdout line kept for JSON parsing (a `snapshots --json` array of many snapshots).
pub const MAX_JSON_LINE: usize = 32 * 1024 * 1024;

/// How long output is still read after the program exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Environment variables of the agent that must not reach restic: the password comes only
/// from the task's password file.
const SCRUBBED_ENV: [&str; 3] = [
    "RESTIC_PASSWORD",
    "RESTIC_PASSWORD_COMMAND",
    "RESTIC_REPOSITORY_FILE",
];

/// One program to run.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Program (looked up in PATH) and arguments; never secrets.
    pub argv: Vec<String>,
    /// Added to the agent's environment (may hold secrets: never shown).
    pub env: BTreeMap<String, String>,
    /// Run as this user; empty = the agent's.
    pub user: String,
}

impl Step {
    /// `argv` with the C locale and UTC times (for output that is parsed).
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Self {
        Step {
            argv: argv.iter().map(|s| s.as_ref().to_owned()).collect(),
            env: BTreeMap::from([
                ("LC_ALL".to_owned(), "C".to_owned()),
                ("TZ".to_owned(), "UTC".to_owned()),
            ]),
            user: String::new(),
        }
    }

    /// The program and its arguments as shown in messages.
    pub fn what(&self) -> String {
        self.argv.join(" ")
    }
}

/// SIGKILLs a process group when dropped while armed.
struct Group(Option<Pid>);

impl Group {
    fn of(child: &Child) -> Self {
        Group(
            child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .map(Pid::from_raw),
        )
    }

    fn signal(&self, sig: Signal) {
        if let Some(pgid) = self.0 {
            // ESRCH: already gone, which is what we want.
            let _ = killpg(pgid, sig);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

async fn command(step: &Step) -> Result<Command, String> {
    let spec = ExecSpec {
        argv: step.argv.clone(),
        env: step.env.clone(),
        cwd: String::new(),
        user: step.user.clone(),
    };
    let mut cmd = exec::prepare(&spec).await?.into_command();
    for key in SCRUBBED_ENV {
        if !step.env.contains_key(key) {
            cmd.env_remove(key);
        }
    }
    Ok(cmd)
}

fn spawn(step: &Step, mut cmd: Command) -> Result<Child, String> {
    cmd.spawn().map_err(|e| {
        let program = step.argv.first().map(String::as_str).unwrap_or("");
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("cannot run '{program}': not found; install it on the node")
        } else {
            format!("cannot run '{program}': {}", describe(&e))
        }
    })
}

/// Copies the producer's stdout into `stdin` and waits for it; returns `stdin` when the
/// producer failed, so the caller kills the consumer before closing it.
async fn feed(
    what: String,
    mut child: Child,
    group: Group,
    mut stdin: ChildStdin,
) -> (Ran, Option<ChildStdin>) {
    let mut ran = Ran::new(what);
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let copy = async {
        let r = match out.as_mut() {
            Some(o) => tokio::io::copy(o, &mut stdin).await.map(|_| ()),
            None => Ok(()),
        };
        if r.is_err() {
            // The consumer went away: nothing reads the producer's output any more.
            group.signal(Signal::SIGKILL);
        }
        r
    };
    let tail = async {
        let mut text = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.take(MAX_LINE as u64).read_to_end(&mut text).await;
        }
        text
    };
    let (copied, text) = tokio::join!(copy, tail);
    let status = child.wait().await;
    drop(group);
    capture(&mut ran.stderr, &text);
    finish(&mut ran, status, false);
    if let (true, Err(e)) = (ran.success(), copied) {
        ran.state = FinalState::Failed;
        ran.error = format!(
            "cannot pass the output of '{}' on: {}",
            ran.what,
            describe(&e)
        );
    }
    if ran.success() {
        drop(stdin);
        (ran, None)
    } else {
        (ran, Some(stdin))
    }
}

fn finish(ran: &mut Ran, status: std::io::Result<ExitStatus>, stopped: bool) {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Err(e) => {
            ran.state = FinalState::Failed;
            ran.error = format!("cannot wait for '{}': {}", ran.what, describe(&e));
        }
        Ok(s) => {
            ran.exit_code = s.code().unwrap_or(-1);
            ran.state = if stopped {
                FinalState::Cancelled
            } else if s.success() {
                FinalState::Succeeded
            } else {
                if let Some(sig) = s.signal() {
                    ran.error = format!("'{}' was killed by signal {sig}", ran.what);
                }
                FinalState::Failed
            };
        }
    }
}

/// What a [`run`] did: the consumer and, when there was one, the producer.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The step that was run (the consumer of a pipeline).
    pub main: Ran,
    /// The producer feeding it, if any.
    pub producer: Option<Ran>,
}

impl Pipeline {
    /// Both succeeded.
    pub fn success(&self) -> bool {
        self.main.success() && self.producer.as_ref().is_none_or(Ran::success)
    }

    /// Why it did not succeed: the producer's failure when the consumer was stopped because
    /// of it, else the consumer's own (a consumer that fails on its own, e.g. restic with a
    /// wrong password, makes the producer fail too, but is the cause).
    pub fn failure(&self) -> String {
        match &self.producer {
            Some(p)
                if !p.success()
                    && (self.main.success() || self.main.state == FinalState::Cancelled) =>
            {
                p.failure()
            }
            _ => self.main.failure(),
        }
    }
}

/// Runs `step` (fed by `producer` when given) to its end, handing each stdout line to
/// `on_stdout` and streaming stderr lines to the task's output.
pub async fn run<F>(
    cx: &mut Cx<'_>,
    step: &Step,
    producer: Option<&Step>,
    mut on_stdout: F,
) -> Pipeline
where
    F: FnMut(&mut Cx<'_>, &str),
{
    let mut main = Ran::new(step.what());
    let mut fed = None;
    let mut feeder = None;
    if let Some(p) = producer {
        let mut ran = Ran::new(p.what());
        let child = match command(p).await.and_then(|c| spawn(p, c)) {
            Ok(c) => c,
            Err(e) => {
                ran.error = e;
                main.state = FinalState::Cancelled;
                main.error = format!("'{}' was not started", main.what);
                return Pipeline {
                    main,
                    producer: Some(ran),
                };
            }
        };
        let group = Group::of(&child);
        fed = Some((p.what(), child, group));
    }
    let mut cmd = match command(step).await {
        Ok(c) => c,
        Err(e) => {
            main.error = e;
            return Pipeline {
                main,
                producer: fed.map(|(what, ..)| Ran::new(what)),
            };
        }
    };
    if fed.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = match spawn(step, cmd) {
        Ok(c) => c,
        Err(e) => {
            main.error = e;
            return Pipeline {
                main,
                producer: fed.map(|(what, ..)| Ran::new(what)),
            };
        }
    };
    let group = Group::of(&child);
    if let (Some((what, pchild, pgroup)), Some(stdin)) = (fed, child.stdin.take()) {
        feeder = Some(Box::pin(feed(what, pchild, pgroup, stdin)));
    }
    let (tx, mut rx) = mpsc::channel(64);
    lines::spawn(
        child.stdout.take(),
        OutputStream::Stdout,
        MAX_JSON_LINE,
        tx.clone(),
    );
    lines::spawn(child.stderr.take(), OutputStream::Stderr, MAX_LINE, tx);

    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut kill_at = far;
    let mut drain_until = far;
    let mut stopped = false;
    let mut producer_ran: Option<Ran> = None;
    let mut status = None;
    let mut open = true;
    while open || status.is_none() {
        tokio::select! {
            line = rx.recv(), if open => match line {
                Some((OutputStream::Stderr, line)) => {
                    let shown = cx.redact(&line);
                    (cx.emit)(super::Out::Output(OutputStream::Stderr, format!("{shown}\n").into_bytes()));
                    capture(&mut main.stderr, format!("{shown}\n").as_bytes());
                }
                Some((_, line)) => on_stdout(cx, &line),
                None => open = false,
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s);
                drain_until = Instant::now() + DRAIN_GRACE;
            }
            end = async { match feeder.as_mut() { Some(f) => f.await, None => std::future::pending().await } }, if feeder.is_some() => {
                feeder = None;
                let (mut ran, stdin) = end;
                if stdin.is_some() {
                    // The producer failed: the consumer must not see the end of its input.
                    group.signal(Signal::SIGKILL);
                    stopped = true;
                }
                drop(stdin);
                // The producer's complaints (pg_dump, restic dump) go to the output too.
                let mut redacted = Vec::new();
                for line in String::from_utf8_lossy(&ran.stderr).lines() {
                    let line = format!("{}\n", cx.redact(line));
                    (cx.emit)(super::Out::Output(OutputStream::Stderr, line.clone().into_bytes()));
                    redacted.extend_from_slice(line.as_bytes());
                }
                ran.stderr = redacted;
                producer_ran = Some(ran);
            }
            _ = cx.stop.cancelled(), if !stopped && status.is_none() => {
                stopped = true;
                if feeder.is_some() {
                    group.signal(Signal::SIGKILL);
                    feeder = None;
                } else {
                    group.signal(Signal::SIGTERM);
                    kill_at = Instant::now() + cx.grace;
                }
            }
            _ = sleep_until(kill_at), if kill_at != far && status.is_none() => {
                group.signal(Signal::SIGKILL);
                kill_at = far;
            }
            _ = sleep_until(drain_until), if status.is_some() => break,
        }
    }
    drop(group);
    if let Some(status) = status {
        finish(&mut main, status, stopped);
    }
    if producer.is_some() && producer_ran.is_none() {
        let mut ran = Ran::new(producer.map(Step::what).unwrap_or_default());
        ran.state = FinalState::Cancelled;
        producer_ran = Some(ran);
    }
    Pipeline {
        main,
        producer: producer_ran,
    }
}

mod lines;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
