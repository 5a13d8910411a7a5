//! Operators' lifecycle: users with short-lived certificates (30 days unless asked otherwise),
//! renewal from a still-valid certificate, and revocation, deletion and role changes that take
//! effect at once: every later call is checked against the store by `auth`, and the user's open
//! streams (`WatchJob`) end within a second through [`Operators::guard_stream`].
//!
//! Invariant: the coordinator always keeps one unrevoked admin; changes to users are serialized
//! so that check and change are one step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab_proto::identity::UserName;
use lab_proto::limits::{DEFAULT_OPERATOR_CERT_TTL, MAX_OPERATOR_CERT_TTL};
use lab_proto::store::v1::UserRecord;
use lab_proto::v1::{
    CreateUserRequest, CreateUserResponse, RenewUserRequest, RenewUserResponse, User,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::auth::Role;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::state::Coordinator;

/// Shortest certificate lifetime an operator may ask for.
const MIN_OPERATOR_CERT_TTL: Duration = Duration::from_secs(60);

/// The open streams of one user: cancelled (and forgotten) when their access changes.
#[derive(Debug, Default)]
struct UserStreams {
    cancel: CancellationToken,
    /// One clone per open stream.
    open: Arc<()>,
}

/// The in-memory part of the operators: the lock serializing user changes and the registry of
/// open streams per user.
#[derive(Debug, Default)]
pub struct Operators {
    lock: tokio::sync::Mutex<()>,
    streams: Mutex<HashMap<String, UserStreams>>,
}

impl Operators {
    /// Relays `rx` (a stream for `user`) until it ends, its receiver goes away, shutdown, or the
    /// user's access changes; then the client gets one `unauthenticated` status saying why.
    pub fn guard_stream<T: Send + 'static>(
        &self,
        coord: &Coordinator,
        user: &str,
        mut rx: mpsc::Receiver<Result<T, Status>>,
    ) -> mpsc::Receiver<Result<T, Status>> {
        let (cancel, held) = {
            let mut map = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            let entry = map.entry(user.to_owned()).or_default();
            (entry.cancel.clone(), entry.open.clone())
        };
        let (tx, out) = mpsc::channel(1);
        let shutdown = coord.shutdown.clone();
        let user = user.to_owned();
        coord.tasks.spawn(async move {
            let _held = held;
            loop {
                let item = tokio::select! {
                    () = cancel.cancelled() => {
                        let _ = tx.send(Err(Status::unauthenticated(format!(
                            "access of user '{user}' changed (revoked, deleted or given another role); call again with a valid certificate"
                        )))).await;
                        return;
                    }
                    () = shutdown.cancelled() => return,
                    () = tx.closed() => return,
                    item = rx.recv() => item,
                };
                match item {
                    Some(item) => {
                        if tx.send(item).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                }
            }
        });
        out
    }

    /// Ends every open stream of `user`; returns how many there were.
    fn end_streams(&self, user: &str) -> u32 {
        let removed = self
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(user);
        match removed {
            None => 0,
            Some(s) => {
                s.cancel.cancel();
                u32::try_from(Arc::strong_count(&s.open) - 1).unwrap_or(u32::MAX)
            }
        }
    }
}

/// The wire view of a user.
pub fn user_view(rec: UserRecord) -> User {
    User {
        name: rec.name,
        role: rec.role,
        created_unix_ms: rec.created_unix_ms,
        revoked_unix_ms: rec.revoked_unix_ms,
        cert_not_after_unix_ms: rec.cert_not_after_unix_ms,
    }
}

fn cert_ttl(seconds: u64) -> Result<Duration, ApiError> {
    let ttl = match seconds {
        0 => DEFAULT_OPERATOR_CERT_TTL,
        s => Duration::from_secs(s),
    };
    if !(MIN_OPERATOR_CERT_TTL..=MAX_OPERATOR_CERT_TTL).contains(&ttl) {
        return Err(ApiError::InvalidArgument(format!(
            "certificate lifetime {}s is outside {}s..{}s; pick a --ttl like 30d",
            ttl.as_secs(),
            MIN_OPERATOR_CERT_TTL.as_secs(),
            MAX_OPERATOR_CERT_TTL.as_secs()
        )));
    }
    Ok(ttl)
}

fn parse_user(name: &str) -> Result<UserName, ApiError> {
    name.parse()
        .map_err(|e: lab_proto::identity::IdentityError| ApiError::InvalidArgument(e.to_string()))
}

fn existing(coord: &Coordinator, name: &str) -> Result<UserRecord, ApiError> {
    let user = parse_user(name)?;
    coord.store.user(user.as_str())?.ok_or_else(|| {
        ApiError::NotFound(format!("no user named '{user}'; see 'labctl user list'"))
    })
}

fn is_active_admin(rec: &UserRecord) -> bool {
    rec.revoked_unix_ms == 0 && Role::from_proto(rec.role) == Some(Role::Admin)
}

/// Refuses a change that would leave no unrevoked admin besides `rec`.
fn keep_an_admin(coord: &Coordinator, rec: &UserRecord, change: &str) -> Result<(), ApiError> {
    if !is_active_admin(rec) {
        return Ok(());
    }
    let others = coord
        .store
        .users()?
        .iter()
        .filter(|u| u.name != rec.name && is_active_admin(u))
        .count();
    if others == 0 {
        return Err(ApiError::FailedPrecondition(format!(
            "cannot {change} '{}': it is the last admin; make another user admin first ('labctl user set-role NAME admin')",
            rec.name
        )));
    }
    Ok(())
}

/// `CreateUser`: a new user and a certificate for the key in the CSR.
pub async fn create(
    coord: &Coordinator,
    req: CreateUserRequest,
) -> Result<CreateUserResponse, ApiError> {
    let user = parse_user(&req.name)?;
    let role = Role::from_proto(req.role).ok_or_else(|| {
        ApiError::InvalidArgument("role must be viewer, operator or admin".into())
    })?;
    let ttl = cert_ttl(req.ttl_seconds)?;
    let id = coord.operator_id(&user);
    let _guard = coord.operators.lock.lock().await;
    if coord.store.user(user.as_str())?.is_some() {
        return Err(ApiError::Store(crate::store::StoreError::Exists(format!(
            "user '{user}'"
        ))));
    }
    let issued = coord.issue_certificate(&id, &req.csr_pem, ttl).await?;
    coord
        .store
        .create_user(UserRecord {
            name: user.to_string(),
            role: role.to_proto() as i32,
            created_unix_ms: now_ms(),
            cert_not_after_unix_ms: issued.info.not_after_unix_ms,
            ..Default::default()
        })
        .await?;
    tracing::info!(user = %user, role = role.as_str(), "user created");
    Ok(CreateUserResponse {
        certificate_pem: issued.cert_pem,
        ca_pem: coord.ca.cert_pem().to_owned(),
        identity_uri: id.uri(),
    })
}

/// `RenewUser`: a new certificate for the caller, who holds a valid one. Limited like node
/// renewals (a few at once, then one per interval).
pub async fn renew(
    coord: &Coordinator,
    user: &UserName,
    req: RenewUserRequest,
) -> Result<RenewUserResponse, ApiError> {
    let ttl = cert_ttl(req.ttl_seconds)?;
    if let Err(wait) = coord
        .limits
        .renewals
        .take(&format!("operator/{user}"), Instant::now())
    {
        return Err(ApiError::RateLimited(format!(
            "user '{user}' renewed too often; try again in {}s",
            wait.as_secs().max(1)
        )));
    }
    let id = coord.operator_id(user);
    let _guard = coord.operators.lock.lock().await;
    let mut rec = existing(coord, user.as_str())?;
    if rec.revoked_unix_ms != 0 {
        return Err(ApiError::FailedPrecondition(format!(
            "user '{user}' has been revoked"
        )));
    }
    let issued = coord.issue_certificate(&id, &req.csr_pem, ttl).await?;
    rec.cert_not_after_unix_ms = issued.info.not_after_unix_ms;
    coord.store.put_user(rec).await?;
    tracing::info!(user = %user, serial = %issued.info.serial_hex, "operator certificate renewed");
    Ok(RenewUserResponse {
        certificate_pem: issued.cert_pem,
        ca_pem: coord.ca.cert_pem().to_owned(),
        not_after_unix_ms: issued.info.not_after_unix_ms,
    })
}

/// `RevokeUser`: every certificate of the user revoked, open streams ended.
pub async fn revoke(coord: &Coordinator, name: &str, by: &str) -> Result<User, ApiError> {
    let _guard = coord.operators.lock.lock().await;
    let mut rec = existing(coord, name)?;
    keep_an_admin(coord, &rec, "revoke")?;
    let user = parse_user(&rec.name)?;
    let certs = coord
        .store
        .revoke_certificates(&coord.operator_id(&user).uri())
        .await?;
    if rec.revoked_unix_ms == 0 {
        rec.revoked_unix_ms = now_ms();
        coord.store.put_user(rec.clone()).await?;
    }
    let streams = coord.operators.end_streams(&rec.name);
    tracing::warn!(user = %user, by, certificates = certs, streams_closed = streams, "user revoked");
    Ok(user_view(rec))
}

/// `DeleteUser`: the user's certificates revoked and the user removed; returns (certificates
/// revoked, streams ended).
pub async fn delete(coord: &Coordinator, name: &str, by: &str) -> Result<(u32, u32), ApiError> {
    let _guard = coord.operators.lock.lock().await;
    let rec = existing(coord, name)?;
    keep_an_admin(coord, &rec, "delete")?;
    let user = parse_user(&rec.name)?;
    let certs = coord
        .store
        .revoke_certificates(&coord.operator_id(&user).uri())
        .await?;
    coord.store.remove_user(&rec.name).await?;
    let streams = coord.operators.end_streams(&rec.name);
    tracing::warn!(user = %user, by, certificates = certs, streams_closed = streams, "user deleted");
    Ok((certs, streams))
}

/// `SetUserRole`: the new role applies to the user's next call; open streams end.
pub async fn set_role(
    coord: &Coordinator,
    name: &str,
    role: i32,
    by: &str,
) -> Result<User, ApiError> {
    let role = Role::from_proto(role).ok_or_else(|| {
        ApiError::InvalidArgument("role must be viewer, operator or admin".into())
    })?;
    let _guard = coord.operators.lock.lock().await;
    let mut rec = existing(coord, name)?;
    if Role::from_proto(rec.role) == Some(role) {
        return Ok(user_view(rec));
    }
    if role != Role::Admin {
        keep_an_admin(coord, &rec, "demote")?;
    }
    rec.role = role.to_proto() as i32;
    coord.store.put_user(rec.clone()).await?;
    let streams = coord.operators.end_streams(&rec.name);
    tracing::warn!(user = %rec.name, role = role.as_str(), by, streams_closed = streams, "user role changed");
    Ok(user_view(rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_lifetimes_default_to_30_days_and_are_bounded() {
        assert_eq!(cert_ttl(0).unwrap(), DEFAULT_OPERATOR_CERT_TTL);
        assert_eq!(cert_ttl(3600).unwrap(), Duration::from_secs(3600));
        assert!(cert_ttl(1).is_err());
        assert!(cert_ttl(10 * 365 * 24 * 3600).is_err());
    }
}
