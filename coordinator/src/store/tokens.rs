//! Enrollment tokens in the store: created hashed, consumed at most once, atomically.

use lab_proto::store::v1::TokenRecord;
use prost::Message;

use super::kv::TreeId;
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
    /// Revoked by an operator.
    #[error("enrollment token was revoked; create a new one with 'labctl token create'")]
    Revoked,
    /// Already consumed.
    #[error("enrollment token was already used (by node '{0}'); tokens are one-time, create a new one with 'labctl token create'")]
    AlreadyUsed(String),
}

impl Store {
    /// Stores a new token record.
    pub async fn put_token(&self, mut rec: TokenRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        Self::put(
            t,
            TreeId::Tokens,
            rec.token_id.as_bytes(),
            rec.encode_to_vec(),
        )?;
        self.flush().await
    }

    /// All tokens.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let t = self.t()?;
        Self::list(t, TreeId::Tokens)
    }

    /// The token `token_id` if `secret_sha256` is its secret and it is unused and unexpired;
    /// changes nothing. Every failure before the secret matched is the same
    /// [`TokenError::Unknown`], so a caller without the secret learns nothing about the token.
    pub fn usable_token(
        &self,
        token_id: &str,
        secret_sha256: &[u8; 32],
        now_unix_ms: i64,
    ) -> Result<TokenRecord, StoreError> {
        let t = self.t()?;
        let Some(current) = t.get(TreeId::Tokens, token_id.as_bytes())? else {
            return Err(TokenError::Unknown.into());
        };
        let rec: TokenRecord = decode("tokens", &current)?;
        check_usable(&rec, secret_sha256, now_unix_ms)?;
        Ok(rec)
    }

    /// Marks an unused token revoked at `now_unix_ms`; `Ok(None)` when there is no such token.
    /// A token already used (or revoked) is returned unchanged.
    pub async fn revoke_token(
        &self,
        token_id: &str,
        now_unix_ms: i64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.change_token(token_id, |rec| {
            if rec.used_unix_ms != 0 || rec.revoked_unix_ms != 0 {
                return Ok(false);
            }
            rec.revoked_unix_ms = now_unix_ms;
            Ok(true)
        })
        .await
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
        let used = self.change_token(token_id, |rec| {
            check_usable(rec, secret_sha256, now_unix_ms)?;
            rec.used_unix_ms = now_unix_ms;
            rec.used_by = node.to_owned();
            Ok(true)
        });
        used.await?.ok_or_else(|| TokenError::Unknown.into())
    }

    /// Applies `change` to the token's record atomically (compare and swap, retried when another
    /// caller changed it in between) and flushes; `change` returns whether to write. `Ok(None)`
    /// when there is no such token.
    async fn change_token(
        &self,
        token_id: &str,
        mut change: impl FnMut(&mut TokenRecord) -> Result<bool, TokenError>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let t = self.w()?;
        loop {
            let Some(current) = t.get(TreeId::Tokens, token_id.as_bytes())? else {
                return Ok(None);
            };
            let mut rec: TokenRecord = decode("tokens", &current)?;
            if !change(&mut rec)? {
                return Ok(Some(rec));
            }
            let swapped = t.compare_and_swap(
                TreeId::Tokens,
                token_id.as_bytes(),
                Some(&current),
                Some(rec.encode_to_vec()),
            )?;
            if swapped {
                self.flush().await?;
                return Ok(Some(rec));
            }
            // Another caller changed the record between our read and write: look again.
        }
    }
}

/// Whether `rec` may enroll a node now with the secret whose hash is `secret_sha256`.
fn check_usable(
    rec: &TokenRecord,
    secret_sha256: &[u8; 32],
    now_unix_ms: i64,
) -> Result<(), TokenError> {
    if rec.secret_sha256.as_slice() != secret_sha256.as_slice() {
        return Err(TokenError::Unknown);
    }
    if rec.revoked_unix_ms != 0 {
        return Err(TokenError::Revoked);
    }
    if rec.used_unix_ms != 0 {
        return Err(TokenError::AlreadyUsed(rec.used_by.clone()));
    }
    if now_unix_ms >= rec.expires_unix_ms {
        return Err(TokenError::Expired);
    }
    Ok(())
}
