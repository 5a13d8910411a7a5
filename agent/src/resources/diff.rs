//! Diffs of file content for results: a unified diff (the `similar` crate) of old → new text,
//! "(content redacted)" for secrets, "binary content differs" when either side is not UTF-8.
//! Pure; bounded to [`MAX_DIFF`] bytes so that one huge file cannot bloat a task result.

use similar::TextDiff;

/// Longest diff put into a result; longer ones are cut with a note.
pub const MAX_DIFF: usize = 64 * 1024;

/// What a secret's diff says instead of its content.
pub const REDACTED: &str = "(content redacted)";

/// What a diff says when either side is not text.
pub const BINARY: &str = "binary content differs";

/// The diff of `path` from `old` to `new` (`None` = the file does not exist).
pub fn content(path: &str, old: Option<&[u8]>, new: Option<&[u8]>, secret: bool) -> String {
    if secret {
        return REDACTED.to_owned();
    }
    fn text(b: Option<&[u8]>) -> Result<Option<&str>, std::str::Utf8Error> {
        b.map(std::str::from_utf8).transpose()
    }
    let (Ok(old_text), Ok(new_text)) = (text(old), text(new)) else {
        return BINARY.to_owned();
    };
    let from = if old.is_some() { path } else { "/dev/null" };
    let to = if new.is_some() { path } else { "/dev/null" };
    let diff = TextDiff::from_lines(old_text.unwrap_or(""), new_text.unwrap_or(""))
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string();
    truncate(diff)
}

/// Cuts `diff` to [`MAX_DIFF`] bytes at a line end, with a note.
fn truncate(mut diff: String) -> String {
    if diff.len() <= MAX_DIFF {
        return diff;
    }
    let mut end = MAX_DIFF;
    while !diff.is_char_boundary(end) {
        end -= 1;
    }
    let end = diff[..end].rfind('\n').map_or(end, |i| i + 1);
    diff.truncate(end);
    diff.push_str("... (diff truncated)\n");
    diff
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unified_text_diff() {
        let d = content("/etc/motd", Some(b"a\nb\n"), Some(b"a\nc\n"), false);
        assert_eq!(
            d,
            "--- /etc/motd\n+++ /etc/motd\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        );
        let created = content("/x", None, Some(b"hi\n"), false);
        assert!(created.starts_with("--- /dev/null\n+++ /x\n"), "{created}");
        assert!(created.ends_with("+hi\n"));
        let removed = content("/x", Some(b"hi\n"), None, false);
        assert!(removed.contains("+++ /dev/null\n") && removed.ends_with("-hi\n"));
    }

    #[test]
    fn secrets_and_binaries() {
        assert_eq!(content("/x", Some(b"pw1"), Some(b"pw2"), true), REDACTED);
        assert_eq!(
            content("/x", Some(&[0xff, 0xfe]), Some(b"text"), false),
            BINARY
        );
    }

    #[test]
    fn huge_diffs_are_cut() {
        let new = "line\n".repeat(MAX_DIFF);
        let d = content("/x", None, Some(new.as_bytes()), false);
        assert!(d.len() <= MAX_DIFF + 30);
        assert!(d.ends_with("+line\n... (diff truncated)\n"));
    }
}
