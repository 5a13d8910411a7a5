//! `labctl user create|list` and `labctl whoami`. A new user's key is made here and never sent;
//! the coordinator signs a CSR and labctl writes a config file for the new user.

use std::path::Path;

use lab_proto::csr::{csr_for_key, new_key_pem};
use lab_proto::ctlconfig::{Context, CtlConfig};
use lab_proto::files::{write_atomic, PRIVATE};
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{CreateUserRequest, ListUsersRequest, Role, WhoAmIRequest};
use serde::Serialize;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};
use crate::output::{self, Format};

/// Parses a role name.
pub fn parse_role(s: &str) -> Result<Role, Failure> {
    match s {
        "viewer" => Ok(Role::Viewer),
        "operator" => Ok(Role::Operator),
        "admin" => Ok(Role::Admin),
        other => Err(Failure::Usage(format!(
            "unknown role '{other}'; use viewer, operator or admin"
        ))),
    }
}

fn role_name(value: i32) -> &'static str {
    match Role::try_from(value) {
        Ok(Role::Viewer) => "viewer",
        Ok(Role::Operator) => "operator",
        Ok(Role::Admin) => "admin",
        _ => "none",
    }
}

/// `labctl user create NAME --role R --out FILE`.
pub async fn create(
    mut client: OperatorServiceClient<Channel>,
    ctx: &Context,
    name: String,
    role: Role,
    out: &Path,
) -> anyhow::Result<()> {
    if out.exists() {
        return Err(
            Failure::Usage(format!("{} exists; choose another --out", out.display())).into(),
        );
    }
    let key_pem = new_key_pem()?;
    let resp = client
        .create_user(CreateUserRequest {
            name: name.clone(),
            role: role as i32,
            csr_pem: csr_for_key(&key_pem)?,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    let config = CtlConfig::single(Context {
        name: format!("{name}@{}", ctx.name),
        coordinator: ctx.coordinator.clone(),
        ca_pem: resp.ca_pem,
        cert_pem: resp.certificate_pem,
        key_pem,
    });
    write_atomic(out, config.render().as_bytes(), PRIVATE)?;
    crate::outln!(
        "user '{name}' ({}) created; their labctl config is {}",
        role_name(role as i32),
        out.display()
    )?;
    Ok(())
}

#[derive(Serialize)]
pub(crate) struct UserView {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) created: Option<String>,
}

/// `labctl user list`.
pub async fn list(
    mut client: OperatorServiceClient<Channel>,
    format: Format,
) -> anyhow::Result<()> {
    let users = client
        .list_users(ListUsersRequest {})
        .await
        .map_err(from_status)?
        .into_inner()
        .users;
    let views: Vec<UserView> = users
        .into_iter()
        .map(|u| UserView {
            role: role_name(u.role),
            created: output::time(u.created_unix_ms),
            name: u.name,
        })
        .collect();
    if output::print_structured(format, &views)? {
        return Ok(());
    }
    crate::outln!("{}", table(&views))?;
    Ok(())
}

/// The `labctl user list` table. Pure.
pub(crate) fn table(users: &[UserView]) -> output::Table<3> {
    let mut table = output::table(["NAME", "ROLE", "CREATED"]);
    for u in users {
        table.row([
            u.name.clone(),
            u.role.to_owned(),
            u.created.clone().unwrap_or_default(),
        ]);
    }
    table
}

/// `labctl whoami`.
pub async fn whoami(mut client: OperatorServiceClient<Channel>) -> anyhow::Result<()> {
    let me = client
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(from_status)?
        .into_inner();
    crate::outln!("{} ({}) {}", me.user, role_name(me.role), me.identity_uri)?;
    Ok(())
}
