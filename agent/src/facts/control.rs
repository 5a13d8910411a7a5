//! Reading Debian control files (deb822): dpkg's `status`, apt's `Packages` lists and
//! `Release` files. Only single-line field values are kept; continuation lines (descriptions,
//! conffiles) are skipped.

use std::io::BufRead;

/// One stanza's simple fields, in file order.
pub type Stanza = Vec<(String, String)>;

/// The value of `field` in `stanza` (field names are case-insensitive).
pub fn field<'a>(stanza: &'a Stanza, name: &str) -> Option<&'a str> {
    stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Calls `visit` with each stanza of `reader`, keeping only the fields in `wanted` (all when
/// empty). Reading stops quietly at the first I/O error; a truncated file yields what it had.
pub fn for_each_stanza(reader: impl BufRead, wanted: &[&str], mut visit: impl FnMut(&Stanza)) {
    let mut stanza = Stanza::new();
    for line in reader.lines() {
        let Ok(line) = line else {
            break;
        };
        if line.trim().is_empty() {
            if !stanza.is_empty() {
                visit(&stanza);
                stanza.clear();
            }
            continue;
        }
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(key)) {
            stanza.push((key.to_owned(), value.trim().to_owned()));
        }
    }
    if !stanza.is_empty() {
        visit(&stanza);
    }
}

/// All stanzas of `text`.
pub fn stanzas(text: &str, wanted: &[&str]) -> Vec<Stanza> {
    let mut all = Vec::new();
    for_each_stanza(text.as_bytes(), wanted, |s| all.push(s.clone()));
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n\n\n\
                    Package: b\nStatus: install ok installed\nConffiles:\n /etc/b.conf 0123\n";
        let all = stanzas(text, &[]);
        assert_eq!(all.len(), 2);
        assert_eq!(field(&all[0], "version"), Some("1.0"));
        assert_eq!(field(&all[0], "Description"), Some("short"));
        assert_eq!(field(&all[1], "Status"), Some("install ok installed"));
        assert_eq!(field(&all[1], "Conffiles"), Some(""));
        let only = stanzas(text, &["Package"]);
        assert_eq!(only[0], vec![("Package".to_owned(), "a".to_owned())]);
    }
}
