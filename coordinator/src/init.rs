//! `lab-coordinator init`: creates the CA, the server certificate, the admin operator and a
//! labctl config for the admin, in a data directory that must not be initialized yet.

use std::time::Duration;

use lab_proto::csr::new_key_pem;
use lab_proto::ctlconfig::{Context, CtlConfig};
use lab_proto::files::{create_private_dir, write_atomic, PRIVATE, PUBLIC};
use lab_proto::identity::{validate_name, Identity, SpiffeId, TrustDomain, UserName};
use lab_proto::store::v1::{CertificateRecord, UserRecord};

use crate::auth::Role;
use crate::ca::Ca;
use crate::datadir::{DataDir, Settings};
use crate::state::now_ms;
use crate::store::Store;

/// Lifetime of the coordinator's server certificate; `serve` renews it when it runs low.
pub const SERVER_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Lifetime of operator certificates.
pub const OPERATOR_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Name of the operator `init` creates.
pub const ADMIN_USER: &str = "admin";

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Data directory to create.
    pub data_dir: DataDir,
    /// Address agents and operators will dial, HOST:PORT.
    pub advertise: String,
    /// Trust domain of the new CA.
    pub trust_domain: String,
    /// Extra names for the server certificate.
    pub extra_sans: Vec<String>,
}

/// Creates everything; refuses to touch an initialized directory.
pub async fn init(opts: &InitOptions) -> anyhow::Result<()> {
    let dir = &opts.data_dir;
    if dir.ca_key().exists() {
        anyhow::bail!(
            "{} is already initialized (it has ca.key); use another --data-dir or 'lab-coordinator serve'",
            dir.root().display()
        );
    }
    validate_name(&opts.trust_domain).map_err(|e| anyhow::anyhow!("--trust-domain: {e}"))?;
    let trust_domain: TrustDomain = opts.trust_domain.parse()?;
    let (host, _port) = lab_proto::client::split_host_port(&opts.advertise).ok_or_else(|| {
        anyhow::anyhow!(
            "--advertise '{}' is not HOST:PORT (e.g. 10.0.0.5:7443)",
            opts.advertise
        )
    })?;
    let mut server_names = vec![host];
    for san in &opts.extra_sans {
        if !server_names.contains(san) {
            server_names.push(san.clone());
        }
    }

    create_private_dir(dir.root())?;
    let (ca, ca_key_pem) = Ca::create(trust_domain.as_str())?;
    write_atomic(&dir.ca_key(), ca_key_pem.as_bytes(), PRIVATE)?;
    write_atomic(&dir.ca_cert(), ca.cert_pem().as_bytes(), PUBLIC)?;
    write_server_cert(dir, &ca, &server_names)?;

    let settings = Settings {
        trust_domain: trust_domain.to_string(),
        advertise: opts.advertise.clone(),
        server_names,
    };
    write_atomic(
        &dir.settings(),
        toml::to_string_pretty(&settings)?.as_bytes(),
        PUBLIC,
    )?;

    let store = Store::open(&dir.state())?;
    let admin: UserName = ADMIN_USER.parse()?;
    store
        .create_user(UserRecord {
            name: admin.to_string(),
            role: Role::Admin.to_proto() as i32,
            created_unix_ms: now_ms(),
            ..Default::default()
        })
        .await?;
    let id = SpiffeId {
        trust_domain: trust_domain.clone(),
        identity: Identity::Operator(admin),
    };
    let key_pem = new_key_pem()?;
    let key = rcgen::KeyPair::from_pem(&key_pem)?;
    let issued = ca.issue_client(&id, &key, OPERATOR_CERT_TTL)?;
    store
        .put_certificate(CertificateRecord {
            serial: issued.info.serial_hex.clone(),
            identity_uri: id.uri(),
            not_after_unix_ms: issued.info.not_after_unix_ms,
            issued_unix_ms: now_ms(),
            ..Default::default()
        })
        .await?;
    let config = CtlConfig::single(Context {
        name: trust_domain.to_string(),
        coordinator: opts.advertise.clone(),
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: issued.cert_pem,
        key_pem,
    });
    write_atomic(&dir.labctl_config(), config.render().as_bytes(), PRIVATE)?;
    Ok(())
}

/// Issues a server certificate for `names` with a fresh key and writes chain and key.
pub fn write_server_cert(dir: &DataDir, ca: &Ca, names: &[String]) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let issued = ca.issue_server(&key, names, SERVER_CERT_TTL)?;
    let chain = format!("{}{}", issued.cert_pem, ca.cert_pem());
    write_atomic(&dir.server_key(), key.serialize_pem().as_bytes(), PRIVATE)?;
    write_atomic(&dir.server_cert(), chain.as_bytes(), PUBLIC)?;
    Ok(())
}
