//! Enrollment tokens in the store: created hashed, consumed at most once, atomically.

use lab_proto::store::v1::TokenRecord;
use prost::Message;

use super::{decode, Store, StoreError, RECORD_VERSION};

/// Why a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No such token id, or the secret does not match.
    #[error("enrollment token is unknown or its secret is wrong; create a new one with 'labctl token create'")]
    Unknown,
    /// Past its expiry.
    #[error("enrollment token expired; create a new one with 'labctl token create'")]
    Expired,
    /// Already consumed.
    #[error("enrollment token was already used (by node '{0}'); tokens are one-time, create a new one with 'labctl token create'")]
    AlreadyUsed(String),
}

impl Store {
    /// Stores a new token record.
    pub async fn put_token(&self, mut rec: TokenRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        t.tokens
            .insert(rec.token_id.as_bytes(), rec.encode_to_vec())?;
        self.flush().await
    }

    /// All tokens.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let t = self.t()?;
        Self::list(&t.tokens, "tokens")
    }

    /// Checks the token and marks it used by `node`, in one atomic step; of many concurrent
    /// callers with the same token exactly one succeeds. Flushed before it returns.
    pub async fn consume_token(
        &self,
        token_id: &str,
        secret_sha256: &[u8; 32],
        now_unix_ms: i64,
        node: &str,
    ) -> Result<TokenRecord, StoreError> {
        let t = self.w()?;
        loop {
            let Some(current) = t.tokens.get(token_id.as_bytes())? else {
                return Err(TokenError::Unknown.into());
            };
            let mut rec: TokenRecord = decode("tokens", &current)?;
            if rec.secret_sha256.as_slice() != secret_sha256.as_slice() {
                return Err(TokenError::Unknown.into());
            }
            if rec.used_unix_ms != 0 {
                return Err(TokenError::AlreadyUsed(rec.used_by).into());
            }
            if now_unix_ms >= rec.expires_unix_ms {
                return Err(TokenError::Expired.into());
            }
            rec.used_unix_ms = now_unix_ms;
            rec.used_by = node.to_owned();
            let swapped = t.tokens.compare_and_swap(
                token_id.as_bytes(),
                Some(current),
                Some(rec.encode_to_vec()),
            )?;
            if swapped.is_ok() {
                self.flush().await?;
                return Ok(rec);
            }
            // Another caller changed the record between our read and write: look again.
        }
    }
}
