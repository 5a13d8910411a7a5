//! Node selectors: the one grammar every labctl command and the coordinator use to pick nodes.
//!
//! The syntax is Kubernetes' label-selector syntax plus numeric comparisons on fact paths:
//!
//! ```text
//! selector    = [ requirement *( "," requirement ) ]   ; empty: every node
//! requirement = key                                     ; the key exists
//!             / "!" key                                 ; the key does not exist
//!             / key ( "=" / "==" / "!=" ) [ value ]     ; the value may be empty
//!             / key ( "in" / "notin" ) "(" value *( "," value ) ")"
//!             / fact-path ( "<" / "<=" / ">" / ">=" ) number
//! key         = fact-path / label-key
//! fact-path   = "facts." segment *( "." segment )       ; a path into the fact document
//! label-key   = 1*( ALPHA / DIGIT / "-" / "_" / "." / "/" )
//! segment     = 1*( ALPHA / DIGIT / "-" / "_" / "/" )   ; digits also index an array
//! value       = 1*( ALPHA / DIGIT / "-" / "_" / "." / "/" / ":" / "+" )
//! number      = [ "-" ] 1*DIGIT [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "+" / "-" ] 1*DIGIT ]
//! ```
//!
//! Whitespace is allowed around every token; `in` and `notin` need some before them. All
//! requirements must hold. As in Kubernetes, `k!=v` and `k notin (...)` also hold when `k` is
//! absent. On a fact path, a JSON `null` counts as absent; `=`, `!=`, `in` and `notin` compare
//! strings, except that a number fact equals a numeric literal numerically (`facts.cpus=4` holds
//! for `4` and `4.0`) and a boolean fact compares as `true` or `false`. `<`, `<=`, `>` and `>=`
//! hold only for a number fact or a string fact that is itself a number literal (os-release's
//! `VERSION_ID` is a string), and never on labels.
//!
//! This module is pure: it parses and matches, and knows nothing of the store, the network or
//! where labels and facts come from.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// The longest selector, in bytes, that [`Selector::from_str`] accepts.
pub const MAX_SELECTOR_LEN: usize = 4096;

/// The key prefix that makes a key a path into the fact document.
pub const FACTS_PREFIX: &str = "facts.";

/// A parsed selector: requirements that must all hold. The empty selector selects every node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
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
pub struct Number(String);

/// Why a string is not a selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector is longer than [`MAX_SELECTOR_LEN`] bytes.
    #[error(
        "selector is {len} bytes long; the limit is {MAX_SELECTOR_LEN} bytes, so use fewer \
         requirements or a label that groups the nodes"
    )]
    TooLong {
        /// Length of the rejected selector, in bytes.
        len: usize,
    },
    /// The selector does not follow the grammar.
    #[error(
        "selector {selector:?}: {message} at position {position} ({near})",
        near = near(.selector, *.position)
    )]
    Syntax {
        /// The selector as given.
        selector: String,
        /// Byte offset of the offending part.
        position: usize,
        /// What was expected there.
        message: String,
    },
}

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

    /// Whether a node satisfies every requirement.
    ///
    /// `labels` are the node's labels (including derived ones like `os` and `arch`); `facts` is
    /// its fact document, [`Value::Null`] when unknown (then every fact path is absent).
    pub fn matches(&self, labels: &BTreeMap<String, String>, facts: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(labels, facts))
    }
}

