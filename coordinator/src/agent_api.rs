//! `AgentService`: bootstrap, enrollment, renewal, and the long-lived `Connect` session.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab_proto::identity::NodeName;
use lab_proto::store::v1::{NodeRecord, TokenRecord};
use lab_proto::token::EnrollToken;
use lab_proto::v1::agent_service_server::AgentService;
use lab_proto::v1::{
    AgentMessage, BootstrapRequest, BootstrapResponse, CoordinatorMessage, EnrollRequest,
    EnrollResponse, RenewRequest, RenewResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::session;
use crate::state::Coordinator;

/// The `AgentService` implementation.
pub struct AgentApi {
    coord: Arc<Coordinator>,
}

impl AgentApi {
    /// Handlers over `coord`.
    pub fn new(coord: Arc<Coordinator>) -> Self {
        AgentApi { coord }
    }

    /// Enrollment from `source`, refused at once while that source (or everyone) has failed too
    /// often; failed token checks are counted, logged and limited.
    async fn enroll(
        &self,
        source: Option<IpAddr>,
        req: EnrollRequest,
    ) -> Result<EnrollResponse, ApiError> {
        let limits = &self.coord.limits;
        let now = Instant::now();
        let limited = match source {
            Some(ip) => limits.failed_enroll_by_source.check(&ip, now),
            None => Ok(()),
        }
        .and_then(|()| limits.failed_enroll_total.check(&(), now));
        if let Err(wait) = limited {
            self.coord.metrics.enrollments_rate_limited.inc();
            tracing::debug!(source = ?source, "enrollment refused: too many failed attempts");
            return Err(too_many_failures(wait));
        }
        let (token, stored) = match self.check_token(&req.token) {
            Ok(t) => t,
            Err(e) => {
                self.enroll_failed(source, &e);
                return Err(e);
            }
        };
        self.enroll_with(token, stored, req).await
    }

    /// Parses the token and checks its secret, expiry and use against the store. Until the
    /// secret matched, every failure is the same, so nothing about other tokens or nodes leaks.
    fn check_token(&self, text: &str) -> Result<(EnrollToken, TokenRecord), ApiError> {
        let token: EnrollToken =
            text.parse()
                .map_err(|e: lab_proto::token::TokenFormatError| {
                    ApiError::InvalidArgument(e.to_string())
                })?;
        if token.ca_pin != self.coord.ca.pin() {
            return Err(ApiError::FailedPrecondition(
                "enrollment token was made for a different coordinator CA; create a token on this coordinator".into(),
            ));
        }
        let stored = self
            .coord
            .store
            .usable_token(&token.id, &token.secret_sha256(), now_ms())?;
        Ok((token, stored))
    }

    /// Counts, logs and rate-limits a failed token check from `source`.
    fn enroll_failed(&self, source: Option<IpAddr>, e: &ApiError) {
        self.coord.metrics.enrollment_failures.inc();
        let now = Instant::now();
        let limits = &self.coord.limits;
        let by_source = source.map(|ip| limits.failed_enroll_by_source.take(&ip, now));
        let total = limits.failed_enroll_total.take(&(), now);
        tracing::warn!(source = ?source, error = %e, "enrollment refused");
        if let Some(Err(wait)) = by_source {
            tracing::warn!(source = ?source, wait_s = wait.as_secs_f64(), "too many failed enrollments from this source; refusing its enrollments for a while");
        }
        if let Err(wait) = total {
            tracing::warn!(wait_s = wait.as_secs_f64(), "too many failed enrollments from all sources; refusing every enrollment for a while");
        }
    }

    /// Enrollment with a token whose secret was checked: the name, then the CSR, then the token
    /// is spent (atomically, so of concurrent users one wins).
    async fn enroll_with(
        &self,
        token: EnrollToken,
        stored: TokenRecord,
        req: EnrollRequest,
    ) -> Result<EnrollResponse, ApiError> {
        self.coord.store.ensure_room()?;
        let _guard = self.coord.enroll_lock.lock().await;
        let name = enroll_name(&stored.node_name, &req.node_name, &req.default_node_name)?;
        if let Some(existing) = self.coord.store.node(name.as_str())? {
            let why = if existing.revoked {
                "was revoked; remove it with 'labctl node remove' before enrolling it again"
            } else {
                "is already enrolled; revoke and remove it first, or choose another name"
            };
            return Err(ApiError::FailedPrecondition(format!("node '{name}' {why}")));
        }
        let id = self.coord.node_id(&name);
        // Check the CSR before the token is spent, so a bad request leaves the token usable.
        let issued = self
            .coord
            .issue_certificate(&id, &req.csr_pem, self.coord.options.node_cert_ttl)
            .await?;
        let used = self
            .coord
            .store
            .consume_token(&token.id, &token.secret_sha256(), now_ms(), name.as_str())
            .await?;
        self.coord
            .store
            .create_node(NodeRecord {
                name: name.to_string(),
                // Token labels were checked when the token was made; a reserved key in an older
                // token would never take effect, so it is not kept.
                labels: used
                    .labels
                    .into_iter()
                    .filter(|(k, _)| !lab_proto::labels::is_reserved(k))
                    .collect(),
                enrolled_unix_ms: now_ms(),
                cert_not_after_unix_ms: issued.info.not_after_unix_ms,
                ..Default::default()
            })
            .await?;
        self.coord.metrics.enrollments.inc();
        tracing::info!(node = %name, token = %token.id, "node enrolled");
        Ok(EnrollResponse {
            node_name: name.to_string(),
            certificate_pem: issued.cert_pem,
            ca_pem: self.coord.ca.cert_pem().to_owned(),
            trust_domain: self.coord.trust_domain.to_string(),
        })
    }

    async fn renew(&self, name: NodeName, req: RenewRequest) -> Result<RenewResponse, ApiError> {
        let renewals = &self.coord.limits.renewals;
        if let Err(wait) = renewals.take(&name.to_string(), Instant::now()) {
            self.coord.metrics.renewals_rate_limited.inc();
            tracing::warn!(node = %name, "certificate renewal refused: renewed too often");
            return Err(ApiError::RateLimited(format!(
                "node '{name}' renewed its certificate too often; try again in {}s",
                wait.as_secs().max(1)
            )));
        }
        let id = self.coord.node_id(&name);
        let issued = self
            .coord
            .issue_certificate(&id, &req.csr_pem, self.coord.options.node_cert_ttl)
            .await?;
        if let Some(mut node) = self.coord.store.node(name.as_str())? {
            node.cert_not_after_unix_ms = issued.info.not_after_unix_ms;
            self.coord.store.put_node(node).await?;
        }
        self.coord.metrics.renewals.inc();
        tracing::info!(node = %name, serial = %issued.info.serial_hex, "certificate renewed");
        Ok(RenewResponse {
            certificate_pem: issued.cert_pem,
            ca_pem: self.coord.ca.cert_pem().to_owned(),
        })
    }
}

/// The name a node enrolls under: a token's bound name wins over the machine's default name;
/// a name asked for explicitly (`--name`) must agree with it.
fn enroll_name(bound: &str, asked: &str, default: &str) -> Result<NodeName, ApiError> {
    let text = match (bound, asked, default) {
        (b, a, _) if !b.is_empty() && !a.is_empty() && a != b => {
            return Err(ApiError::InvalidArgument(format!(
                "token is bound to node name '{b}', but the agent asked for '{a}' with --name; drop --name or use a token for '{a}'"
            )))
        }
        (b, _, _) if !b.is_empty() => b,
        (_, a, _) if !a.is_empty() => a,
        (_, _, d) if !d.is_empty() => d,
        _ => {
            return Err(ApiError::InvalidArgument(
                "no node name: pass --name to 'lab-agent enroll' or bind the token with 'labctl token create --name'".into(),
            ))
        }
    };
    text.parse()
        .map_err(|e: lab_proto::identity::IdentityError| ApiError::InvalidArgument(e.to_string()))
}

/// The refusal while enrollments from a source (or all of them) are limited.
fn too_many_failures(wait: Duration) -> ApiError {
    ApiError::RateLimited(format!(
        "too many failed enrollment attempts; try again in {}s with a valid token from 'labctl token create'",
        wait.as_secs().max(1)
    ))
}

fn node_caller<T>(req: &Request<T>) -> Result<NodeName, Status> {
    match req.extensions().get::<Caller>() {
        Some(Caller::Node { name, .. }) => Ok(name.clone()),
        _ => Err(Status::internal("caller was not resolved to a node")),
    }
}

type CoordinatorStream = Pin<Box<dyn Stream<Item = Result<CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn bootstrap(
        &self,
        _req: Request<BootstrapRequest>,
    ) -> Result<Response<BootstrapResponse>, Status> {
        Ok(Response::new(BootstrapResponse {
            ca_pem: self.coord.ca.cert_pem().to_owned(),
            trust_domain: self.coord.trust_domain.to_string(),
        }))
    }

    async fn enroll(
        &self,
        req: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let source = req.remote_addr().map(|a| a.ip());
        Ok(Response::new(
            AgentApi::enroll(self, source, req.into_inner()).await?,
        ))
    }

    type ConnectStream = CoordinatorStream;

    async fn connect(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let name = node_caller(&req)?;
        // An IPv4 peer of a dual-stack listener shows as ::ffff:a.b.c.d; keep it IPv4.
        let peer = req.remote_addr().map(|a| a.ip().to_canonical());
        let (tx, rx) = crate::sessions::Outbound::channel(session::OUTBOUND_CAPACITY);
        session::start(self.coord.clone(), name, peer, req.into_inner(), tx).await?;
        Ok(Response::new(Box::pin(rx)))
    }

    async fn renew(&self, req: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
        let name = node_caller(&req)?;
        Ok(Response::new(
            AgentApi::renew(self, name, req.into_inner()).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(bound: &str, asked: &str, default: &str) -> Result<String, String> {
        enroll_name(bound, asked, default)
            .map(|n| n.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_bound_name_wins_over_the_hostname() {
        assert_eq!(name("nas", "", "myhost"), Ok("nas".into()));
        assert_eq!(name("nas", "nas", "myhost"), Ok("nas".into()));
    }

    #[test]
    fn an_explicit_other_name_is_refused_naming_both() {
        let err = name("nas", "web", "myhost").unwrap_err();
        assert!(err.contains("'nas'") && err.contains("'web'"), "{err}");
    }

    #[test]
    fn without_a_bound_name_the_explicit_then_the_default_name_is_used() {
        assert_eq!(name("", "web", "myhost"), Ok("web".into()));
        assert_eq!(name("", "", "myhost"), Ok("myhost".into()));
        assert!(name("", "", "").unwrap_err().contains("no node name"));
        assert!(name("", "Bad Name", "").is_err());
    }
}
