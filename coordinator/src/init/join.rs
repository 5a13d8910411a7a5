//! More coordinators for one fleet on one etcd prefix: where the CA key lives and how the next
//! coordinator gets it.
//!
//! `init --store etcd://…` seals the fleet's CA (certificate and key) and the admin's labctl
//! identity with age to a fresh x25519 key, stores the sealed bundle under `<prefix>ca`, and
//! writes the key to `DIR/join.key` (0600). The operator copies that file to the next machine;
//! `join --join-key FILE` opens the bundle, writes the CA, a server certificate for its own
//! `--advertise` address and the settings into its data directory, and records itself under
//! `<prefix>coordinators/<advertise>`. So the CA key is on the disk of every coordinator (0600,
//! as with one coordinator) and in etcd only encrypted: someone who can read etcd but holds no
//! join key learns nothing; whoever holds a join key can become a coordinator of the fleet.
//!
//! Both write `DIR/labctl.toml` with every coordinator known so far (`servers = [...]`).
//! Neither writes into the store's trees (the leader is the only writer there): the admin
//! identity in the bundle is the one `init` recorded.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use age::secrecy::ExposeSecret;
use lab_proto::ctlconfig::{Context, CtlConfig};
use lab_proto::files::{create_private_dir, write_atomic, PRIVATE, PUBLIC};
use serde::{Deserialize, Serialize};

use super::{server_names, write_server_cert, UsageError};
use crate::ca::Ca;
use crate::datadir::{DataDir, Settings};
use crate::store::raw::{CoordinatorEntry, RawKeys, CA_KEY};
use crate::store::EtcdOptions;

/// Version of the sealed bundle's layout.
const BUNDLE_VERSION: u32 = 1;

/// What `<prefix>ca` holds once opened.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    version: u32,
    trust_domain: String,
    ca_cert_pem: String,
    ca_key_pem: String,
    /// The admin's labctl identity (its certificate is recorded in the store by `init`).
    admin_cert_pem: String,
    admin_key_pem: String,
}

/// What `join` needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Data directory to create.
    pub data_dir: DataDir,
    /// The fleet's etcd store (cluster and prefix).
    pub etcd: EtcdOptions,
    /// Address agents and operators dial for this coordinator, HOST:PORT.
    pub advertise: String,
    /// Extra names for the server certificate.
    pub extra_sans: Vec<String>,
    /// The file `init` wrote as `DIR/join.key`.
    pub join_key: PathBuf,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The join key file's text: a comment saying what it is, then the age identity.
fn join_key_text(identity: &age::x25519::Identity, etcd: &EtcdOptions) -> String {
    format!(
        "# labfleet join key: opens the fleet CA under prefix {} of {}\n# copy it to the next coordinator: lab-coordinator join --join-key FILE …\n{}\n",
        etcd.prefix,
        etcd.url(),
        identity.to_string().expose_secret()
    )
}

/// Reads an age identity from a join key file.
fn read_join_key(path: &Path) -> Result<age::x25519::Identity, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read the join key {}: {e}", path.display())))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default();
    line.parse().map_err(|_| {
        UsageError(format!(
            "{} is not a join key (expected the AGE-SECRET-KEY-1… line that 'lab-coordinator init' wrote to its DIR/join.key)",
            path.display()
        ))
    })
}

/// Writes `DIR/labctl.toml` for the admin with every coordinator recorded on the prefix.
async fn write_labctl(
    dir: &DataDir,
    raw: &RawKeys,
    trust_domain: &str,
    bundle: &Bundle,
) -> anyhow::Result<Vec<String>> {
    let servers: Vec<String> = raw
        .coordinators()
        .await?
        .into_iter()
        .map(|c| c.advertise)
        .collect();
    let config = CtlConfig::single(Context {
        name: trust_domain.to_owned(),
        servers: servers.clone(),
        ca_pem: bundle.ca_cert_pem.clone(),
        cert_pem: bundle.admin_cert_pem.clone(),
        key_pem: bundle.admin_key_pem.clone(),
    });
    write_atomic(&dir.labctl_config(), config.render().as_bytes(), PRIVATE)?;
    Ok(servers)
}

