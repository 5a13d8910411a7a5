//! Running programs for tasks, config resources and backups, one way: a program is an
//! [`ExecSpec`]; [`exec`] spawns it without a shell in its own process group, streams its
//! output and stops the group on timeout or cancel; [`FinalState`], [`Outcome`] and [`Ran`]
//! (with the tail of its output) say how it ended. A leaf: it knows nothing of the journal, resources, backups or the coordinator.

pub mod exec;
mod model;
mod ran;

pub use model::{ExecSpec, FinalState, Outcome};
pub use ran::{capture, Ran, CAPTURE_MAX};

/// `errno` text of an I/O error, without Rust's " (os error N)" suffix.
pub fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}
