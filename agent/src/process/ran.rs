//! How one program run by a resource or a backup step ended: its state and exit code, and the
//! tail of its output for parsing and for messages.

use lab_proto::v1::OutputStream;

use super::{FinalState, Outcome};

/// Bytes of each stream kept; older output is dropped.
pub const CAPTURE_MAX: usize = 64 * 1024;

/// Longest output tail put into a message.
const TAIL_MAX: usize = 1000;

/// Lines of output a failure message quotes (the last ones say what went wrong: "Fatal: …",
/// "E: Unable to locate package x").
const TAIL_LINES: usize = 3;

/// How a program ended, with the tail of its output.
#[derive(Debug, Clone)]
pub struct Ran {
    /// What was run (for messages).
    pub what: String,
    /// Succeeded (exit 0), Failed, or Cancelled/TimedOut when the stop token (or a failed
    /// producer) ended it.
    pub state: FinalState,
    /// Exit code; -1 if killed by a signal or never started.
    pub exit_code: i32,
    /// Why it could not run or was killed, empty otherwise.
    pub error: String,
    /// The last [`CAPTURE_MAX`] bytes of its stdout (empty where stdout was read line by line).
    pub stdout: Vec<u8>,
    /// The last [`CAPTURE_MAX`] bytes of its stderr.
    pub stderr: Vec<u8>,
}

impl Ran {
    /// A run of `what` that has not ended well (yet): failed, exit code -1, no output.
    pub fn new(what: String) -> Self {
        Ran {
            what,
            state: FinalState::Failed,
            exit_code: -1,
            error: String::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Keeps the tail of what it wrote to `stream`.
    pub fn keep(&mut self, stream: OutputStream, data: &[u8]) {
        match stream {
            OutputStream::Stderr => capture(&mut self.stderr, data),
            _ => capture(&mut self.stdout, data),
        }
    }

    /// Records how it ended.
    pub fn end(&mut self, outcome: Outcome) {
        self.state = outcome.state;
        self.exit_code = outcome.exit_code;
        self.error = outcome.error;
    }

    /// It exited with 0.
    pub fn success(&self) -> bool {
        self.state == FinalState::Succeeded
    }

    /// Its stdout as text, trimmed.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_owned()
    }

    /// Its stderr's lines, trimmed, without empty ones.
    pub fn stderr_lines(&self) -> Vec<String> {
        lines(&self.stderr)
    }

    /// The last lines of its output (stderr if it wrote any, else stdout), joined with "; "
    /// and at most [`TAIL_MAX`] characters.
    pub fn tail(&self) -> String {
        let mut shown = lines(&self.stderr);
        if shown.is_empty() {
            shown = lines(&self.stdout);
        }
        let text = shown[shown.len().saturating_sub(TAIL_LINES)..].join("; ");
        if text.len() <= TAIL_MAX {
            return text;
        }
        let mut start = text.len() - TAIL_MAX;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &text[start..])
    }

    /// Why it did not succeed, for a message: "'apt-get install -y x' failed (exit code 100):
    /// E: Unable to locate package x".
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
pub fn capture(buf: &mut Vec<u8>, data: &[u8]) {
    buf.extend_from_slice(data);
    if buf.len() > CAPTURE_MAX {
        let excess = buf.len() - CAPTURE_MAX;
        buf.drain(..excess);
    }
}

/// The trimmed, non-empty lines of `bytes`.
fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
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
            exit_code: 100,
            stdout: b"Reading package lists...\n".to_vec(),
            stderr: b"E: Unable to locate package x\n".to_vec(),
            ..Ran::new(String::new())
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
        ran.stderr = b"one\n\ntwo\nthree\nFatal: wrong password\n".to_vec();
        assert_eq!(
            ran.failure(),
            "'apt-get install -y x' failed (exit code 100): two; three; Fatal: wrong password"
        );
        ran.error = "cannot run 'apt-get': No such file or directory".into();
        assert_eq!(ran.failure(), ran.error);
        ran.state = FinalState::Cancelled;
        assert!(ran.failure().contains("was stopped"));
        ran.stderr = "é".repeat(2000).into_bytes();
        assert!(ran.tail().starts_with("...é"));
        assert!(ran.tail().len() <= TAIL_MAX + 3);
    }
}
