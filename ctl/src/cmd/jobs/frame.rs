//! Line framing of task output: chunks can split lines anywhere, so bytes are buffered per
//! (task, stream) and handed out as complete lines. Pure; printing is the caller's job.

use std::collections::BTreeMap;

/// Longest partial line kept; a longer run without a newline is handed out as a line of its
/// own, so binary output cannot grow the buffer without bound.
pub const MAX_PARTIAL: usize = 64 * 1024;

/// Which stream of a task a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One complete (or flushed) line, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Node the task runs on.
    pub node: String,
    /// Stream it was written to.
    pub stream: Stream,
    /// The bytes of the line (not necessarily UTF-8).
    pub bytes: Vec<u8>,
}

impl Line {
    /// The line as text, invalid UTF-8 replaced.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

#[derive(Debug, Default)]
struct Partial {
    node: String,
    bytes: Vec<u8>,
}

/// Buffers of partial lines, keyed by (task id, stream).
#[derive(Debug, Default)]
pub struct Framer {
    partial: BTreeMap<(String, Stream), Partial>,
}

fn line(node: &str, stream: Stream, mut bytes: Vec<u8>) -> Line {
    if bytes.last() == Some(&b'\r') {
        bytes.pop();
    }
    Line {
        node: node.to_owned(),
        stream,
        bytes,
    }
}

impl Framer {
    /// Adds a chunk and returns the lines it completed, in order.
    pub fn push(&mut self, task_id: &str, node: &str, stream: Stream, data: &[u8]) -> Vec<Line> {
        let partial = self
            .partial
            .entry((task_id.to_owned(), stream))
            .or_default();
        partial.node = node.to_owned();
        let mut lines = Vec::new();
        for piece in data.split_inclusive(|b| *b == b'\n') {
            partial.bytes.extend_from_slice(piece);
            if partial.bytes.last() == Some(&b'\n') {
                partial.bytes.pop();
                lines.push(line(node, stream, std::mem::take(&mut partial.bytes)));
            } else {
                while partial.bytes.len() >= MAX_PARTIAL {
                    let rest = partial.bytes.split_off(MAX_PARTIAL);
                    let full = std::mem::replace(&mut partial.bytes, rest);
                    lines.push(line(node, stream, full));
                }
            }
        }
        if partial.bytes.is_empty() {
            self.partial.remove(&(task_id.to_owned(), stream));
        }
        lines
    }

    /// Hands out the unterminated rest of a task's streams (stdout first); call when the task
    /// reached a final state.
    pub fn flush_task(&mut self, task_id: &str) -> Vec<Line> {
        let keys: Vec<_> = self
            .partial
            .keys()
            .filter(|(t, _)| t == task_id)
            .cloned()
            .collect();
        self.take(keys)
    }

    /// Hands out every unterminated rest; call when the stream of events ends.
    pub fn flush_all(&mut self) -> Vec<Line> {
        let keys: Vec<_> = self.partial.keys().cloned().collect();
        self.take(keys)
    }

    fn take(&mut self, keys: Vec<(String, Stream)>) -> Vec<Line> {
        keys.into_iter()
            .filter_map(|key| {
                let stream = key.1;
                self.partial
                    .remove(&key)
                    .map(|p| line(&p.node, stream, p.bytes))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.text().into_owned()).collect()
    }

    #[test]
    fn splits_and_joins_lines() {
        let mut f = Framer::default();
        assert_eq!(texts(&f.push("t1", "n1", Stream::Stdout, b"a\nb")), ["a"]);
        assert!(f.push("t1", "n1", Stream::Stdout, b"c").is_empty());
        assert_eq!(
            texts(&f.push("t1", "n1", Stream::Stdout, b"d\r\ne\n\n")),
            ["bcd", "e", ""]
        );
        assert!(f.flush_all().is_empty());
    }

    #[test]
    fn keeps_tasks_and_streams_apart() {
        let mut f = Framer::default();
        assert!(f.push("t1", "n1", Stream::Stdout, b"out1").is_empty());
        assert!(f.push("t1", "n1", Stream::Stderr, b"err1").is_empty());
        assert!(f.push("t2", "n2", Stream::Stdout, b"out2").is_empty());
        let l = f.push("t1", "n1", Stream::Stdout, b"-more\n");
        assert_eq!(texts(&l), ["out1-more"]);
        let rest = f.flush_task("t1");
        assert_eq!(rest.len(), 1);
        assert_eq!(
            (rest[0].stream, rest[0].text().as_ref()),
            (Stream::Stderr, "err1")
        );
        let rest = f.flush_all();
        assert_eq!(
            (rest[0].node.as_str(), rest[0].text().as_ref()),
            ("n2", "out2")
        );
        assert!(f.flush_all().is_empty());
    }

    #[test]
    fn utf8_split_across_chunks_is_joined() {
        let mut f = Framer::default();
        let bytes = "é\n".as_bytes();
        assert!(f.push("t", "n", Stream::Stdout, &bytes[..1]).is_empty());
        assert_eq!(texts(&f.push("t", "n", Stream::Stdout, &bytes[1..])), ["é"]);
        assert_eq!(
            texts(&f.push("t", "n", Stream::Stdout, b"\xff\n")),
            ["\u{fffd}"]
        );
    }

    #[test]
    fn long_partial_lines_are_cut() {
        let mut f = Framer::default();
        let big = vec![b'x'; MAX_PARTIAL + 10];
        let lines = f.push("t", "n", Stream::Stdout, &big);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].bytes.len(), MAX_PARTIAL);
        assert_eq!(f.flush_all()[0].bytes.len(), 10);
    }
}
