//! Secrets on the node: the node's own age key ([`key`]), which operators encrypt secrets to.
//! The private key never leaves the data directory; only its recipient is reported.

pub mod key;

pub use key::NodeKey;
