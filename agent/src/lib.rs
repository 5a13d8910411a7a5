//! lab-agent: the small program on every managed machine. It enrolls once, then keeps one mTLS
//! session to the coordinator, reports facts, and runs the tasks it is given ([`tasks`]).
//!
//! `main.rs` only parses arguments; the commands are [`enroll::enroll`], [`session::run`] and
//! [`facts::collect`]. `labctl dev` embeds the same functions.

pub mod accounts;
pub use lab_proto::backoff;
pub mod backup;
pub mod config;
pub mod containers;
pub mod datadir;
pub mod enroll;
pub mod error;
pub mod facts;
pub mod process;
pub mod renewal;
pub mod resources;
pub mod safepath;
pub mod secrets;
pub mod session;
pub mod tasks;

pub use datadir::AgentDir;
pub use error::AgentError;
