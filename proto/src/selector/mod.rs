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

mod ast;
mod matching;
mod parse;

pub use ast::{Comparison, Number, Operator, Requirement, Selector};
pub use matching::lookup;
pub use parse::SelectorError;

/// The longest selector, in bytes, that [`Selector::from_str`] accepts.
pub const MAX_SELECTOR_LEN: usize = 4096;

/// The key prefix that makes a key a path into the fact document.
pub const FACTS_PREFIX: &str = "facts.";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
