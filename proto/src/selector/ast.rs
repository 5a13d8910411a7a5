//! The parsed form of a selector: requirements on labels and fact paths, their operators and
//! numeric literals, and the canonical text form ([`fmt::Display`]).

use std::collections::BTreeSet;
use std::fmt;

use super::FACTS_PREFIX;

/// A parsed selector: requirements that must all hold. The empty selector selects every node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub(super) requirements: Vec<Requirement>,
}

/// One condition of a selector, on a label or on a fact path.
///
/// [`Display`](fmt::Display) writes the canonical form, which parses back to an equal value when
/// keys, path segments and values use the grammar's characters (always so after parsing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A condition on a node label, such as `role=db` or `!gpu`.
    ///
    /// The parser never puts [`Operator::Compare`] here; a hand-built one never matches.
    Label {
        /// The label key, such as `role` or `kubernetes.io/arch`; never starts with `facts.`.
        key: String,
        /// What the label's value must satisfy.
        op: Operator,
    },
    /// A condition on a path into the node's fact document, such as
    /// `facts.memory.total_bytes>=16e9`.
    Fact {
        /// The segments after `facts.`, such as `["memory", "total_bytes"]`; never empty.
        path: Vec<String>,
        /// What the value at the path must satisfy.
        op: Operator,
    },
}

/// What a requirement demands of the value under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `k`: the key is present.
    Exists,
    /// `!k`: the key is absent.
    DoesNotExist,
    /// `k=v` or `k==v`: the key is present with this value.
    Equals(String),
    /// `k!=v`: the key is absent or has another value.
    NotEquals(String),
    /// `k in (a,b)`: the key is present with one of these values (never empty after parsing).
    In(BTreeSet<String>),
    /// `k notin (a,b)`: the key is absent or has none of these values.
    NotIn(BTreeSet<String>),
    /// `k<n`, `k<=n`, `k>n`, `k>=n`: the value is a number and compares so with `n`.
    Compare(Comparison, Number),
}

/// A numeric comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

/// A finite numeric literal, kept as written (`16e9`, `1.5`, `-3`) so that selectors compare
/// exactly; it is converted when a selector is matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(pub(super) String);

impl Selector {
    /// The empty selector, which selects every node.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether this selector has no requirements and so selects every node.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in the order written.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl FromIterator<Requirement> for Selector {
    fn from_iter<I: IntoIterator<Item = Requirement>>(iter: I) -> Self {
        Self {
            requirements: iter.into_iter().collect(),
        }
    }
}

impl fmt::Display for Selector {
    /// The canonical form: requirements joined by `,` without spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl Requirement {
    /// The operator, whichever kind of key it applies to.
    pub fn op(&self) -> &Operator {
        match self {
            Requirement::Label { op, .. } | Requirement::Fact { op, .. } => op,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.op();
        if *op == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        match self {
            Requirement::Label { key, .. } => f.write_str(key)?,
            Requirement::Fact { path, .. } => write!(f, "{FACTS_PREFIX}{}", path.join("."))?,
        }
        match op {
            Operator::Exists | Operator::DoesNotExist => Ok(()),
            Operator::Equals(value) => write!(f, "={value}"),
            Operator::NotEquals(value) => write!(f, "!={value}"),
            Operator::In(values) => write!(f, " in ({})", join(values)),
            Operator::NotIn(values) => write!(f, " notin ({})", join(values)),
            Operator::Compare(comparison, number) => write!(f, "{comparison}{number}"),
        }
    }
}

fn join(values: &BTreeSet<String>) -> String {
    values
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        })
    }
}

impl Number {
    /// Accepts a literal of the grammar's `number` rule whose value is finite.
    pub fn new(literal: &str) -> Option<Self> {
        (is_number_literal(literal) && literal.parse::<f64>().is_ok_and(f64::is_finite))
            .then(|| Self(literal.to_owned()))
    }

    /// The literal as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a float.
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[-] digits [. digits] [(e|E) [+|-] digits]`, nothing else.
pub(super) fn is_number_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}
