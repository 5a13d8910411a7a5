//! Borderless tables for people: columns padded to their widest cell and separated by two
//! spaces, trailing spaces trimmed. Every cell is escaped ([`super::escape`]); colours go around
//! the text after the padding is measured, so a coloured cell never shifts the next column.
//! [`Table::fit`] truncates the last column with `…` so every line fits a width (80 columns for
//! the default tables; `-o wide` does not fit).

use std::fmt;

use unicode_width::UnicodeWidthStr;

use super::{escape, paint};

/// Between two columns.
const GAP: &str = "  ";

/// The width the default tables fit ([`Table::fit`]).
pub const WIDTH: usize = 80;

/// A table with `N` columns: every row has exactly as many cells as the header (the compiler
/// checks it), so no value can sit under another column's title.
pub struct Table<const N: usize> {
    header: [String; N],
    rows: Vec<[Cell; N]>,
    fit: Option<usize>,
}

/// One escaped cell and its style (ANSI SGR, "" for none).
struct Cell {
    text: String,
    style: &'static str,
}

/// A table with `header` as its titles.
pub fn table<const N: usize>(header: [&str; N]) -> Table<N> {
    Table {
        header: header.map(str::to_owned),
        rows: Vec::new(),
        fit: None,
    }
}

impl<const N: usize> Table<N> {
    /// Appends one row of `N` cells.
    pub fn row(&mut self, cells: [String; N]) {
        self.row_styled(cells, [""; N], false);
    }

    /// Appends one row whose cells are painted in `styles` (ANSI SGR, "" for none) when
    /// `color`; the text is escaped first, so only labctl's own styles reach the terminal.
    pub fn row_styled(&mut self, cells: [String; N], styles: [&'static str; N], color: bool) {
        let mut i = 0;
        self.rows.push(cells.map(|c| {
            let style = if color { styles[i] } else { "" };
            i += 1;
            Cell {
                text: escape(&c).into_owned(),
                style,
            }
        }));
    }

    /// Truncates the last column (with `…`) so that every line is at most `width` columns wide,
    /// keeping at least its title's width (so very wide other columns, such as long node names,
    /// can still make a line longer); `None` fits nothing (`-o wide`).
    pub fn fit(mut self, width: Option<usize>) -> Self {
        self.fit = width;
        self
    }

    /// The number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn widths(&self) -> [usize; N] {
        let mut widths = self.header.each_ref().map(|h| h.width());
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.width());
            }
        }
        if let (Some(fit), Some(last)) = (self.fit, N.checked_sub(1)) {
            let others: usize = widths[..last].iter().map(|w| w + GAP.len()).sum();
            let room = fit.saturating_sub(others).max(self.header[last].width());
            widths[last] = widths[last].min(room);
        }
        widths
    }
}

/// `text` cut to `width` columns, its last one `…` when anything was cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

impl<const N: usize> fmt::Display for Table<N> {
    /// The header and the rows, one line each, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let header = self.header.each_ref().map(|h| Cell {
            text: h.clone(),
            style: "",
        });
        for (i, row) in std::iter::once(&header).chain(&self.rows).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let mut line = String::new();
            for (col, (cell, width)) in row.iter().zip(widths).enumerate() {
                if col > 0 {
                    line.push_str(GAP);
                }
                let text = truncate(&cell.text, width);
                let pad = width.saturating_sub(text.width());
                line.push_str(&paint(&text, cell.style, !cell.style.is_empty()));
                line.extend(std::iter::repeat_n(' ', pad));
            }
            f.write_str(line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_pad_to_the_widest_cell_and_colours_do_not_shift_them() {
        let mut t = table(["NAME", "STATUS", "LABELS"]);
        t.row_styled(
            ["n1".into(), "online".into(), "a=1".into()],
            ["", "\x1b[32m", ""],
            true,
        );
        t.row(["node-two".into(), "offline".into(), "".into()]);
        assert_eq!(
            t.to_string(),
            "NAME      STATUS   LABELS\nn1        \x1b[32monline\x1b[0m   a=1\nnode-two  offline"
        );
    }

    #[test]
    fn fit_truncates_only_the_last_column() {
        let long = (0..30)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let mut t = table(["NAME", "LABELS"]);
        t.row(["n1".into(), long.clone()]);
        let fitted = t.fit(Some(40)).to_string();
        for line in fitted.lines() {
            assert!(line.width() <= 40, "{line:?}");
        }
        assert!(fitted.ends_with('…'), "{fitted}");
        let mut t = table(["NAME", "LABELS"]);
        t.row(["n1".into(), long.clone()]);
        assert!(t.fit(None).to_string().ends_with(&long));
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("日本語テキスト", 5), "日本…");
    }
}
