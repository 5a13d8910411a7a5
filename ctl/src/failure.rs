//! labctl's exit codes: 0 ok, 1 an operation failed, 2 usage or input error, 3 cannot reach or
//! authenticate to the coordinator. Errors carry a [`Failure`] so `main` can pick the code.

use tonic::{Code, Status};

/// A labctl failure with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The coordinator refused or the operation failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Bad arguments, config or input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Cannot reach or authenticate to the coordinator (exit 3).
    #[error("{0}")]
    Unreachable(String),
    /// Ctrl-C stopped a command that was following a job (exit 130, 128 + SIGINT); the message
    /// (possibly empty) is printed without an "error:" prefix.
    #[error("{0}")]
    Interrupted(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Failed(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
            Failure::Interrupted(_) => 130,
        }
    }
}

/// Maps a gRPC status from the coordinator to a failure.
pub fn from_status(status: Status) -> Failure {
    let msg = status.message().to_owned();
    if let Some(transport) = std::error::Error::source(&status) {
        // The connection itself failed (with TLS 1.3, a refused client certificate shows up
        // here, on the first call).
        let mut chain = vec![transport.to_string()];
        let mut next = transport.source();
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        return Failure::Unreachable(format!(
            "connection to the coordinator failed: {}; check that this context's certificate was issued by this coordinator and is not revoked",
            chain.join(": ")
        ));
    }
    match status.code() {
        Code::Unavailable | Code::Unauthenticated => Failure::Unreachable(msg),
        Code::Cancelled => {
            Failure::Unreachable(format!("the coordinator closed the connection: {msg}"))
        }
        Code::InvalidArgument => Failure::Usage(msg),
        _ => Failure::Failed(msg),
    }
}

/// The interruption carried by `err`, if Ctrl-C caused it.
pub fn interrupted(err: &anyhow::Error) -> Option<&str> {
    err.chain().find_map(|e| match e.downcast_ref::<Failure>() {
        Some(Failure::Interrupted(m)) => Some(m.as_str()),
        _ => None,
    })
}

/// Exit code when stdout was closed by its reader (`labctl jobs | head -1`): 141, 128 + SIGPIPE,
/// as for a tool the signal ended, so `set -o pipefail` scripts still see the output was cut.
pub const CLOSED_PIPE: u8 = 141;

/// Whether `err` is a write to a closed pipe; labctl then ends quietly with [`CLOSED_PIPE`].
pub fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit code for any error labctl returns.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if closed_pipe(err) {
        return CLOSED_PIPE;
    }
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map(Failure::exit_code)
        .unwrap_or(1)
}
