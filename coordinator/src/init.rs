//! `lab-coordinator init`: creates the CA, the server certificate, the admin operator and a
//! labctl config for the admin, in a data directory that must not be initialized yet; and
//! `lab-coordinator cert`, which adds names to the server certificate later. With an etcd store,
//! `init` also seals the CA for the coordinators that [`join`] later.

pub mod join;

use std::time::Duration;

use lab_proto::csr::new_key_pem;
use lab_proto::ctlconfig::{Context, CtlConfig};
use lab_proto::files::{create_private_dir, write_atomic, PRIVATE, PUBLIC};
use lab_proto::identity::{validate_name, Identity, SpiffeId, TrustDomain, UserName};
use lab_proto::store::v1::UserRecord;

use crate::auth::Role;
use crate::ca::Ca;
use crate::clock::now_ms;
use crate::datadir::{DataDir, Settings};
use crate::store::{Location, Store, StoreError, StoreOptions};

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
    /// Replace an existing CA: delete the directory's CA, certificates, settings, admin config
    /// and store first (every node and operator must enroll again).
    pub force: bool,
    /// Where the store goes; `None`: sled in the data directory. An etcd store must not hold
    /// a fleet yet under its prefix (`--force` does not clear etcd).
    pub store: Option<Location>,
}

/// A refusal caused by the arguments or by the state of the data directory, not by a failure;
/// `lab-coordinator` exits with 2 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Creates everything; refuses to touch an initialized directory unless `opts.force`.
///
/// Run as root in an existing data directory that belongs to another user (the package's
/// `lab-coordinator`), everything it writes is given to that user (see
/// [`DataDir::adopt_owner`]), so the service can read it.
pub async fn init(opts: &InitOptions) -> anyhow::Result<()> {
    let dir = &opts.data_dir;
    validate_name(&opts.trust_domain).map_err(|e| UsageError(format!("--trust-domain: {e}")))?;
    let trust_domain: TrustDomain = opts
        .trust_domain
        .parse()
        .map_err(|e| UsageError(format!("--trust-domain: {e}")))?;
    let server_names = server_names(&opts.advertise, &opts.extra_sans)?;
    // An etcd store is checked before anything is written: it must not hold a fleet yet.
    let etcd_store = match &opts.store {
        None | Some(Location::Sled(_)) => None,
        Some(location) => {
            let store = Store::open_at(location, &StoreOptions::default()).await?;
            if !store.users()?.is_empty() {
                return Err(already_a_fleet(&store).into());
            }
            Some(store)
        }
    };
    if dir.ca_key().exists() {
        if !opts.force {
            return Err(UsageError(format!(
                "{} already has a CA (ca.key) and init never replaces it; start the coordinator \
                 with 'lab-coordinator serve' (or 'systemctl start lab-coordinator'), or pass \
                 --force to delete this CA, its store and admin config and start over (every node \
                 and operator must then enroll again)",
                dir.root().display()
            ))
            .into());
        }
        clear(dir)?;
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
    settings.save(dir)?;

    let store = match etcd_store {
        None => Store::open(&dir.state())?,
        Some(store) => store,
    };
    let admin: UserName = ADMIN_USER.parse()?;
    let created = store
        .create_user(UserRecord {
            name: admin.to_string(),
            role: Role::Admin.to_proto() as i32,
            created_unix_ms: now_ms(),
            ..Default::default()
        })
        .await;
    if let Err(StoreError::Exists(_)) = created {
        return Err(already_a_fleet(&store).into());
    }
    created?;
    let id = SpiffeId {
        trust_domain: trust_domain.clone(),
        identity: Identity::Operator(admin),
    };
    let key_pem = new_key_pem()?;
    let key = rcgen::KeyPair::from_pem(&key_pem)?;
    let key_source = crate::certs::PublicKey::Pair(&key);
    let issued = crate::certs::issue(&ca, &store, &id, key_source, OPERATOR_CERT_TTL).await?;
    let admin_context = Context {
        name: trust_domain.to_string(),
        servers: vec![opts.advertise.clone()],
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: issued.cert_pem,
        key_pem,
    };
    let config = CtlConfig::single(admin_context.clone());
    write_atomic(&dir.labctl_config(), config.render().as_bytes(), PRIVATE)?;
    drop(store);
    if let Some(Location::Etcd(etcd)) = &opts.store {
        join::publish(dir, etcd, &opts.advertise, &ca, &ca_key_pem, &admin_context).await?;
    }
    dir.adopt_owner()?;
    Ok(())
}

fn already_a_fleet(store: &Store) -> UsageError {
    UsageError(format!(
        "the store {} already holds a fleet (it has operators); use another --etcd-prefix, or start the coordinator with it",
        store.location()
    ))
}

/// `init --force`: deletes what `init` wrote, after checking that no coordinator has the store
/// open (sled locks it).
fn clear(dir: &DataDir) -> anyhow::Result<()> {
    if dir.state().exists() {
        let store = Store::open(&dir.state()).map_err(|e| {
            anyhow::anyhow!(
                "cannot replace the CA in {}: its store cannot be opened ({e}); stop the coordinator first ('systemctl stop lab-coordinator')",
                dir.root().display()
            )
        })?;
        drop(store);
        std::fs::remove_dir_all(dir.state())
            .map_err(|e| anyhow::anyhow!("cannot delete {}: {e}", dir.state().display()))?;
    }
    for path in [
        dir.join_key(),
        dir.labctl_config(),
        dir.settings(),
        dir.server_cert(),
        dir.server_key(),
        dir.ca_cert(),
        dir.ca_key(),
    ] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                anyhow::bail!("cannot delete {}: {e}", path.display())
            }
            _ => {}
        }
    }
    tracing::warn!(dir = %dir.root().display(), "deleted the old CA and store (--force)");
    Ok(())
}

