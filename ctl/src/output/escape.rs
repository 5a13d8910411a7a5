//! Terminal safety: every value labctl prints for people that came from a node, a spec or the
//! coordinator (names, labels, facts, task output, errors) goes through [`escape`] or
//! [`escape_line`], so it cannot move the cursor, recolour the terminal, set its title, or hide
//! or reorder text with bidi overrides and zero-width characters.
//!
//! Such characters are shown as visible escapes (`\x1b`, `\u{202e}`). Task output lines keep tabs
//! but lose colours too: labctl prints them as data, the same on a terminal and in a log, and
//! `-o json` carries the exact bytes for whoever wants them.

use std::borrow::Cow;

/// Whether `c` would change the terminal or hide/reorder text instead of showing a glyph: C0
/// and C1 controls, DEL, the Unicode format characters (bidi embeddings, overrides and
/// isolates, zero-width space/joiners, word joiner, BOM, soft hyphen, tags...) and the line and
/// paragraph separators.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061c}'
                | '\u{06dd}'
                | '\u{070f}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

fn escaped<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !text.chars().any(|c| unsafe_char(c) && !keep.contains(&c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) || keep.contains(&c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// One value (a table cell, a name, a label): every unsafe character escaped, tabs and newlines
/// included, so the value stays on its line and in its column.
pub fn escape(text: &str) -> Cow<'_, str> {
    escaped(text, &[])
}

/// One line of text (task output, a message line): as [`escape`], but tabs are kept.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escaped(text, &['\t'])
}

/// Several lines (an error message, YAML for people): as [`escape_line`], newlines kept.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escaped(text, &['\t', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_bidi_and_zero_width_are_made_visible() {
        assert_eq!(escape("web\x1b[31m01"), "web\\x1b[31m01");
        assert_eq!(
            escape("a\u{202e}b\u{200b}c\u{2066}d"),
            "a\\u{202e}b\\u{200b}c\\u{2066}d"
        );
        assert_eq!(
            escape("bell\x07 csi\u{9b} del\x7f"),
            "bell\\x07 csi\\x9b del\\x7f"
        );
        assert_eq!(escape("tab\there\nnext"), "tab\\x09here\\x0anext");
        assert_eq!(escape_line("tab\there\r"), "tab\there\\x0d");
        assert_eq!(
            escape_text("one\n\ttwo\x1b]0;title\x07"),
            "one\n\ttwo\\x1b]0;title\\x07"
        );
        // Printable text, accents and emoji pass unchanged (and are not copied).
        assert!(matches!(escape("dévé 🦀 n1"), Cow::Borrowed("dévé 🦀 n1")));
    }
}
