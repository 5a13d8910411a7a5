//! `ensure`: make the named container match the desired configuration, touching it only when
//! needed. The decision ([`difference`]) is pure; the rest is the engine calls around it.
//!
//! Missing image → pull; missing container → create and start; same config-hash label and
//! image → start if stopped, else nothing; anything else → stop, remove, create, start.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;

use super::actions::{inspect, pull_image, running};
use super::engine::{describe, is_not_found, short_id};
use super::spec::{changed_fields, Desired, Restart, FIELDS_LABEL, HASH_LABEL};
use super::{progress, Done, Emit};

/// Runs `ensure` for `desired`.
pub(crate) async fn ensure(
    docker: &Docker,
    desired: &Desired,
    emit: &mut Emit<'_>,
) -> Result<Done, String> {
    let name = desired.name.as_str();
    let image_id = ensure_image(docker, &desired.image, emit).await?;
    let Some(existing) = inspect(docker, name).await? else {
        let id = create_and_start(docker, desired, emit).await?;
        return Ok(Done::changed(id, "created"));
    };
    let id = existing.id.clone().unwrap_or_default();
    let labels = existing.config.as_ref().and_then(|c| c.labels.as_ref());
    match difference(labels, existing.image.as_deref(), desired, &image_id) {
        None if running(&existing) => Ok(Done::unchanged(id, "running")),
        None => {
            progress(emit, &format!("starting container {name}"));
            docker
                .start_container(name, None::<StartContainerOptions>)
                .await
                .map_err(|e| format!("cannot start container '{name}': {}", describe(&e)))?;
            Ok(Done::changed(id, "started"))
        }
        Some(what) => {
            progress(emit, &format!("recreating container {name}: {what}"));
            if running(&existing) {
                docker
                    .stop_container(name, None::<StopContainerOptions>)
                    .await
                    .map_err(|e| format!("cannot stop container '{name}': {}", describe(&e)))?;
            }
            let force = RemoveContainerOptionsBuilder::new().force(true).build();
            match docker.remove_container(name, Some(force)).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(format!(
                        "cannot remove container '{name}' to recreate it: {}",
                        describe(&e)
                    ))
                }
            }
            let id = create_and_start(docker, desired, emit).await?;
            Ok(Done::changed(id, format!("recreated: {what}")))
        }
    }
}

/// Why the existing container does not match, or `None` when it does. `labels` and
/// `container_image` are the existing container's labels and image id; `image_id` is the id the
/// desired image reference has now.
pub(crate) fn difference(
    labels: Option<&HashMap<String, String>>,
    container_image: Option<&str>,
    desired: &Desired,
    image_id: &str,
) -> Option<String> {
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let Some(stored) = label(HASH_LABEL) else {
        return Some("configuration changed (the container was not created by labfleet)".into());
    };
    if stored != desired.config_hash() {
        let fields = changed_fields(label(FIELDS_LABEL).unwrap_or(""), &desired.field_digests());
        return Some(if fields.is_empty() {
            "configuration changed".to_owned()
        } else {
            format!("{} changed", fields.join(", "))
        });
    }
    match container_image {
        // Podman and Docker do not agree on the `sha256:` prefix; compare without it.
        Some(current)
            if !image_id.is_empty()
                && current.trim_start_matches("sha256:")
                    != image_id.trim_start_matches("sha256:") =>
        {
            Some(format!(
                "image changed ({} -> {})",
                short_id(current),
                short_id(image_id)
            ))
        }
        _ => None,
    }
}

