//! The journal's record framing, pure (no I/O): one line per record,
//! `<checksum> <json>\n`, where `<json>` is a [`Record`] on one line and `<checksum>` is the
//! first 8 bytes of the SHA-256 of `<json>` in lowercase hex (16 characters).
//!
//! A line that is not complete (no `\n`), whose checksum does not match or whose JSON is not a
//! record is invalid; [`decode`] reports it with the task id, when one can still be read from
//! it, and never fails.

use sha2::{Digest, Sha256};

use super::Record;
use crate::tasks::model::TaskId;

/// Hex digits of the checksum.
const SUM_LEN: usize = 16;

/// The checksum of `json`: the first 8 bytes of its SHA-256, in lowercase hex.
fn checksum(json: &[u8]) -> String {
    hex::encode(&Sha256::digest(json)[..SUM_LEN / 2])
}

/// `record` as one journal line, `\n` included.
pub fn encode(record: &Record) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(record)?;
    let mut line = Vec::with_capacity(SUM_LEN + json.len() + 2);
    line.extend_from_slice(checksum(&json).as_bytes());
    line.push(b' ');
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// What a journal file holds.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The valid records, in file order.
    pub records: Vec<Record>,
    /// One entry per invalid line: the task id still legible in it, if any.
    pub invalid: Vec<Option<TaskId>>,
    /// The file ends with a complete line (or is empty): appending to it is safe.
    pub ends_clean: bool,
}

/// Decodes a whole journal file.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Decoded {
        ends_clean: bytes.is_empty() || bytes.ends_with(b"\n"),
        ..Decoded::default()
    };
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // After the last `\n` comes either nothing or a line cut short.
    let tail = lines.pop().unwrap_or_default();
    for line in lines {
        match decode_line(line) {
            Some(record) => out.records.push(record),
            None => out.invalid.push(legible_task_id(line)),
        }
    }
    if !tail.is_empty() {
        out.invalid.push(legible_task_id(tail));
    }
    out
}

/// One complete line (without its `\n`), if it is valid.
fn decode_line(line: &[u8]) -> Option<Record> {
    let (sum, rest) = line.split_at_checked(SUM_LEN)?;
    let json = rest.strip_prefix(b" ")?;
    if sum != checksum(json).as_bytes() {
        return None;
    }
    let record: Record = serde_json::from_slice(json).ok()?;
    record.task_id.parse::<TaskId>().ok()?;
    Some(record)
}

/// The task id of a damaged line, if its `"task_id":"…"` is there whole.
fn legible_task_id(line: &[u8]) -> Option<TaskId> {
    const KEY: &[u8] = b"\"task_id\":\"";
    let start = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&line[start..start + len])
        .ok()?
        .parse()
        .ok()
}
