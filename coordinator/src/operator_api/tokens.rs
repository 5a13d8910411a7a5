//! Enrollment tokens on the operator API: creating one (its TTL, node name and labels checked)
//! and the wire view of a stored token, which never carries the secret.

use std::collections::BTreeMap;
use std::time::Duration;

use lab_proto::identity::NodeName;
use lab_proto::limits::{DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL};
use lab_proto::store::v1::TokenRecord;
use lab_proto::token::EnrollToken;
use lab_proto::v1::{CreateTokenRequest, CreateTokenResponse, TokenInfo};

use super::{parse_name, OperatorApi};
use crate::clock::now_ms;
use crate::error::{validate_labels, ApiError};

impl OperatorApi {
    /// Creates and stores an enrollment token for `creator`; returns it (the only time its
    /// secret is shown).
    pub(super) async fn create_token(
        &self,
        creator: String,
        req: CreateTokenRequest,
    ) -> Result<CreateTokenResponse, ApiError> {
        let ttl = match req.ttl_seconds {
            0 => DEFAULT_TOKEN_TTL,
            s => Duration::from_secs(s),
        };
        if ttl > MAX_TOKEN_TTL {
            return Err(ApiError::InvalidArgument(format!(
                "token ttl {}s is longer than the maximum of {}s",
                ttl.as_secs(),
                MAX_TOKEN_TTL.as_secs()
            )));
        }
        if !req.node_name.is_empty() {
            let name: NodeName = parse_name(&req.node_name)?;
            if self.coord.store.node(name.as_str())?.is_some() {
                return Err(ApiError::FailedPrecondition(format!(
                    "node '{name}' is already enrolled; remove it first to enroll it again"
                )));
            }
        }
        let labels: BTreeMap<String, String> = req.labels.into_iter().collect();
        validate_labels(&labels)?;
        let token = EnrollToken {
            id: hex::encode(rand::random::<[u8; 8]>()),
            secret: rand::random(),
            ca_pin: self.coord.ca.pin(),
        };
        let now = now_ms();
        let expires = now + ttl.as_millis() as i64;
        self.coord
            .store
            .put_token(TokenRecord {
                token_id: token.id.clone(),
                secret_sha256: token.secret_sha256().to_vec(),
                created_unix_ms: now,
                expires_unix_ms: expires,
                node_name: req.node_name,
                labels: labels.into_iter().collect(),
                created_by: creator,
                ..Default::default()
            })
            .await?;
        Ok(CreateTokenResponse {
            token: token.to_string(),
            token_id: token.id,
            expires_unix_ms: expires,
        })
    }
}

/// The wire view of a token (never its secret).
pub(super) fn token_info(t: TokenRecord) -> TokenInfo {
    TokenInfo {
        token_id: t.token_id,
        node_name: t.node_name,
        labels: t.labels,
        expires_unix_ms: t.expires_unix_ms,
        used_unix_ms: t.used_unix_ms,
        used_by: t.used_by,
        created_by: t.created_by,
        revoked_unix_ms: t.revoked_unix_ms,
    }
}
