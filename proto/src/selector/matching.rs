//! Matching a selector against a node's labels and fact document.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

use super::{Comparison, Number, Operator, Requirement, Selector};

impl Selector {
    /// Whether a node satisfies every requirement.
    ///
    /// `labels` are the node's labels (including derived ones like `os` and `arch`); `facts` is
    /// its fact document, [`Value::Null`] when unknown (then every fact path is absent).
    pub fn matches(&self, labels: &BTreeMap<String, String>, facts: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(labels, facts))
    }
}

impl Requirement {
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

impl Number {
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

/// The value at fact `path` (a [`Requirement::Fact`] path) of a fact document, where a segment
/// of digits also indexes an array; `null` counts as absent. Selection and every other reader of
/// fact paths (labctl's inventory) look facts up through this one function.
pub fn lookup<'a>(facts: &'a Value, path: &[String]) -> Option<&'a Value> {
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
