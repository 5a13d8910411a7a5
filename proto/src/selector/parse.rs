//! Parsing a selector: a hand-written recursive-descent parser over bytes, and the errors it
//! reports (with the byte position and a caret line).

use std::collections::BTreeSet;
use std::str::FromStr;

use super::ast::is_number_literal;
use super::{Comparison, Number, Operator, Requirement, Selector, FACTS_PREFIX, MAX_SELECTOR_LEN};

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

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong { len: s.len() });
        }
        Parser { src: s, pos: 0 }.selector()
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
