//! Authentication and authorization in one place: a tower layer in front of every RPC.
//!
//! The caller's identity comes only from its verified client certificate (URI SAN); the method's
//! required access comes from one explicit table, [`access_for`]; anything not in the table is
//! denied. The resolved [`Caller`] is put into the request extensions for the handlers.
//!
//! Architecture invariant: no handler decides who may call it.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use lab_proto::identity::{Identity, NodeName, SpiffeId, TrustDomain, UserName};
use lab_proto::pem::cert_info;
use rustls_pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

use crate::accept::ConnTracker;
use crate::store::Store;

/// Operator roles, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads inventory and job history.
    Viewer,
    /// Also runs jobs.
    Operator,
    /// Also manages tokens, users and revocation.
    Admin,
}

impl Role {
    /// From the wire/store enum number.
    pub fn from_proto(value: i32) -> Option<Role> {
        match lab_proto::v1::Role::try_from(value).ok()? {
            lab_proto::v1::Role::Viewer => Some(Role::Viewer),
            lab_proto::v1::Role::Operator => Some(Role::Operator),
            lab_proto::v1::Role::Admin => Some(Role::Admin),
            lab_proto::v1::Role::Unspecified => None,
        }
    }

    /// To the wire/store enum.
    pub fn to_proto(self) -> lab_proto::v1::Role {
        match self {
            Role::Viewer => lab_proto::v1::Role::Viewer,
            Role::Operator => lab_proto::v1::Role::Operator,
            Role::Admin => lab_proto::v1::Role::Admin,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role '{other}'; use viewer, operator or admin"
            )),
        }
    }
}

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No client certificate needed.
    Anyone,
    /// A node certificate.
    Node,
    /// An operator certificate with at least this role.
    Operator(Role),
}

/// The allowlist: every RPC path and who may call it. `None` means denied.
pub fn access_for(path: &str) -> Option<Access> {
    use Access::*;
    let access = match path {
        "/lab.v1.AgentService/Bootstrap" | "/lab.v1.AgentService/Enroll" => Anyone,
        "/grpc.health.v1.Health/Check" | "/grpc.health.v1.Health/Watch" => Anyone,
        "/lab.v1.AgentService/Connect" | "/lab.v1.AgentService/Renew" => Node,
        "/lab.v1.OperatorService/WhoAmI"
        | "/lab.v1.OperatorService/ListNodes"
        | "/lab.v1.OperatorService/CountNodes"
        | "/lab.v1.OperatorService/GetNode"
        | "/lab.v1.OperatorService/GetJob"
        | "/lab.v1.OperatorService/ListJobs"
        | "/lab.v1.OperatorService/WatchJob"
        | "/lab.v1.OperatorService/ListSchedules"
        | "/lab.v1.OperatorService/GetSchedule"
        | "/lab.v1.OperatorService/ListBackups"
        | "/lab.v1.OperatorService/GetTopology"
        | "/lab.v1.OperatorService/ListCoordinators"
        | "/lab.v1.OperatorService/RenewUser" => Operator(Role::Viewer),
        "/lab.v1.OperatorService/SubmitJob"
        | "/lab.v1.OperatorService/CancelJob"
        | "/lab.v1.OperatorService/CreateSchedule"
        | "/lab.v1.OperatorService/SetSchedulePaused"
        | "/lab.v1.OperatorService/DeleteSchedule" => Operator(Role::Operator),
        "/lab.v1.OperatorService/LabelNode" => Operator(Role::Operator),
        "/lab.v1.OperatorService/RevokeNode"
        | "/lab.v1.OperatorService/RemoveNode"
        | "/lab.v1.OperatorService/ForgetBackups"
        | "/lab.v1.OperatorService/CreateToken"
        | "/lab.v1.OperatorService/ListTokens"
        | "/lab.v1.OperatorService/CreateUser"
        | "/lab.v1.OperatorService/ListUsers"
        | "/lab.v1.OperatorService/DeleteUser"
        | "/lab.v1.OperatorService/RevokeUser"
        | "/lab.v1.OperatorService/SetUserRole"
        | "/lab.v1.OperatorService/RevokeToken" => Operator(Role::Admin),
        _ => return None,
    };
    Some(access)
}

