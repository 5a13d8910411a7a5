//! Validation of config and container tasks at submit time, so a wrong spec (unknown kind,
//! bad mode, relative path, absent field) is refused before any node is touched.

use lab_proto::v1::{container_task, resource, ConfigTask, ContainerEnsure, ContainerTask};

use crate::error::ApiError;

fn bad<T>(m: String) -> Result<T, ApiError> {
    Err(ApiError::InvalidArgument(m))
}

/// `path` is non-empty, absolute, without `..` components or NUL; errors start with `what`.
pub(crate) fn absolute(what: &str, path: &str) -> Result<(), ApiError> {
    if path.is_empty() {
        return bad(format!("{what}: path is missing"));
    }
    if !path.starts_with('/') {
        return bad(format!("{what}: path '{path}' must be absolute"));
    }
    if path.split('/').any(|c| c == "..") || path.contains('\0') {
        return bad(format!(
            "{what}: path '{path}' must not contain '..' or NUL"
        ));
    }
    Ok(())
}

/// Parses an octal file mode ("0644", "644", "1777").
pub fn parse_mode(mode: &str) -> Option<u32> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
}

fn plain_name(what: &str, field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+@:".contains(&b));
    if ok {
        Ok(())
    } else {
        bad(format!(
            "{what}: {field} '{value}' is missing or has characters outside a-z, 0-9 and -_.+@:"
        ))
    }
}

/// Checks every resource of a config task.
pub fn validate_config(config: &ConfigTask) -> Result<(), ApiError> {
    if config.resources.is_empty() {
        return bad("config task has no resources".into());
    }
    for (i, r) in config.resources.iter().enumerate() {
        let at = |kind: &str| format!("resources[{i}] ({kind})");
        match &r.kind {
            None => return bad(format!("resources[{i}]: no resource kind; use file, package, service, nixosRebuild or command")),
            Some(resource::Kind::File(f)) => {
                absolute(&at("file"), &f.path)?;
                if !f.mode.is_empty() && parse_mode(&f.mode).is_none() {
                    return bad(format!("{}: mode '{}' is not an octal mode like 0644", at("file"), f.mode));
                }
                for (field, v) in [("owner", &f.owner), ("group", &f.group)] {
                    if !v.is_empty() {
                        plain_name(&at("file"), field, v)?;
                    }
                }
                if let Some(from) = &f.content_from {
                    let at = format!("resources[{i}].file.contentFrom");
                    if !f.content.is_empty() || f.template {
                        return bad(format!("{at}: give content or contentFrom, not both (and no template)"));
                    }
                    if f.state == lab_proto::v1::Presence::Absent as i32 {
                        return bad(format!("{at}: a file with state absent has no content"));
                    }
                    super::spec_secrets::value_from(&at, from)?;
                }
            }
            Some(resource::Kind::Package(p)) => plain_name(&at("package"), "name", &p.name)?,
            Some(resource::Kind::Service(s)) => {
                plain_name(&at("service"), "unit", &s.unit)?;
                if s.state == 0 && s.enabled.is_none() {
                    return bad(format!("{}: give a state, enabled, or both", at("service")));
                }
            }
            Some(resource::Kind::NixosRebuild(n)) => {
                if let Err(e) = lab_proto::nixos::validate(n) {
                    return bad(format!("{}: {e}", at("nixosRebuild")));
                }
            }
            Some(resource::Kind::Command(c)) => {
                if c.argv.first().is_none_or(|a| a.is_empty()) {
                    return bad(format!("{}: argv is missing", at("command")));
                }
                if !c.creates.is_empty() {
                    absolute(&format!("{} creates", at("command")), &c.creates)?;
                }
                if !c.cwd.is_empty() {
                    absolute(&format!("{} cwd", at("command")), &c.cwd)?;
                }
                super::spec_secrets::env_from(
                    &format!("resources[{i}].command.envFrom"),
                    &c.env,
                    &c.env_from,
                )?;
            }
        }
    }
    Ok(())
}