impl FromIterator<Requirement> for Selector {
    fn from_iter<I: IntoIterator<Item = Requirement>>(iter: I) -> Self {
        Self {
            requirements: iter.into_iter().collect(),
        }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong { len: s.len() });
        }
        Parser { src: s, pos: 0 }.selector()
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

    /// Whether a node with these labels and facts satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>, facts: &Value) -> bool {
        match self {
            Requirement::Label { key, op } => {
                op.holds(labels.get(key).map(|v| Subject::Label(v.as_str())))
            }
            Requirement::Fact { path, op } => op.holds(lookup(facts, path).map(Subject::Fact)),
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

impl Operator {
    fn holds(&self, subject: Option<Subject<'_>>) -> bool {
        let equals = |value: &str| subject.as_ref().is_some_and(|s| s.equals(value));
        match self {
            Operator::Exists => subject.is_some(),
            Operator::DoesNotExist => subject.is_none(),
            Operator::Equals(value) => equals(value),
            Operator::NotEquals(value) => !equals(value),
            Operator::In(values) => values.iter().any(|v| equals(v)),
            Operator::NotIn(values) => !values.iter().any(|v| equals(v)),
            Operator::Compare(comparison, number) => subject
                .and_then(|s| s.compare(number))
                .is_some_and(|ordering| comparison.accepts(ordering)),
        }
    }
}

impl Comparison {
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Less => ordering == Ordering::Less,
            Comparison::LessOrEqual => ordering != Ordering::Greater,
            Comparison::Greater => ordering == Ordering::Greater,
            Comparison::GreaterOrEqual => ordering != Ordering::Less,
        }
    }
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

    /// The value as an integer, when written without a fraction or exponent and it fits.
    fn to_integer(&self) -> Option<i128> {
        self.0.parse().ok()
    }

    fn cmp_number(&self, other: &Number) -> Option<Ordering> {
        match (self.to_integer(), other.to_integer()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => self.to_f64().partial_cmp(&other.to_f64()),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[-] digits [. digits] [(e|E) [+|-] digits]`, nothing else.
fn is_number_literal(s: &str) -> bool {
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

/// The value a requirement looks at, once found.
enum Subject<'a> {
    Label(&'a str),
    Fact(&'a Value),
}

impl Subject<'_> {
    fn equals(&self, literal: &str) -> bool {
        match self {
            Subject::Label(value) => *value == literal,
            Subject::Fact(Value::String(value)) => value == literal,
            Subject::Fact(Value::Bool(value)) => literal == if *value { "true" } else { "false" },
            Subject::Fact(Value::Number(value)) => Number::new(literal)
                .and_then(|literal| cmp_json_number(value, &literal))
                .is_some_and(Ordering::is_eq),
            Subject::Fact(_) => false,
        }
    }

    fn compare(&self, number: &Number) -> Option<Ordering> {
        match self {
            Subject::Fact(Value::Number(value)) => cmp_json_number(value, number),
            Subject::Fact(Value::String(value)) => Number::new(value)?.cmp_number(number),
            Subject::Label(_) | Subject::Fact(_) => None,
        }
    }
}

/// Compares exactly when both are integers, as floats otherwise.
fn cmp_json_number(value: &serde_json::Number, number: &Number) -> Option<Ordering> {
    if let Some(literal) = number.to_integer() {
        if let Some(v) = value.as_i64() {
            return Some(i128::from(v).cmp(&literal));
        }
        if let Some(v) = value.as_u64() {
            return Some(i128::from(v).cmp(&literal));
        }
    }
    value.as_f64()?.partial_cmp(&number.to_f64())
}

/// The value at `path`, where a segment of digits also indexes an array; `null` counts as absent.
fn lookup<'a>(facts: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut value = facts;
    for segment in path {
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!value.is_null()).then_some(value)
}

impl SelectorError {
    /// Byte offset of the offending part ([`MAX_SELECTOR_LEN`] for a selector that is too long).
    pub fn position(&self) -> usize {
        match self {
            SelectorError::TooLong { .. } => MAX_SELECTOR_LEN,
            SelectorError::Syntax { position, .. } => *position,
        }
    }

    /// Two lines for a terminal: the selector, and a caret under the offending part.
    pub fn caret(&self) -> String {
        match self {
            SelectorError::TooLong { .. } => self.to_string(),
            SelectorError::Syntax {
                selector, position, ..
            } => {
                let shown: String = selector
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                let column = selector.get(..*position).map_or(0, |s| s.chars().count());
                format!("{shown}\n{}^", " ".repeat(column))
            }
        }
    }
}

/// What sits at `position`, for error messages.
fn near(selector: &str, position: usize) -> String {
    const SNIPPET_CHARS: usize = 12;
    match selector.get(position..) {
        Some(rest) if !rest.is_empty() => {
            let snippet: String = rest.chars().take(SNIPPET_CHARS).collect();
            let more = if snippet.len() < rest.len() {
                "…"
            } else {
                ""
            };
            format!("near {snippet:?}{more}")
        }
        _ => "the end of the selector".to_owned(),
    }
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')
}

fn is_value_char(b: u8) -> bool {
    is_key_char(b) || matches!(b, b':' | b'+')
}

const OPERATORS: &str = "=, ==, !=, in, notin, <, <=, >, >=";

/// A key before its operator is known.
enum Key {
    Label(String),
    Fact(Vec<String>),
}

impl Key {
    fn with(self, op: Operator) -> Requirement {
        match self {
            Key::Label(key) => Requirement::Label { key, op },
            Key::Fact(path) => Requirement::Fact { path, op },
        }
    }
}

/// A hand-written recursive-descent parser over bytes. It only ever steps over ASCII bytes, so
/// `pos` is always a char boundary; anything else is reported where it starts.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn peek_next(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos + 1).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, accept: fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(accept) {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    fn error<T>(&self, position: usize, message: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError::Syntax {
            selector: self.src.to_owned(),
            position,
            message: message.into(),
        })
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(Selector::everything());
        }
        loop {
            self.skip_ws();
            requirements.push(self.requirement()?);
            self.skip_ws();
            match self.peek() {
                None => return Ok(Selector { requirements }),
                Some(b',') => self.pos += 1,
                Some(_) => return self.error(self.pos, "expected ',' or the end of the selector"),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        if self.peek() == Some(b'!') {
            self.pos += 1;
            self.skip_ws();
            let key = self.key("expected a key after '!'")?;
            self.skip_ws();
            if self.peek().is_some_and(|b| b != b',') {
                return self.error(
                    self.pos,
                    "'!key' takes no operator; write 'key!=value' or 'key notin (values)'",
                );
            }
            return Ok(key.with(Operator::DoesNotExist));
        }
        let key = self.key("expected a requirement (a key, '!key' or a fact path)")?;
        self.skip_ws();
        let op_start = self.pos;
        let op = match (self.peek(), self.peek_next()) {
            (None | Some(b','), _) => Operator::Exists,
            (Some(b'='), second) => {
                self.pos += if second == Some(b'=') { 2 } else { 1 };
                Operator::Equals(self.value(true)?)
            }
            (Some(b'!'), Some(b'=')) => {
                self.pos += 2;
                Operator::NotEquals(self.value(true)?)
            }
            (Some(b'!'), _) => return self.error(op_start, "expected '!=' after the key"),
            (Some(first @ (b'<' | b'>')), second) => {
                let or_equal = second == Some(b'=');
                self.pos += if or_equal { 2 } else { 1 };
                let comparison = match (first, or_equal) {
                    (b'<', false) => Comparison::Less,
                    (b'<', true) => Comparison::LessOrEqual,
                    (_, false) => Comparison::Greater,
                    (_, true) => Comparison::GreaterOrEqual,
                };
                if let Key::Label(label) = &key {
                    return self.error(
                        op_start,
                        format!(
                            "'{comparison}' compares numbers and works only on fact paths such \
                             as facts.platform.cpus; label {label:?} takes =, ==, !=, in or notin"
                        ),
                    );
                }
                Operator::Compare(comparison, self.number()?)
            }
            (Some(b'('), _) => return self.error(op_start, "expected 'in' or 'notin' before '('"),
            (Some(b), _) if is_key_char(b) => match self.take_while(is_key_char) {
                "in" => Operator::In(self.list("in")?),
                "notin" => Operator::NotIn(self.list("notin")?),
                _ => {
                    return self.error(
                        op_start,
                        format!("expected an operator ({OPERATORS}) or ',' after the key"),
                    )
                }
            },
            (Some(_), _) => {
                return self.error(
                    op_start,
                    format!("expected an operator ({OPERATORS}) or ',' after the key"),
                )
            }
        };
        Ok(key.with(op))
    }

    fn key(&mut self, missing: &str) -> Result<Key, SelectorError> {
        let start = self.pos;
        let text = self.take_while(is_key_char);
        if text.is_empty() {
            return self.error(start, missing);
        }
        let Some(rest) = text.strip_prefix(FACTS_PREFIX) else {
            return Ok(Key::Label(text.to_owned()));
        };
        let mut path = Vec::new();
        let mut offset = start + FACTS_PREFIX.len();
        for segment in rest.split('.') {
            if segment.is_empty() {
                let message = if rest.is_empty() {
                    "expected a fact path after 'facts.', such as facts.platform.os"
                } else {
                    "empty segment in fact path"
                };
                return self.error(offset, message);
            }
            path.push(segment.to_owned());
            offset += segment.len() + 1;
        }
        Ok(Key::Fact(path))
    }

    /// A value, after optional whitespace. An empty one must be followed by ',' or the end.
    fn value(&mut self, allow_empty: bool) -> Result<String, SelectorError> {
        self.skip_ws();
        let value = self.take_while(is_value_char);
        if value.is_empty() && !(allow_empty && matches!(self.peek(), None | Some(b','))) {
            return self.error(
                self.pos,
                "expected a value (letters, digits and - _ . / : +)",
            );
        }
        Ok(value.to_owned())
    }

    /// `( value, ... )` after `in` or `notin`.
    fn list(&mut self, word: &str) -> Result<BTreeSet<String>, SelectorError> {
        self.skip_ws();
        if self.peek() != Some(b'(') {
            return self.error(self.pos, format!("expected '(' after '{word}'"));
        }
        self.pos += 1;
        let mut values = BTreeSet::new();
        loop {
            values.insert(self.value(false)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(values);
                }
                None => return self.error(self.pos, "expected ',' or ')' to close the list"),
                Some(_) => return self.error(self.pos, "expected ',' or ')' in the list"),
            }
        }
    }

    fn number(&mut self) -> Result<Number, SelectorError> {
        self.skip_ws();
        let start = self.pos;
        let text = self.take_while(is_value_char);
        if let Some(number) = Number::new(text) {
            return Ok(number);
        }
        if is_number_literal(text) {
            return self.error(start, format!("number {text:?} is out of range"));
        }
        self.error(start, "expected a number such as 16e9, 1.5 or -3")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
