//! Debian version ordering, as `dpkg --compare-versions` defines it (deb-version(7)).
//!
//! A version is `[epoch:]upstream[-revision]`. Epochs compare as numbers; upstream and
//! revision compare piecewise: a run of non-digits by a modified ASCII order in which `~` sorts
//! before everything (even the end of the string) and letters before other characters, then a
//! run of digits as a number.

use std::cmp::Ordering;

/// Compares two Debian versions. Malformed input (a non-numeric epoch) is compared as if the
/// epoch were 0, never a panic.
pub fn compare_debian_versions(a: &str, b: &str) -> Ordering {
    let (a_epoch, a_upstream, a_revision) = split(a);
    let (b_epoch, b_upstream, b_revision) = split(b);
    a_epoch
        .cmp(&b_epoch)
        .then_with(|| compare_part(a_upstream, b_upstream))
        .then_with(|| compare_part(a_revision, b_revision))
}

/// Splits into epoch, upstream version and revision (empty when absent, which orders like `0`).
fn split(version: &str) -> (u64, &str, &str) {
    let version = version.trim();
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) => (epoch.parse().unwrap_or(0), rest),
        None => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The weight of a non-digit character (`None` is the end of the run).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // non-digit run
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // digit run, compared as numbers of any length
        let a_start = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let b_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let ordering = compare_digits(&a[a_start..i], &b[b_start..j]);
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Compares two ASCII digit strings numerically without overflow.
fn compare_digits(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |d: &[u8]| -> usize { d.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[trim(a)..], &b[trim(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    fn check(a: &str, expected: Ordering, b: &str) {
        assert_eq!(compare_debian_versions(a, b), expected, "{a} vs {b}");
        assert_eq!(
            compare_debian_versions(b, a),
            expected.reverse(),
            "{b} vs {a}"
        );
    }

    #[test]
    fn brief_examples() {
        check("1.0~rc1", Less, "1.0");
        check("1:0.9", Greater, "2.0");
        check("1.0-1", Less, "1.0-2");
        check("1.0a", Greater, "1.0");
    }

    #[test]
    fn tilde_sorts_before_everything() {
        check("1.0~~", Less, "1.0~");
        check("1.0~", Less, "1.0");
        check("1.0~rc1", Less, "1.0~rc2");
        check("1.0~beta", Less, "1.0~rc1");
        check("2.36-9+deb12u4~bpo1", Less, "2.36-9+deb12u4");
        check("1.0-1~bpo12+1", Less, "1.0-1");
    }

    #[test]
    fn letters_before_other_characters() {
        check("1.0a", Less, "1.0+");
        check("1.0a", Less, "1.0.");
        check("1.0+b1", Greater, "1.0");
        check("1.0.1", Greater, "1.0+");
        check("1.0-a", Less, "1.0-+");
    }

    #[test]
    fn numbers_compare_numerically() {
        check("1.2.10", Greater, "1.2.9");
        check("7.88.1-10+deb12u12", Greater, "7.88.1-10+deb12u5");
        check("1.010", Equal, "1.10");
        check(
            "1.99999999999999999999999",
            Greater,
            "1.99999999999999999999998",
        );
        check("1.0.0", Greater, "1.0");
    }

    #[test]
    fn epochs_and_revisions() {
        check("0:1.0", Equal, "1.0");
        check("1.0", Equal, "1.0-0");
        check("2:1.0", Greater, "1:9.9");
        check("1.0-1.1", Greater, "1.0-1");
        check("1.0-beta-2", Greater, "1.0-beta-1");
        check("1.0-beta-1", Less, "1.0.1-1");
        check("252.38-1~deb12u1", Less, "252.38-1");
        check("1:2.39.2-1.1", Greater, "2.40");
        check("x:1.0", Equal, "1.0");
    }

    #[test]
    fn identical_and_empty() {
        check("5.15.0-1ubuntu1", Equal, "5.15.0-1ubuntu1");
        check("", Equal, "");
        check("", Less, "0.1");
        check("~", Less, "");
    }
}