/// The id of `image`, pulling it first when it is not there.
async fn ensure_image(docker: &Docker, image: &str, emit: &mut Emit<'_>) -> Result<String, String> {
    match docker.inspect_image(image).await {
        Ok(found) => return Ok(found.id.unwrap_or_default()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(format!("cannot inspect image '{image}': {}", describe(&e))),
    }
    progress(emit, &format!("pulling image {image}"));
    pull_image(docker, image).await.map_err(|reason| {
        format!("image '{image}' not found locally and could not be pulled: {reason}")
    })?;
    match docker.inspect_image(image).await {
        Ok(found) => Ok(found.id.unwrap_or_default()),
        Err(e) => Err(format!(
            "image '{image}' was pulled but cannot be inspected: {}",
            describe(&e)
        )),
    }
}

/// The Engine API body for `desired`.
pub(crate) fn create_body(desired: &Desired) -> ContainerCreateBody {
    let mut port_bindings = PortMap::new();
    for port in &desired.ports {
        let binding = PortBinding {
            host_ip: port.host_ip.clone(),
            host_port: Some(port.host_port.to_string()),
        };
        port_bindings
            .entry(port.container_key())
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    let mut exposed: Vec<String> = port_bindings.keys().cloned().collect();
    exposed.sort();
    let restart = match desired.restart {
        Restart::No => RestartPolicyNameEnum::NO,
        Restart::Always => RestartPolicyNameEnum::ALWAYS,
        Restart::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        Restart::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
    };
    let some_if = |v: Vec<String>| (!v.is_empty()).then_some(v);
    ContainerCreateBody {
        image: Some(desired.image.clone()),
        cmd: some_if(desired.command.clone()),
        env: some_if(desired.env_list()),
        labels: Some(desired.all_labels().into_iter().collect()),
        exposed_ports: some_if(exposed),
        host_config: Some(HostConfig {
            binds: some_if(desired.volumes.iter().map(|v| v.bind()).collect()),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates and starts the container; its id.
async fn create_and_start(
    docker: &Docker,
    desired: &Desired,
    emit: &mut Emit<'_>,
) -> Result<String, String> {
    let name = desired.name.as_str();
    progress(
        emit,
        &format!("creating container {name} from {}", desired.image),
    );
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    let created = docker
        .create_container(Some(options), create_body(desired))
        .await
        .map_err(|e| format!("cannot create container '{name}': {}", describe(&e)))?;
    progress(emit, &format!("starting container {name}"));
    // A container that cannot start (a port already taken) stays created: the next ensure finds
    // the same config hash and tries to start it again.
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .map_err(|e| {
            format!(
                "container '{name}' was created but cannot start: {}",
                describe(&e)
            )
        })?;
    Ok(created.id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use lab_proto::v1::ContainerEnsure;

    use super::*;

    fn desired(env: &str) -> Desired {
        Desired::try_from(&ContainerEnsure {
            name: "web".into(),
            image: "busybox:lab".into(),
            env: HashMap::from([("A".into(), env.into())]),
            ports: vec!["8080:80".into(), "8081:80".into(), "53:53/udp".into()],
            volumes: vec!["/srv:/srv:ro".into()],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn matching_labels_and_image_are_no_difference() {
        let d = desired("1");
        let labels: HashMap<String, String> = d.all_labels().into_iter().collect();
        assert_eq!(
            difference(Some(&labels), Some("sha256:a"), &d, "sha256:a"),
            None
        );
    }

    #[test]
    fn differences_are_named() {
        let old = desired("1");
        let labels: HashMap<String, String> = old.all_labels().into_iter().collect();
        let new = desired("2");
        assert_eq!(
            difference(Some(&labels), Some("sha256:a"), &new, "sha256:a").as_deref(),
            Some("env changed")
        );
        let mut no_fields = labels.clone();
        no_fields.remove(FIELDS_LABEL);
        assert_eq!(
            difference(Some(&no_fields), Some("sha256:a"), &new, "sha256:a").as_deref(),
            Some("configuration changed")
        );
        assert!(difference(None, Some("sha256:a"), &new, "sha256:a")
            .unwrap()
            .contains("not created by labfleet"));
        assert_eq!(
            difference(Some(&labels), Some("sha256:aaa"), &old, "sha256:bbb").as_deref(),
            Some("image changed (aaa -> bbb)")
        );
    }

    #[test]
    fn body_has_ports_volumes_restart_and_labels() {
        let body = create_body(&desired("1"));
        let host = body.host_config.unwrap();
        let ports = host.port_bindings.unwrap();
        assert_eq!(ports["80/tcp"].as_ref().unwrap().len(), 2);
        assert_eq!(
            ports["53/udp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("53")
        );
        assert_eq!(body.exposed_ports.unwrap(), vec!["53/udp", "80/tcp"]);
        assert_eq!(host.binds.unwrap(), vec!["/srv:/srv:ro"]);
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(body.env.unwrap(), vec!["A=1"]);
        assert!(body.cmd.is_none());
        assert!(body.labels.unwrap().contains_key(HASH_LABEL));
    }
}