/// `init --store etcd://…`: seals the CA and the admin identity under `<prefix>ca`, records
/// `advertise`, writes `DIR/join.key` and rewrites `DIR/labctl.toml` with the coordinators.
pub async fn publish(
    dir: &DataDir,
    etcd: &EtcdOptions,
    advertise: &str,
    ca: &Ca,
    ca_key_pem: &str,
    admin: &Context,
) -> anyhow::Result<()> {
    let raw = RawKeys::new(etcd)?;
    let identity = age::x25519::Identity::generate();
    let bundle = Bundle {
        version: BUNDLE_VERSION,
        trust_domain: admin.name.clone(),
        ca_cert_pem: ca.cert_pem().to_owned(),
        ca_key_pem: ca_key_pem.to_owned(),
        admin_cert_pem: admin.cert_pem.clone(),
        admin_key_pem: admin.key_pem.clone(),
    };
    let sealed = age::encrypt(&identity.to_public(), &serde_json::to_vec(&bundle)?)
        .map_err(|e| anyhow::anyhow!("cannot encrypt the CA for etcd: {e}"))?;
    if !raw.create(CA_KEY, sealed).await? {
        return Err(UsageError(format!(
            "prefix {} of {} already has a fleet CA; use another --etcd-prefix, or add this machine with 'lab-coordinator join'",
            etcd.prefix,
            etcd.url()
        ))
        .into());
    }
    write_atomic(
        &dir.join_key(),
        join_key_text(&identity, etcd).as_bytes(),
        PRIVATE,
    )?;
    raw.add_coordinator(&CoordinatorEntry {
        advertise: advertise.to_owned(),
        joined_unix: now_unix(),
    })
    .await?;
    write_labctl(dir, &raw, &bundle.trust_domain, &bundle).await?;
    Ok(())
}

/// `lab-coordinator join`: makes `opts.data_dir` a coordinator of the fleet on `opts.etcd`;
/// returns every coordinator known so far (as written to `DIR/labctl.toml`). Nothing is
/// written, locally or in etcd, when the key is wrong, the prefix holds no fleet, or the
/// address is taken.
pub async fn join(opts: &JoinOptions) -> anyhow::Result<Vec<String>> {
    let dir = &opts.data_dir;
    let server_names = server_names(&opts.advertise, &opts.extra_sans)?;
    if dir.ca_key().exists() {
        return Err(UsageError(format!(
            "{} already holds a coordinator (ca.key); join a fresh --data-dir, or start this one with 'lab-coordinator serve'",
            dir.root().display()
        ))
        .into());
    }
    let identity = read_join_key(&opts.join_key)?;
    let raw = RawKeys::new(&opts.etcd)?;
    let Some(sealed) = raw.get(CA_KEY).await? else {
        return Err(UsageError(format!(
            "prefix {} of {} holds no fleet: run 'lab-coordinator init --store {}' on the first coordinator, or give the --etcd-prefix it uses",
            opts.etcd.prefix,
            opts.etcd.url(),
            opts.etcd.url()
        ))
        .into());
    };
    let opened = age::decrypt(&identity, &sealed).map_err(|_| {
        UsageError(format!(
            "{} does not open the fleet CA under prefix {} (a join key of another fleet or prefix?); copy DIR/join.key from a coordinator of this fleet",
            opts.join_key.display(),
            opts.etcd.prefix
        ))
    })?;
    let bundle: Bundle = serde_json::from_slice(&opened).map_err(|e| {
        anyhow::anyhow!(
            "the fleet CA under prefix {} is unreadable: {e}",
            opts.etcd.prefix
        )
    })?;
    let ca = Ca::load(&bundle.ca_cert_pem, &bundle.ca_key_pem)?;
    let taken = raw
        .coordinators()
        .await?
        .into_iter()
        .any(|c| c.advertise == opts.advertise);
    if taken {
        return Err(UsageError(format!(
            "{} has already joined this fleet (prefix {}); give this coordinator its own --advertise address",
            opts.advertise, opts.etcd.prefix
        ))
        .into());
    }

    create_private_dir(dir.root())?;
    write_atomic(&dir.ca_key(), bundle.ca_key_pem.as_bytes(), PRIVATE)?;
    write_atomic(&dir.ca_cert(), bundle.ca_cert_pem.as_bytes(), PUBLIC)?;
    write_server_cert(dir, &ca, &server_names)?;
    let settings = Settings {
        trust_domain: bundle.trust_domain.clone(),
        advertise: opts.advertise.clone(),
        server_names,
    };
    settings.save(dir)?;
    write_atomic(
        &dir.join_key(),
        join_key_text(&identity, &opts.etcd).as_bytes(),
        PRIVATE,
    )?;
    let added = raw
        .add_coordinator(&CoordinatorEntry {
            advertise: opts.advertise.clone(),
            joined_unix: now_unix(),
        })
        .await?;
    if !added {
        return Err(UsageError(format!(
            "{} joined this fleet at the same moment from elsewhere; give this coordinator its own --advertise address",
            opts.advertise
        ))
        .into());
    }
    let servers = write_labctl(dir, &raw, &bundle.trust_domain, &bundle).await?;
    dir.adopt_owner()?;
    Ok(servers)
}
