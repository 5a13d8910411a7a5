//! Secrets on the node: the node's own age key ([`key`]), which operators encrypt secrets to,
//! SOPS files decrypted with it ([`sops`]), and a task's values taken from them ([`resolve`]). The private key never leaves the data
//! directory; only its recipient is reported.

pub mod key;
pub mod resolve;
pub mod sops;

pub use key::NodeKey;
