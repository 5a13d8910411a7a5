//! `AgentService`: bootstrap, enrollment, renewal, and the long-lived `Connect` session.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use lab_proto::identity::NodeName;
use lab_proto::store::v1::{CertificateRecord, NodeRecord};
use lab_proto::token::EnrollToken;
use lab_proto::v1::agent_service_server::AgentService;
use lab_proto::v1::{
    AgentMessage, BootstrapRequest, BootstrapResponse, CoordinatorMessage, EnrollRequest,
    EnrollResponse, RenewRequest, RenewResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::ca::Issued;
use crate::error::ApiError;
use crate::session;
use crate::state::{now_ms, Coordinator};

/// The `AgentService` implementation.
pub struct AgentApi {
    coord: Arc<Coordinator>,
}

impl AgentApi {
    /// Handlers over `coord`.
    pub fn new(coord: Arc<Coordinator>) -> Self {
        AgentApi { coord }
    }

    async fn record_cert(&self, uri: String, issued: &Issued) -> Result<(), ApiError> {
        self.coord
            .store
            .put_certificate(CertificateRecord {
                serial: issued.info.serial_hex.clone(),
                identity_uri: uri,
                not_after_unix_ms: issued.info.not_after_unix_ms,
                issued_unix_ms: now_ms(),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    async fn enroll(&self, req: EnrollRequest) -> Result<EnrollResponse, ApiError> {
        let token: EnrollToken =
            req.token
                .parse()
                .map_err(|e: lab_proto::token::TokenFormatError| {
                    ApiError::InvalidArgument(e.to_string())
                })?;
        if token.ca_pin != self.coord.ca.pin() {
            return Err(ApiError::FailedPrecondition(
                "enrollment token was made for a different coordinator CA; create a token on this coordinator".into(),
            ));
        }
        self.coord.store.ensure_room()?;
        let _guard = self.coord.enroll_lock.lock().await;
        let stored = self
            .coord
            .store
            .tokens()?
            .into_iter()
            .find(|t| t.token_id == token.id);
        let bound = stored
            .as_ref()
            .map(|t| t.node_name.clone())
            .filter(|n| !n.is_empty());
        let name_text = match (&bound, req.node_name.as_str()) {
            (Some(b), asked) if !asked.is_empty() && asked != b => {
                return Err(ApiError::InvalidArgument(format!(
                    "token is bound to node name '{b}', but the agent asked for '{asked}'; drop --name or use a token for '{asked}'"
                )))
            }
            (Some(b), _) => b.clone(),
            (None, "") => {
                return Err(ApiError::InvalidArgument(
                    "no node name: pass --name to 'lab-agent enroll' or bind the token with 'labctl token create --name'".into(),
                ))
            }
            (None, asked) => asked.to_owned(),
        };
        let name: NodeName =
            name_text
                .parse()
                .map_err(|e: lab_proto::identity::IdentityError| {
                    ApiError::InvalidArgument(e.to_string())
                })?;
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
            .ca
            .sign_csr(&id, &req.csr_pem, self.coord.options.node_cert_ttl)?;
        let used = self
            .coord
            .store
            .consume_token(&token.id, &token.secret_sha256(), now_ms(), name.as_str())
            .await?;
        self.record_cert(id.uri(), &issued).await?;
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
        let id = self.coord.node_id(&name);
        let issued = self
            .coord
            .ca
            .sign_csr(&id, &req.csr_pem, self.coord.options.node_cert_ttl)?;
        self.record_cert(id.uri(), &issued).await?;
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

/// Checks labels from a token or an operator (see [`lab_proto::labels::validate`]: reserved
/// keys such as `node` are refused).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    lab_proto::labels::validate(labels).map_err(|e| ApiError::InvalidArgument(e.to_string()))
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
        Ok(Response::new(
            AgentApi::enroll(self, req.into_inner()).await?,
        ))
    }

    type ConnectStream = CoordinatorStream;

    async fn connect(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let name = node_caller(&req)?;
        let (tx, rx) = crate::sessions::Outbound::channel(session::OUTBOUND_CAPACITY);
        session::start(self.coord.clone(), name, req.into_inner(), tx).await?;
        Ok(Response::new(Box::pin(rx)))
    }

    async fn renew(&self, req: Request<RenewRequest>) -> Result<Response<RenewResponse>, Status> {
        let name = node_caller(&req)?;
        Ok(Response::new(
            AgentApi::renew(self, name, req.into_inner()).await?,
        ))
    }
}