/// The server certificate's names: the host of `advertise` (HOST:PORT), then `extra_sans`.
pub fn server_names(advertise: &str, extra_sans: &[String]) -> Result<Vec<String>, UsageError> {
    let (host, _port) = lab_proto::client::split_host_port(advertise).ok_or_else(|| {
        UsageError(format!(
            "--advertise '{advertise}' is not HOST:PORT (e.g. 10.0.0.5:7443)"
        ))
    })?;
    let mut names = vec![host];
    for san in extra_sans {
        check_server_name(san).map_err(|e| UsageError(format!("--san: {e}")))?;
        if !names.contains(san) {
            names.push(san.clone());
        }
    }
    Ok(names)
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

/// Checks a name for the server certificate: an IP address or a DNS name.
pub fn check_server_name(name: &str) -> anyhow::Result<()> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let wildcard_ok = |n: &str| n.strip_prefix("*.").unwrap_or(n).split('.').all(label_ok);
    if name.len() > 253 || !wildcard_ok(name) {
        anyhow::bail!(
            "'{name}' is neither an IP address nor a DNS name (letters, digits and '-' in dot-separated labels)"
        );
    }
    Ok(())
}

/// `lab-coordinator cert`: adds `sans` (and the host of a new `advertise` address) to the
/// server certificate's names and issues a new server certificate with the CA. Settings are
/// written first, then the key and certificate (each atomically); `serve` re-issues the
/// certificate from the settings if it finds a key and certificate that do not belong together.
/// A running coordinator keeps its old certificate until it is restarted. Returns the names.
pub fn add_server_names(
    dir: &DataDir,
    sans: &[String],
    advertise: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut settings = Settings::load(dir)?;
    let mut wanted: Vec<String> = sans.to_vec();
    if let Some(addr) = advertise {
        let (host, _port) = lab_proto::client::split_host_port(addr).ok_or_else(|| {
            UsageError(format!(
                "--advertise '{addr}' is not HOST:PORT (e.g. 10.0.0.5:7443)"
            ))
        })?;
        wanted.push(host);
        settings.advertise = addr.to_owned();
    }
    if wanted.is_empty() {
        return Err(UsageError(
            "nothing to add; pass --san NAME (repeatable) or --advertise HOST:PORT".into(),
        )
        .into());
    }
    for name in &wanted {
        check_server_name(name).map_err(|e| UsageError(format!("--san: {e}")))?;
        if !settings.server_names.contains(name) {
            settings.server_names.push(name.clone());
        }
    }
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let ca = Ca::load(&read(dir.ca_cert())?, &read(dir.ca_key())?)?;
    settings.save(dir)?;
    write_server_cert(dir, &ca, &settings.server_names)?;
    dir.adopt_owner()?;
    Ok(settings.server_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_ips_or_dns_names() {
        for ok in [
            "10.0.0.5",
            "::1",
            "lab.example",
            "coordinator",
            "*.lab.example",
            "a-b.c",
        ] {
            check_server_name(ok).unwrap();
        }
        for bad in ["", "a..b", "-a.b", "a b", "http://x", "x/y", "a.b-"] {
            let err = check_server_name(bad).unwrap_err().to_string();
            assert!(
                err.contains("neither an IP address nor a DNS name"),
                "{bad}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn cert_adds_names_and_keeps_the_old_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("c"));
        init(&InitOptions {
            data_dir: dir.clone(),
            advertise: "127.0.0.1:7443".into(),
            trust_domain: "lab.test".into(),
            extra_sans: vec![],
            force: false,
            store: None,
        })
        .await
        .unwrap();
        let before = std::fs::read_to_string(dir.server_cert()).unwrap();
        let names = add_server_names(&dir, &["lab.example".into()], Some("10.1.2.3:7443")).unwrap();
        assert_eq!(names, vec!["127.0.0.1", "lab.example", "10.1.2.3"]);
        let settings = Settings::load(&dir).unwrap();
        assert_eq!(settings.server_names, names);
        assert_eq!(settings.advertise, "10.1.2.3:7443");
        let after = std::fs::read_to_string(dir.server_cert()).unwrap();
        assert_ne!(before, after);
        let der = lab_proto::pem::certs_from_pem(&after).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let shown = format!("{:?}", san.general_names);
        for n in ["lab.example", "127.0.0.1", "10.1.2.3"] {
            let hit = shown.contains(n)
                || n.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
                    std::net::IpAddr::V4(v4) => shown.contains(&format!("{:?}", v4.octets())),
                    std::net::IpAddr::V6(_) => false,
                });
            assert!(hit, "{n} missing from {shown}");
        }
        let err = add_server_names(&dir, &["bad name".into()], None).unwrap_err();
        assert!(err.to_string().contains("bad name"), "{err}");
    }
}
