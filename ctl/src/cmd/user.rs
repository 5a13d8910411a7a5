//! `labctl user create|list|delete|revoke|set-role|renew`, `labctl login` and `labctl whoami`.
//! A user's key is made here and never sent: the coordinator signs a CSR, and labctl writes a
//! config file for a new user or puts the renewed certificate into the config in use.

use std::path::Path;
use std::time::Duration;

use lab_proto::csr::{csr_for_key, new_key_pem};
use lab_proto::ctlconfig::{Context, CtlConfig};
use lab_proto::files::{write_atomic, PRIVATE};
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{
    CreateUserRequest, DeleteUserRequest, ListUsersRequest, RenewUserRequest, RevokeUserRequest,
    Role, SetUserRoleRequest, WhoAmIRequest,
};
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
    ttl: Duration,
) -> anyhow::Result<()> {
    check_writable(out)?;
    let key_pem = new_key_pem()?;
    let resp = client
        .create_user(CreateUserRequest {
            name: name.clone(),
            role: role as i32,
            csr_pem: csr_for_key(&key_pem)?,
            ttl_seconds: ttl.as_secs(),
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::AlreadyExists => Failure::Failed(format!(
                "user '{name}' already exists; to make them a new config, delete them with 'labctl user delete {name}' and run this again"
            )),
            _ => from_status(s),
        })?
        .into_inner();
    let config = CtlConfig::single(Context {
        name: format!("{name}@{}", ctx.name),
        servers: ctx.servers.clone(),
        ca_pem: resp.ca_pem,
        cert_pem: resp.certificate_pem,
        key_pem,
    });
    write_atomic(out, config.render().as_bytes(), PRIVATE).map_err(|e| {
        Failure::Failed(format!(
            "user '{name}' was created, but their config could not be written to {}: {e}; delete the user with 'labctl user delete {name}' and run this again",
            out.display()
        ))
    })?;
    crate::outln!(
        "user '{name}' ({}) created; their labctl config is {}",
        role_name(role as i32),
        out.display()
    )?;
    Ok(())
}

/// Refuses an `--out` path that exists or whose directory cannot take a new file, before
/// anything is created on the coordinator: a file is created there and removed again.
pub fn check_writable(out: &Path) -> Result<(), Failure> {
    let shown = out.display();
    if out.exists() {
        return Err(Failure::Usage(format!(
            "{shown} exists; choose another --out or remove it"
        )));
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "cannot write {shown}: directory {} does not exist; create it or choose another --out",
            dir.display()
        )));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy())
        .ok_or_else(|| {
            Failure::Usage(format!("--out {shown} must name a file, not a directory"))
        })?;
    let probe = dir.join(format!(".{name}.probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| Failure::Usage(format!("cannot write {shown}: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[derive(Serialize)]
pub(crate) struct UserView {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) created: Option<String>,
    pub(crate) cert_expires: Option<String>,
    pub(crate) revoked: Option<String>,
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
            cert_expires: output::time(u.cert_not_after_unix_ms),
            revoked: output::time(u.revoked_unix_ms),
            name: u.name,
        })
        .collect();
    if output::print_list(format, &views, |v| v.name.clone())? {
        return Ok(());
    }
    crate::outln!("{}", table(&views).fit(format.fit()))?;
    Ok(())
}

/// The `labctl user list` table. Pure.
pub(crate) fn table(users: &[UserView]) -> output::Table<5> {
    let mut table = output::table(["NAME", "ROLE", "CREATED", "CERT EXPIRES", "REVOKED"]);
    for u in users {
        table.row([
            u.name.clone(),
            u.role.to_owned(),
            u.created.clone().unwrap_or_default(),
            u.cert_expires.clone().unwrap_or_else(|| "-".into()),
            u.revoked.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table
}

/// `labctl user delete NAME`.
pub async fn delete(
    mut client: OperatorServiceClient<Channel>,
    name: String,
) -> anyhow::Result<()> {
    let resp = client
        .delete_user(DeleteUserRequest { name: name.clone() })
        .await
        .map_err(from_status)?
        .into_inner();
    crate::outln!(
        "user '{name}' deleted ({} certificates revoked, {} open streams ended)",
        resp.certificates_revoked,
        resp.streams_closed
    )?;
    Ok(())
}

/// `labctl user revoke NAME`.
pub async fn revoke(
    mut client: OperatorServiceClient<Channel>,
    name: String,
) -> anyhow::Result<()> {
    client
        .revoke_user(RevokeUserRequest { name: name.clone() })
        .await
        .map_err(from_status)?;
    crate::outln!("user '{name}' revoked; 'labctl user delete {name}' removes them")?;
    Ok(())
}

/// `labctl user set-role NAME ROLE`.
pub async fn set_role(
    mut client: OperatorServiceClient<Channel>,
    name: String,
    role: Role,
) -> anyhow::Result<()> {
    let user = client
        .set_user_role(SetUserRoleRequest {
            name: name.clone(),
            role: role as i32,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    crate::outln!("user '{name}' is now {}", role_name(user.role))?;
    Ok(())
}

/// `labctl user renew` / `labctl login`: a new key and certificate for this context, written
/// into the config file at `path` (the context keeps its name and coordinator).
pub async fn renew(
    mut client: OperatorServiceClient<Channel>,
    path: &Path,
    ctx: &Context,
    ttl: Duration,
) -> anyhow::Result<()> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("cannot read labctl config {shown}: {e}")))?;
    let mut config =
        CtlConfig::parse(&text).map_err(|e| Failure::Usage(format!("{shown}: {e}")))?;
    let key_pem = new_key_pem()?;
    let resp = client
        .renew_user(RenewUserRequest {
            csr_pem: csr_for_key(&key_pem)?,
            ttl_seconds: ttl.as_secs(),
        })
        .await
        .map_err(from_status)?
        .into_inner();
    let entry = config
        .contexts
        .iter_mut()
        .find(|c| c.name == ctx.name)
        .ok_or_else(|| Failure::Usage(format!("{shown} has no context '{}'", ctx.name)))?;
    entry.cert_pem = resp.certificate_pem;
    entry.key_pem = key_pem;
    entry.ca_pem = resp.ca_pem;
    write_atomic(path, config.render().as_bytes(), PRIVATE).map_err(|e| {
        Failure::Failed(format!(
            "cannot write the renewed certificate to {shown}: {e}; the old certificate stays valid, run this again"
        ))
    })?;
    crate::outln!(
        "certificate of context '{}' renewed until {}; written to {shown}",
        ctx.name,
        output::time(resp.not_after_unix_ms).unwrap_or_default()
    )?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_path_in_a_missing_directory_is_refused_naming_it() {
        let err = check_writable(Path::new("/nonexistent/dave.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/dave.toml"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn an_existing_or_writable_out_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dave.toml");
        check_writable(&out).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "probe removed"
        );
        std::fs::write(&out, "x").unwrap();
        assert!(check_writable(&out)
            .unwrap_err()
            .to_string()
            .contains("exists"));
        assert!(check_writable(dir.path()).is_err());
    }
}
