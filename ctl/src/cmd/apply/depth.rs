//! A linear pre-scan of a spec file's nesting depth, before the YAML parser sees it.
//!
//! The YAML parser reads a whole document into events before serde's recursion limit applies,
//! and its cost grows faster than the input with the nesting depth (100,000 nested flow
//! sequences took 40 s of CPU). This scan estimates the depth in one pass — flow collections
//! (`[`, `{`) outside quotes and comments, plus block levels (indentation and compact `- `/`? `
//! indicators) — and refuses a file far deeper than any spec, naming the line. Block scalar
//! content (`|`, `>`) and quoted text are skipped, so brackets in a file's content do not count.
//! Pure.

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
