//! Finding the labctl config (`--config`, `LABCTL_CONFIG`, `~/.config/labctl/config.toml`),
//! picking a context, and dialling the coordinator with its operator certificate.
//!
//! A context with several servers is dialled through [`Endpoints`]: each server is asked
//! `WhoAmI` until one serves (a standby names the leader, which is asked next), for up to
//! [`ROUNDS`] rounds with a jittered pause, so a command rides out a failover.

use std::path::{Path, PathBuf};

use lab_proto::client::{operator_client, ConnectOptions};
use lab_proto::ctlconfig::{Context, CtlConfig};
use lab_proto::endpoints::{ctl_backoff, DialError, Endpoints};
use lab_proto::tls::{client_config, ClientIdentity};
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::WhoAmIRequest;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};

/// Rounds over a context's servers before labctl gives up (several servers only; with one,
/// the first answer, or the failure to connect, is final).
pub const ROUNDS: u32 = 4;

/// The default config path.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("labctl").join("config.toml"))
}

/// The config file in use: `path`, or the default.
pub fn config_path(path: Option<&Path>) -> Result<PathBuf, Failure> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None => default_path().ok_or_else(|| {
            Failure::Usage("no labctl config: pass --config FILE or set LABCTL_CONFIG".into())
        }),
    }
}

/// Loads the config at `path` (or the default) and returns the wanted context.
pub fn load(path: Option<&Path>, context: Option<&str>) -> Result<Context, Failure> {
    let path = config_path(path)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::Usage(format!(
            "cannot read labctl config {}: {e}; pass --config FILE, set LABCTL_CONFIG, or run 'labctl dev'",
            path.display()
        ))
    })?;
    let config =
        CtlConfig::parse(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    config
        .context(context)
        .cloned()
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

/// Dials the context's coordinator with its operator identity.
pub async fn dial(ctx: &Context) -> Result<OperatorServiceClient<Channel>, Failure> {
    let identity = ClientIdentity {
        cert_pem: ctx.cert_pem.clone(),
        key_pem: ctx.key_pem.clone(),
    };
    let tls = client_config(&ctx.ca_pem, Some(&identity))
        .map_err(|e| Failure::Usage(format!("context '{}': {e}", ctx.name)))?;
    let mut endpoints = Endpoints::new(ctx.servers.clone())
        .map_err(|e| Failure::Usage(format!("context '{}': {e}", ctx.name)))?;
    let several = endpoints.list().len() > 1;
    let options = ConnectOptions::default();
    let dialled = if several {
        endpoints
            .dial_rounds(
                tls,
                &options,
                ROUNDS,
                &mut ctl_backoff(),
                |channel| async move {
                    operator_client(channel)
                        .who_am_i(WhoAmIRequest {})
                        .await
                        .map(|_| ())
                },
            )
            .await
    } else {
        endpoints.dial(tls, &options, |_| async { Ok(()) }).await
    };
    match dialled {
        Ok(d) => Ok(operator_client(d.channel)),
        Err(DialError::AllFailed(all)) => Err(Failure::Unreachable(all.to_string())),
        Err(DialError::Rejected { status, .. }) => Err(from_status(status)),
    }
}
