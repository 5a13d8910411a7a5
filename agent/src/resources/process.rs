//! Running the programs resources need (`dpkg-query`, `apt-get`, `systemctl`, `nixos-rebuild`,
//! command resources): no shell, stdin closed, in their own process group, through the task
//! runner's exec code, so that the config task's stop token ends them (SIGTERM, then SIGKILL
//! after the grace period) and dropping the future kills them.
//!
//! Output is captured (the last [`crate::process::CAPTURE_MAX`] bytes of each stream, for
//! parsing and for the resource's message) and, when asked, streamed to the task's output as it is read.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Cx;
use crate::process::exec::{self, Event, Limits};
use crate::process::ExecSpec;
pub use crate::process::Ran;

/// One program to run.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    /// Program (looked up in PATH) and arguments.
    pub argv: Vec<String>,
    /// Added to the agent's environment.
    pub env: BTreeMap<String, String>,
    /// Working directory; empty = `/`.
    pub cwd: String,
    /// Also write its output to the task's output as it is read.
    pub stream: bool,
    /// Kill its process group after this long (it then ends `TimedOut`); `None` = never.
    pub timeout: Option<Duration>,
}

impl Cmd {
    /// `argv` with the C locale (for output that is parsed), not streamed.
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Self {
        Cmd {
            argv: argv.iter().map(|s| s.as_ref().to_owned()).collect(),
            env: BTreeMap::from([("LC_ALL".to_owned(), "C".to_owned())]),
            cwd: String::new(),
            stream: false,
            timeout: None,
        }
    }

    /// Streams its output to the task's output too.
    pub fn streamed(mut self) -> Self {
        self.stream = true;
        self
    }

    /// Kills it after `limit` (see [`Cmd::timeout`]).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Adds `key=value` to its environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The program and its arguments as shown in messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// Runs `cmd` to its end (or until `cx.stop` fires).
pub async fn run(cx: &mut Cx<'_>, cmd: Cmd) -> Ran {
    let what = cmd.display();
    let stream_output = cmd.stream;
    let spec = ExecSpec {
        argv: cmd.argv,
        env: cmd.env,
        cwd: cmd.cwd,
        user: String::new(),
    };
    let mut ran = Ran::new(what);
    let prepared = match exec::prepare(&spec).await {
        Ok(p) => p,
        Err(e) => {
            ran.error = e;
            return ran;
        }
    };
    let limits = Limits {
        timeout: cmd.timeout,
        cancel: cx.stop.clone(),
        cancel_grace: cx.grace,
    };
    let emit = &mut *cx.emit;
    let kept = &mut ran;
    let outcome = prepared
        .run(limits, |event| {
            if let Event::Output(stream, data) = event {
                kept.keep(stream, &data);
                if stream_output {
                    emit(stream, data);
                }
            }
        })
        .await;
    ran.end(outcome);
    ran
}
