//! `lab-agent enroll`: trust the coordinator through the CA pin in the token, make a key pair
//! here, send only a CSR, and save what comes back.

use lab_proto::client::{agent_client, ConnectOptions};
use lab_proto::csr::{csr_for_key, new_key_pem};
use lab_proto::endpoints::{DialError, Endpoints};
use lab_proto::identity::{Identity, NodeName, SpiffeId};
use lab_proto::pem::{cert_info_from_pem, certs_from_pem};
use lab_proto::tls::{cert_sha256, pinned_client_config, ClientIdentity};
use lab_proto::token::EnrollToken;
use lab_proto::v1::{BootstrapRequest, EnrollRequest};

use crate::datadir::{AgentDir, Enrollment};
use crate::error::AgentError;

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// Coordinator addresses, HOST:PORT (several when they share an etcd store; any one that
    /// is up will do, a standby points at the leader).
    pub coordinators: Vec<String>,
    /// The token from `labctl token create`.
    pub token: String,
    /// Node name asked for explicitly (`--name`); a token bound to another name refuses it.
    pub name: Option<String>,
    /// Name used when neither the token nor `name` gives one (the machine's hostname).
    pub default_name: Option<String>,
    /// Connection options (source address).
    pub connect: ConnectOptions,
}

/// Enrolls into `dir`; returns the node name granted.
pub async fn enroll(dir: &AgentDir, opts: &EnrollOptions) -> Result<String, AgentError> {
    let token: EnrollToken = opts
        .token
        .parse()
        .map_err(|e| AgentError::Usage(format!("{e}")))?;
    if let Some(name) = &opts.name {
        name.parse::<NodeName>()
            .map_err(|e| AgentError::Usage(format!("--name: {e}")))?;
    }
    if dir.is_enrolled() {
        return Err(AgentError::Usage(format!(
            "{} already holds an enrollment; use another --data-dir or remove it to enroll again",
            dir.root().display()
        )));
    }
    let tls = pinned_client_config(token.ca_pin).map_err(|e| AgentError::Failed(e.to_string()))?;
    let mut endpoints = Endpoints::new(opts.coordinators.clone())
        .map_err(|e| AgentError::Usage(format!("--coordinator: {e}")))?;
    let dialled = endpoints
        .dial(tls, &opts.connect, |channel| async move {
            agent_client(channel).bootstrap(BootstrapRequest {}).await
        })
        .await
        .map_err(|e| match e {
            DialError::AllFailed(all) => AgentError::Unreachable(all.to_string()),
            DialError::Rejected { addr, status } => {
                AgentError::Unreachable(format!("bootstrap failed at {addr}: {}", status.message()))
            }
        })?;
    let boot = dialled.value.into_inner();
    let mut client = agent_client(dialled.channel);
    let ca = certs_from_pem(&boot.ca_pem).map_err(|e| AgentError::Failed(e.to_string()))?;
    if cert_sha256(&ca[0]) != token.ca_pin {
        return Err(AgentError::Failed(
            "the CA the coordinator returned does not match the pin in the token".into(),
        ));
    }

    let key_pem = new_key_pem().map_err(|e| AgentError::Failed(e.to_string()))?;
    let csr_pem = csr_for_key(&key_pem).map_err(|e| AgentError::Failed(e.to_string()))?;
    let resp = client
        .enroll(EnrollRequest {
            token: opts.token.trim().to_owned(),
            csr_pem,
            node_name: opts.name.clone().unwrap_or_default(),
            default_node_name: opts.default_name.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| AgentError::Failed(format!("enrollment refused: {}", s.message())))?
        .into_inner();

    let expected =
        SpiffeId {
            trust_domain: resp.trust_domain.parse().map_err(|e| {
                AgentError::Failed(format!("coordinator sent a bad trust domain: {e}"))
            })?,
            identity: Identity::Node(resp.node_name.parse().map_err(|e| {
                AgentError::Failed(format!("coordinator sent a bad node name: {e}"))
            })?),
        };
    let info =
        cert_info_from_pem(&resp.certificate_pem).map_err(|e| AgentError::Failed(e.to_string()))?;
    if info.uri_sans != vec![expected.uri()] {
        return Err(AgentError::Failed(format!(
            "coordinator issued a certificate for {:?}, expected {}",
            info.uri_sans,
            expected.uri()
        )));
    }
    dir.save_enrollment(
        &Enrollment {
            coordinators: endpoints.list().to_vec(),
            node_name: resp.node_name.clone(),
            trust_domain: resp.trust_domain,
        },
        &boot.ca_pem,
        &ClientIdentity {
            cert_pem: resp.certificate_pem,
            key_pem,
        },
    )
    .map_err(|e| AgentError::Failed(format!("cannot save enrollment: {e:#}")))?;
    // The node's age key is made here, so its recipient is known from the first session on.
    crate::secrets::NodeKey::load_or_create(&dir.age_key())
        .map_err(|e| AgentError::Failed(format!("{e:#}")))?;
    Ok(resp.node_name)
}