/// The authenticated caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No client certificate.
    Anonymous,
    /// An agent.
    Node {
        /// Node name from the certificate.
        name: NodeName,
        /// Serial of the certificate used.
        serial: String,
    },
    /// A person or script.
    Operator {
        /// User name from the certificate.
        user: UserName,
        /// Role stored for the user.
        role: Role,
    },
}

/// Resolves certificates to callers and checks them against the table.
pub struct Authorizer {
    store: Store,
    trust_domain: TrustDomain,
}

impl Authorizer {
    /// An authorizer reading users, nodes and revocations from `store`.
    pub fn new(store: Store, trust_domain: TrustDomain) -> Self {
        Authorizer {
            store,
            trust_domain,
        }
    }

    /// Who is calling `path` with `certs`, if they may.
    pub fn authorize(
        &self,
        path: &str,
        certs: Option<&[CertificateDer<'static>]>,
    ) -> Result<Caller, Status> {
        let access = access_for(path)
            .ok_or_else(|| Status::permission_denied(format!("method {path} is not allowed")))?;
        let caller = match certs.and_then(|c| c.first()) {
            None => Caller::Anonymous,
            Some(leaf) => self.identify(leaf)?,
        };
        match (access, &caller) {
            (Access::Anyone, _) => Ok(caller),
            (_, Caller::Anonymous) => Err(Status::unauthenticated(
                "this call needs a client certificate; enroll the agent or use a labctl context with an operator certificate",
            )),
            (Access::Node, Caller::Node { .. }) => Ok(caller),
            (Access::Node, Caller::Operator { .. }) => Err(Status::permission_denied(
                "operator certificates cannot call agent RPCs",
            )),
            (Access::Operator(_), Caller::Node { .. }) => Err(Status::permission_denied(
                "node certificates cannot call operator RPCs",
            )),
            (Access::Operator(min), Caller::Operator { role, user }) => {
                if *role >= min {
                    Ok(caller)
                } else {
                    Err(Status::permission_denied(format!(
                        "user '{user}' has role {}, but {path} needs {}",
                        role.as_str(),
                        min.as_str()
                    )))
                }
            }
        }
    }

    /// Whether `certs` (a TLS peer's chain) identify a known, unrevoked node or operator; a
    /// connection without such a certificate is limited by [`crate::accept`].
    pub fn accepts(&self, certs: &[CertificateDer<'_>]) -> bool {
        certs
            .first()
            .is_some_and(|leaf| self.identify(leaf).is_ok())
    }

    fn identify(&self, leaf: &CertificateDer<'_>) -> Result<Caller, Status> {
        let (id, uri, serial_hex) = identity_of(leaf, &self.trust_domain)?;
        let uri = uri.as_str();
        let cert = self.store.certificate(uri, &serial_hex).map_err(internal)?;
        if cert.as_ref().is_none_or(|c| c.revoked) {
            return Err(Status::unauthenticated(format!(
                "certificate {} of '{uri}' has been revoked or was never issued here",
                serial_hex
            )));
        }
        match id.identity {
            Identity::Node(name) => {
                let node = self.store.node(name.as_str()).map_err(internal)?;
                match node {
                    Some(n) if !n.revoked => Ok(Caller::Node {
                        name,
                        serial: serial_hex,
                    }),
                    Some(_) => Err(Status::unauthenticated(format!(
                        "node '{name}' has been revoked"
                    ))),
                    None => Err(Status::unauthenticated(format!(
                        "node '{name}' has been removed; enroll it again with a new token"
                    ))),
                }
            }
            Identity::Operator(user) => {
                let rec = self
                    .store
                    .user(user.as_str())
                    .map_err(internal)?
                    .ok_or_else(|| {
                        Status::unauthenticated(format!("user '{user}' does not exist"))
                    })?;
                if rec.revoked_unix_ms != 0 {
                    return Err(Status::unauthenticated(format!(
                        "user '{user}' has been revoked"
                    )));
                }
                let role = Role::from_proto(rec.role).ok_or_else(|| {
                    Status::permission_denied(format!("user '{user}' has no role"))
                })?;
                Ok(Caller::Operator { user, role })
            }
        }
    }
}

/// The identity a client certificate carries in `trust_domain`: its SPIFFE id, identity URI and
/// serial (hex). Nothing is looked up: revocation is the caller's to check.
pub fn identity_of(
    leaf: &CertificateDer<'_>,
    trust_domain: &TrustDomain,
) -> Result<(SpiffeId, String, String), Status> {
    let info = cert_info(leaf)
        .map_err(|e| Status::unauthenticated(format!("unreadable client certificate: {e}")))?;
    let [uri] = info.uri_sans.as_slice() else {
        return Err(Status::unauthenticated(
            "client certificate must carry exactly one labfleet identity URI",
        ));
    };
    let id: SpiffeId = uri
        .parse()
        .map_err(|e| Status::unauthenticated(format!("{e}")))?;
    if id.trust_domain != *trust_domain {
        return Err(Status::unauthenticated(format!(
            "certificate is for trust domain '{}', this coordinator serves '{}'",
            id.trust_domain, trust_domain
        )));
    }
    Ok((id, uri.clone(), info.serial_hex))
}

fn internal(e: crate::store::StoreError) -> Status {
    crate::error::ApiError::from(e).into()
}

/// The tower layer that runs [`Authorizer::authorize`] before every RPC, and tells the
/// connection tracker that a request started on an unauthenticated connection.
#[derive(Clone)]
pub struct AuthLayer {
    authorizer: Arc<Authorizer>,
    tracker: Arc<ConnTracker>,
}

impl AuthLayer {
    /// A layer using `authorizer`, reporting activity to `tracker`.
    pub fn new(authorizer: Arc<Authorizer>, tracker: Arc<ConnTracker>) -> Self {
        AuthLayer {
            authorizer,
            tracker,
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authorizer: self.authorizer.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

/// Service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
    tracker: Arc<ConnTracker>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        let certs = info.and_then(|info| info.peer_certs());
        let peer = info.and_then(|info| info.get_ref().remote_addr());
        match self
            .authorizer
            .authorize(req.uri().path(), certs.as_deref().map(Vec::as_slice))
        {
            Ok(caller) => {
                if let (Caller::Anonymous, Some(peer)) = (&caller, peer) {
                    self.tracker.touch(peer);
                }
                req.extensions_mut().insert(caller);
                Box::pin(inner.call(req))
            }
            Err(status) => {
                tracing::info!(path = req.uri().path(), error = %status.message(), "rpc denied");
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_in_the_contract_is_in_the_table() {
        let protos = [
            (
                "AgentService",
                include_str!("../../proto/lab/v1/agent.proto"),
            ),
            (
                "OperatorService",
                include_str!("../../proto/lab/v1/operator.proto"),
            ),
        ];
        let mut seen = 0;
        for (service, text) in protos {
            for line in text.lines() {
                let Some(rest) = line.trim().strip_prefix("rpc ") else {
                    continue;
                };
                let method = rest.split('(').next().unwrap().trim();
                let path = format!("/lab.v1.{service}/{method}");
                assert!(
                    access_for(&path).is_some(),
                    "{path} missing from access_for"
                );
                seen += 1;
            }
        }
        assert!(seen >= 10);
    }

    #[test]
    fn unknown_methods_are_denied() {
        assert_eq!(access_for("/lab.v1.OperatorService/Nope"), None);
        assert_eq!(access_for("/other.Service/Enroll"), None);
        assert_eq!(access_for(""), None);
    }

    #[test]
    fn only_bootstrap_enroll_and_health_are_anonymous() {
        for path in [
            "/lab.v1.AgentService/Connect",
            "/lab.v1.AgentService/Renew",
            "/lab.v1.OperatorService/ListNodes",
        ] {
            assert_ne!(access_for(path), Some(Access::Anyone), "{path}");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
