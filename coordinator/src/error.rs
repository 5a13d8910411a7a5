//! The one mapping from coordinator errors to gRPC status codes.

use std::collections::BTreeMap;

use lab_proto::selector::SelectorError;
use tonic::Status;

use crate::ca::CaError;
use crate::store::{StoreError, TokenError};

/// What an RPC handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the message says which field.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow it (revoked node, already enrolled, wrong CA).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller repeated something too often (failed enrollments, renewals); the message says
    /// when to try again.
    #[error("{0}")]
    RateLimited(String),
    /// Certificate issuance failed or the CSR was bad.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SelectorError> for ApiError {
    /// A selector the caller wrote is wrong: the message, with the caret line under the
    /// offending part for a syntax error.
    fn from(e: SelectorError) -> Self {
        ApiError::InvalidArgument(match &e {
            SelectorError::Syntax { .. } => format!("{e}\n{}", e.caret()),
            _ => e.to_string(),
        })
    }
}

/// Checks labels from a token or an operator (see [`lab_proto::labels::validate`]: reserved
/// keys such as `node` are refused).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    lab_proto::labels::validate(labels).map_err(|e| ApiError::InvalidArgument(e.to_string()))
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::InvalidArgument(m) => Status::invalid_argument(m),
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
            ApiError::RateLimited(m) => Status::resource_exhausted(m),
            ApiError::Ca(e @ (CaError::BadCsr(_) | CaError::IdentityMismatch { .. })) => {
                Status::invalid_argument(e.to_string())
            }
            ApiError::Ca(e) => {
                tracing::error!(error = %e, "certificate issuance failed");
                Status::internal(format!("certificate issuance failed: {e}"))
            }
            ApiError::Store(StoreError::Token(t)) => match t {
                TokenError::Unknown => Status::permission_denied(t.to_string()),
                TokenError::Expired | TokenError::AlreadyUsed(_) | TokenError::Revoked => {
                    Status::failed_precondition(t.to_string())
                }
            },
            ApiError::Store(StoreError::Exists(what)) => {
                Status::already_exists(format!("{what} already exists"))
            }
            ApiError::Store(e @ (StoreError::LowSpace { .. } | StoreError::Failed { .. })) => {
                Status::resource_exhausted(e.to_string())
            }
            ApiError::Store(e @ StoreError::Etcd(_)) => {
                tracing::error!(error = %e, "store failure");
                Status::unavailable(e.to_string())
            }
            ApiError::Store(StoreError::Sled(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::StorageFull =>
            {
                tracing::error!(error = %e, "store write failed: disk full");
                Status::resource_exhausted(
                    "the coordinator's disk is full and the change was not stored; free space in its data directory; the coordinator restarts by itself once there is room",
                )
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                Status::internal("coordinator store failure; see the coordinator log")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_failures_reach_peers_without_their_details() {
        let e = StoreError::NewerVersion {
            tree: "facts",
            found: 9,
        };
        let status = Status::from(ApiError::from(e));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(
            status.message(),
            "coordinator store failure; see the coordinator log"
        );
    }
}
