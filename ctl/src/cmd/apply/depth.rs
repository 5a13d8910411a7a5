//! A linear pre-scan of a spec file, before the YAML parser sees it: its nesting depth, and
//! file modes that YAML would misread.
//!
//! The YAML parser reads a whole document into events before serde's recursion limit applies,
//! and its cost grows faster than the input with the nesting depth (100,000 nested flow
//! sequences took 40 s of CPU). This scan estimates the depth in one pass — flow collections
//! (`[`, `{`) outside quotes and comments, plus block levels (indentation and compact `- `/`? `
//! indicators) — and refuses a file far deeper than any spec, naming the line. Block scalar
//! content (`|`, `>`) and quoted text are skipped, so brackets in a file's content do not count.
//!
//! A mode written `mode: 0o644` or `mode: 0x1a4` is a number to YAML (420), which the parser
//! cannot tell from `mode: 420` and would apply as 0420; such a line is refused with the quoted
//! form to write instead (`mode: 0644` and `mode: "0644"` are fine). Pure.

/// Deepest nesting a spec file may have; a real spec needs about a dozen levels.
pub const MAX_SPEC_DEPTH: usize = 100;

/// Checks that `text` nests at most [`MAX_SPEC_DEPTH`] levels; the error names the line.
pub fn check(text: &str) -> Result<(), String> {
    let mut scan = Scan::default();
    for (i, line) in text.lines().enumerate() {
        if let Some(depth) = scan.line(line).filter(|d| *d > MAX_SPEC_DEPTH) {
            return Err(format!(
                "nesting is deeper than {MAX_SPEC_DEPTH} levels at line {} (at least {depth}); a spec needs far fewer, check the file",
                i + 1
            ));
        }
        if let Some(mode) = scan.radix_mode.take() {
            return Err(format!(
                "line {}: 'mode: {mode}' is read by YAML as the number {}, not as octal digits; write the mode quoted, e.g. mode: \"0644\"",
                i + 1,
                radix_value(&mode).map_or_else(|| "?".to_owned(), |v| v.to_string())
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    /// Columns of the open block collections.
    blocks: Vec<usize>,
    /// Open flow collections (`[`, `{`).
    flow: usize,
    /// Inside a quoted scalar that continues on the next line.
    quote: Option<char>,
    /// Inside a block scalar whose content is indented more than this column.
    block_scalar: Option<usize>,
    /// The value of a `mode:` key written with a 0o/0x prefix, seen on the last line.
    radix_mode: Option<String>,
}

impl Scan {
    /// Scans one line; returns the deepest nesting seen on it.
    fn line(&mut self, line: &str) -> Option<usize> {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let content = &line[indent..];
        if let Some(parent) = self.block_scalar {
            if content.is_empty() || indent > parent {
                return None;
            }
            self.block_scalar = None;
        }
        let mut rest = content;
        if self.quote.is_none() && self.flow == 0 {
            if content.is_empty() || content.starts_with('#') {
                return None;
            }
            while self.blocks.last().is_some_and(|c| *c >= indent) {
                self.blocks.pop();
            }
            self.blocks.push(indent);
            // Compact nested entries on one line: `- - - x`, `? - x`.
            let mut column = indent;
            while let Some(after) = ["- ", "? ", ": "].iter().find_map(|p| rest.strip_prefix(p)) {
                let skipped = rest.len() - after.len();
                let spaces = after.len() - after.trim_start_matches(' ').len();
                column += skipped + spaces;
                rest = &after[spaces..];
                self.blocks.push(column);
            }
            self.radix_mode = radix_mode(rest);
        }
        let mut deepest = self.blocks.len() + self.flow;
        let mut prev = ' ';
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match self.quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => {
                    if q == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        self.quote = None;
                    }
                }
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '"' | '\'' if prev.is_whitespace() || "[{,:".contains(prev) => {
                        self.quote = Some(c)
                    }
                    '[' | '{' => {
                        self.flow += 1;
                        deepest = deepest.max(self.blocks.len() + self.flow);
                    }
                    ']' | '}' => self.flow = self.flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        if self.quote.is_none() && self.flow == 0 && is_block_scalar_header(rest) {
            self.block_scalar = Some(indent);
        }
        Some(deepest)
    }
}

/// The value of `mode: 0o…` / `mode: 0x…` (a plain scalar YAML reads as a number) at the start
/// of `rest`, a line's content after its indentation and `- ` indicators.
fn radix_mode(rest: &str) -> Option<String> {
    let value = rest.strip_prefix("mode:")?.trim_start();
    let value = value.split([' ', '\t', '#']).next().unwrap_or("");
    radix_value(value).map(|_| value.to_owned())
}

/// The number YAML reads from `0o…` or `0x…`.
fn radix_value(text: &str) -> Option<u64> {
    let (digits, radix) = match text.get(..2)? {
        "0o" | "0O" => (&text[2..], 8),
        "0x" | "0X" => (&text[2..], 16),
        _ => return None,
    };
    u64::from_str_radix(digits, radix).ok()
}

/// Whether a line (comment removed or not) ends with a block scalar header: `|`, `>`, with
/// optional chomping and indentation indicators (`|-`, `>+2`).
fn is_block_scalar_header(rest: &str) -> bool {
    let code = match rest.find(" #") {
        Some(i) => &rest[..i],
        None => rest,
    };
    let last = code.trim_end().rsplit([' ', '\t']).next().unwrap_or("");
    let mut chars = last.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '-' || c == '+' || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_yaml_reads_as_a_number_is_refused_with_the_quoted_form() {
        let spec = "resources:\n  - file:\n      path: /etc/x\n      mode: 0o644\n";
        let err = check(spec).unwrap_err();
        assert_eq!(
            err,
            "line 4: 'mode: 0o644' is read by YAML as the number 420, not as octal digits; write the mode quoted, e.g. mode: \"0644\""
        );
        assert!(check("- file: {path: /x}\n  mode: 0x1a4 # hex\n").is_err());
        for fine in [
            "mode: 0644\n",
            "mode: \"0o644\"\n",
            "mode: '0x1a4'\n",
            "content: |\n  mode: 0o644\nmode: \"0644\"\n",
            "name: mode: 0o644\n",
        ] {
            assert_eq!(check(fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn real_specs_pass() {
        let spec = r#"apiVersion: labfleet/v1
kind: Job
metadata: {name: motd}
spec:
  selector: "role in (web, db)"
  task:
    config:
      resources:
        - file:
            path: /etc/motd
            content: |
              [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
              {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{
            mode: "0644"
        - command: {argv: [sh, -c, "echo '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['"]}
        - command: {argv: ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[']}
          # comment [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
"#;
        check(spec).unwrap();
        check(&format!("{}x\n", "[".repeat(MAX_SPEC_DEPTH - 1))).unwrap();
    }

    #[test]
    fn deep_flow_block_and_compact_nesting_is_refused() {
        let flow = format!("spec: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let e = check(&flow).unwrap_err();
        assert!(e.contains("deeper than 100 levels at line 1"), "{e}");
        let compact = format!("{}x\n", "- ".repeat(200));
        assert!(check(&compact).is_err());
        let block: String = (0..200)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let e = check(&block).unwrap_err();
        assert!(e.contains("at line 101"), "{e}");
        // Quotes that close, and an apostrophe inside a word, do not hide what follows.
        let tricky = format!("a: don't \"x\" {}\n", "{".repeat(150));
        assert!(check(&tricky).is_err());
    }
}