fn validate_ensure(e: &ContainerEnsure) -> Result<(), ApiError> {
    plain_name("container ensure", "name", &e.name)?;
    if e.image.is_empty() {
        return bad("container ensure: image is missing".into());
    }
    for p in &e.ports {
        let spec = p
            .strip_suffix("/udp")
            .or_else(|| p.strip_suffix("/tcp"))
            .unwrap_or(p);
        let ok = spec
            .split_once(':')
            .is_some_and(|(h, c)| h.parse::<u16>().is_ok() && c.parse::<u16>().is_ok());
        if !ok {
            return bad(format!(
                "container ensure: port '{p}' is not HOST:CONTAINER[/udp]"
            ));
        }
    }
    for v in &e.volumes {
        if v.split(':').count() < 2 || !v.split(':').nth(1).is_some_and(|c| c.starts_with('/')) {
            return bad(format!(
                "container ensure: volume '{v}' is not SOURCE:/container/path[:ro]"
            ));
        }
    }
    Ok(())
}

/// Checks a container task.
pub fn validate_container(c: &ContainerTask) -> Result<(), ApiError> {
    if !c.socket.is_empty() {
        absolute("container socket", &c.socket)?;
    }
    match &c.action {
        None => bad(
            "container task has no action; use ensure, stop, remove, pull, restart or logs".into(),
        ),
        Some(container_task::Action::Ensure(e)) => validate_ensure(e),
        Some(
            container_task::Action::Stop(r)
            | container_task::Action::Remove(r)
            | container_task::Action::Restart(r),
        ) => plain_name("container", "name", &r.name),
        Some(container_task::Action::Logs(l)) => plain_name("container logs", "name", &l.name),
        Some(container_task::Action::Pull(i)) => {
            if i.image.is_empty() {
                bad("container pull: image is missing".into())
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{FileResource, Resource, ServiceResource};

    fn file(path: &str, mode: &str) -> ConfigTask {
        ConfigTask {
            resources: vec![Resource {
                kind: Some(resource::Kind::File(FileResource {
                    path: path.into(),
                    mode: mode.into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            check: false,
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("1777"), Some(0o1777));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        for bad in ["", "0999", "rw-r--r--", "77777"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn wrong_resources_are_refused() {
        assert!(validate_config(&file("/etc/motd", "0644")).is_ok());
        assert!(validate_config(&file("etc/motd", "0644")).is_err());
        assert!(validate_config(&file("/etc/../motd", "")).is_err());
        assert!(validate_config(&file("/etc/motd", "999")).is_err());
        assert!(validate_config(&ConfigTask::default()).is_err());
        let unknown = ConfigTask {
            resources: vec![Resource::default()],
            check: false,
        };
        assert!(validate_config(&unknown).is_err());
        let service = ConfigTask {
            resources: vec![Resource {
                kind: Some(resource::Kind::Service(ServiceResource {
                    unit: "nginx.service".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            check: false,
        };
        assert!(
            validate_config(&service).is_err(),
            "a service needs a state or enabled"
        );
    }

    #[test]
    fn container_ports_and_volumes() {
        let ensure = |ports: &[&str], volumes: &[&str]| ContainerTask {
            socket: String::new(),
            action: Some(container_task::Action::Ensure(ContainerEnsure {
                name: "web".into(),
                image: "busybox:lab".into(),
                ports: ports.iter().map(|s| s.to_string()).collect(),
                volumes: volumes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })),
        };
        assert!(validate_container(&ensure(&["8080:80", "53:53/udp"], &["/srv:/data:ro"])).is_ok());
        assert!(validate_container(&ensure(&["80"], &[])).is_err());
        assert!(validate_container(&ensure(&[], &["relative"])).is_err());
        assert!(validate_container(&ContainerTask::default()).is_err());
    }
}
