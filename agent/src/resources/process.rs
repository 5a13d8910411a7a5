//! Running the programs resources need (`dpkg-query`, `apt-get`, `systemctl`, `nixos-rebuild`,
//! command resources): no shell, stdin closed, in their own process group, through the task
//! runner's exec code, so that the config task's stop token ends them (SIGTERM, then SIGKILL
//! after the grace period) and dropping the future kills them.
//!
//! Output is captured (the last [`CAPTURE_MAX`] bytes of each stream, for parsing and for the
//! resource's message) and, when asked, streamed to the task's output as it is read.

use std::collections::BTreeMap;

use lab_proto::v1::OutputStream;

use super::Cx;
use crate::tasks::exec::{self, Event, Limits};
use crate::tasks::model::{ExecSpec, FinalState};

/// Bytes of each stream kept for parsing and messages; older output is dropped.
pub const CAPTURE_MAX: usize = 64 * 1024;

/// Longest output tail put into a resource's message.
const TAIL_MAX: usize = 1000;

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
}

impl Cmd {
    /// `argv` with the C locale (for output that is parsed), not streamed.
    pub fn new<S: AsRef<str>>(argv: &[S]) -> Self {
        Cmd {
            argv: argv.iter().map(|s| s.as_ref().to_owned()).collect(),
            env: BTreeMap::from([("LC_ALL".to_owned(), "C".to_owned())]),
            cwd: String::new(),
            stream: false,
        }
    }

    /// Streams its output to the task's output too.
    pub fn streamed(mut self) -> Self {
        self.stream = true;
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

/// How a program ended, with the tail of its output.
#[derive(Debug, Clone)]
pub struct Ran {
    /// What was run (for messages).
    pub what: String,
    /// Succeeded (exit 0), Failed, or Cancelled/TimedOut when the stop token ended it.
    pub state: FinalState,
    /// Exit code; -1 if killed by a signal or never started.
    pub exit_code: i32,
    /// Why it could not run or was killed, empty otherwise.
    pub error: String,
    /// The last bytes of its stdout.
    pub stdout: Vec<u8>,
    /// The last bytes of its stderr.
    pub stderr: Vec<u8>,
}

impl Ran {
    /// It exited with 0.
    pub fn success(&self) -> bool {
        self.state == FinalState::Succeeded
    }

    /// Its stdout as text, trimmed.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_owned()
    }

    /// The end of its output (stderr if it wrote any, else stdout), trimmed and short.
    pub fn tail(&self) -> String {
        let bytes = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &self.stderr
        } else {
            &self.stdout
        };
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if text.len() <= TAIL_MAX {
            return text.to_owned();
        }
        let mut start = text.len() - TAIL_MAX;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &text[start..])
    }

    /// Why it did not succeed, for a resource's message: "'apt-get install -y x' failed
    /// (exit code 100): E: Unable to locate package x".
    pub fn failure(&self) -> String {
        match self.state {
            FinalState::Cancelled | FinalState::TimedOut => {
                format!(
                    "'{}' was stopped: the task was cancelled or timed out",
                    self.what
                )
            }
            _ if !self.error.is_empty() => self.error.clone(),
            _ => {
                let tail = self.tail();
                let mut msg = format!("'{}' failed (exit code {})", self.what, self.exit_code);
                if !tail.is_empty() {
                    msg.push_str(": ");
                    msg.push_str(&tail);
                }
                msg
            }
        }
    }
}

/// Appends `data` to `buf`, keeping only the last [`CAPTURE_MAX`] bytes.
fn capture(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(data);
    if buf.len() > CAPTURE_MAX {
        let excess = buf.len() - CAPTURE_MAX;
        buf.drain(..excess);
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
    let mut ran = Ran {
        what,
        state: FinalState::Failed,
        exit_code: -1,
        error: String::new(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let prepared = match exec::prepare(&spec).await {
        Ok(p) => p,
        Err(e) => {
            ran.error = e;
            return ran;
        }
    };
    let limits = Limits {
        timeout: None,
        cancel: cx.stop.clone(),
        cancel_grace: cx.grace,
    };
    let (stdout, stderr, emit) = (&mut ran.stdout, &mut ran.stderr, &mut *cx.emit);
    let outcome = prepared
        .run(limits, |event| {
            if let Event::Output(stream, data) = event {
                match stream {
                    OutputStream::Stderr => capture(stderr, &data),
                    _ => capture(stdout, &data),
                }
                if stream_output {
                    emit(stream, data);
                }
            }
        })
        .await;
    ran.state = outcome.state;
    ran.exit_code = outcome.exit_code;
    ran.error = outcome.error;
    ran
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_tail() {
        let mut buf = Vec::new();
        capture(&mut buf, &vec![b'a'; CAPTURE_MAX]);
        capture(&mut buf, b"end");
        assert_eq!(buf.len(), CAPTURE_MAX);
        assert!(buf.ends_with(b"aend"));
    }

    #[test]
    fn failure_messages() {
        let mut ran = Ran {
            what: "apt-get install -y x".into(),
            state: FinalState::Failed,
            exit_code: 100,
            error: String::new(),
            stdout: b"Reading package lists...\n".to_vec(),
            stderr: b"E: Unable to locate package x\n".to_vec(),
        };
        assert_eq!(
            ran.failure(),
            "'apt-get install -y x' failed (exit code 100): E: Unable to locate package x"
        );
        ran.stderr.clear();
        assert_eq!(
            ran.failure(),
            "'apt-get install -y x' failed (exit code 100): Reading package lists..."
        );
        ran.state = FinalState::Cancelled;
        assert!(ran.failure().contains("was stopped"));
        let long = "é".repeat(2000);
        ran.stderr = long.into_bytes();
        assert!(ran.tail().starts_with("...é"));
        assert!(ran.tail().len() <= TAIL_MAX + 3);
    }
}
