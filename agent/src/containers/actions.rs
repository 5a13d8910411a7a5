//! The simple container actions: stop, restart, remove, pull and logs, plus the two engine
//! helpers `ensure` shares with them ([`inspect`], [`pull_image`]).
//!
//! Each returns a [`Done`] or the task's error message; none changes anything but the named
//! container or image.

use std::pin::pin;

use bollard::container::LogOutput;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, InspectContainerOptions, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use lab_proto::v1::OutputStream;
use tokio_stream::StreamExt;

use super::engine::{describe, is_not_found, short_id};
use super::{progress, Done, Emit};

/// The container named `name`, or `None` when there is none.
pub(crate) async fn inspect(
    docker: &Docker,
    name: &str,
) -> Result<Option<ContainerInspectResponse>, String> {
    match docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
    {
        Ok(found) => Ok(Some(found)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(format!(
            "cannot inspect container '{name}': {}",
            describe(&e)
        )),
    }
}

async fn existing(docker: &Docker, name: &str) -> Result<ContainerInspectResponse, String> {
    inspect(docker, name)
        .await?
        .ok_or_else(|| format!("no container named '{name}'"))
}

/// The container is running (or paused, which the engine counts as running).
pub(crate) fn running(container: &ContainerInspectResponse) -> bool {
    container
        .state
        .as_ref()
        .and_then(|s| s.running)
        .unwrap_or(false)
}

/// Stops `name`; unchanged when it is not running.
pub(crate) async fn stop(docker: &Docker, name: &str, emit: &mut Emit<'_>) -> Result<Done, String> {
    let container = existing(docker, name).await?;
    let id = container.id.clone().unwrap_or_default();
    if !running(&container) {
        return Ok(Done::unchanged(id, "already stopped"));
    }
    progress(emit, &format!("stopping container {name}"));
    docker
        .stop_container(name, None::<StopContainerOptions>)
        .await
        .map_err(|e| format!("cannot stop container '{name}': {}", describe(&e)))?;
    Ok(Done::changed(id, "stopped"))
}

/// Restarts `name` (starts it when stopped).
pub(crate) async fn restart(
    docker: &Docker,
    name: &str,
    emit: &mut Emit<'_>,
) -> Result<Done, String> {
    let container = existing(docker, name).await?;
    progress(emit, &format!("restarting container {name}"));
    docker
        .restart_container(name, None::<RestartContainerOptions>)
        .await
        .map_err(|e| format!("cannot restart container '{name}': {}", describe(&e)))?;
    Ok(Done::changed(container.id.unwrap_or_default(), "restarted"))
}

/// Removes `name` (killing it if it runs); unchanged when there is none.
pub(crate) async fn remove(
    docker: &Docker,
    name: &str,
    emit: &mut Emit<'_>,
) -> Result<Done, String> {
    let Some(container) = inspect(docker, name).await? else {
        return Ok(Done::unchanged("", "already absent"));
    };
    let id = container.id.unwrap_or_default();
    progress(emit, &format!("removing container {name}"));
    let force = RemoveContainerOptionsBuilder::new().force(true).build();
    match docker.remove_container(name, Some(force)).await {
        Ok(()) => Ok(Done::changed(id, "removed")),
        Err(e) if is_not_found(&e) => Ok(Done::unchanged(id, "already absent")),
        Err(e) => Err(format!(
            "cannot remove container '{name}': {}",
            describe(&e)
        )),
    }
}

/// Pulls `image`; changed when the image id is new.
pub(crate) async fn pull(
    docker: &Docker,
    image: &str,
    emit: &mut Emit<'_>,
) -> Result<Done, String> {
    let before = image_id(docker, image).await?;
    progress(emit, &format!("pulling image {image}"));
    pull_image(docker, image)
        .await
        .map_err(|reason| format!("cannot pull image '{image}': {reason}"))?;
    let after = image_id(docker, image).await?.unwrap_or_default();
    if before.as_deref() == Some(after.as_str()) {
        Ok(Done::unchanged(
            "",
            format!("image '{image}' is up to date ({})", short_id(&after)),
        ))
    } else {
        Ok(Done::changed(
            "",
            format!("pulled image '{image}' ({})", short_id(&after)),
        ))
    }
}

async fn image_id(docker: &Docker, image: &str) -> Result<Option<String>, String> {
    match docker.inspect_image(image).await {
        Ok(found) => Ok(found.id),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(format!("cannot inspect image '{image}': {}", describe(&e))),
    }
}

/// `(fromImage, tag)` for the pull API. Without a tag or digest the engine would pull every
/// tag of the repository, so the tag defaults to `latest` as the CLIs do.
pub(crate) fn split_reference(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&image[..at], &image[at + 1..])
        }
        None => (image, "latest"),
    }
}

/// Pulls `image` to the end of the engine's progress stream; the error is the engine's reason.
pub(crate) async fn pull_image(docker: &Docker, image: &str) -> Result<(), String> {
    let (from_image, tag) = split_reference(image);
    let mut options = CreateImageOptionsBuilder::new().from_image(from_image);
    if !tag.is_empty() {
        options = options.tag(tag);
    }
    let mut stream = pin!(docker.create_image(Some(options.build()), None, None));
    while let Some(item) = stream.next().await {
        item.map_err(|e| describe(&e))?;
    }
    Ok(())
}

/// Sends the last `tail` lines (0 = all) of `name`'s stdout and stderr through `emit`.
pub(crate) async fn logs(
    docker: &Docker,
    name: &str,
    tail: u32,
    emit: &mut Emit<'_>,
) -> Result<Done, String> {
    let container = existing(docker, name).await?;
    let tail = if tail == 0 {
        "all".to_owned()
    } else {
        tail.to_string()
    };
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(false)
        .tail(&tail)
        .build();
    let mut stream = pin!(docker.logs(name, Some(options)));
    let mut lines = 0usize;
    while let Some(item) = stream.next().await {
        let (stream, bytes) = match item {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                (OutputStream::Stdout, message)
            }
            Ok(LogOutput::StdErr { message }) => (OutputStream::Stderr, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(e) => {
                return Err(format!(
                    "cannot read the logs of container '{name}': {}",
                    describe(&e)
                ))
            }
        };
        lines += bytes.iter().filter(|b| **b == b'\n').count();
        emit(stream, bytes.to_vec());
    }
    Ok(Done::unchanged(
        container.id.unwrap_or_default(),
        format!("{lines} lines of logs"),
    ))
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(split_reference("busybox:lab"), ("busybox", "lab"));
        assert_eq!(
            split_reference("localhost:5000/x/y"),
            ("localhost:5000/x/y", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/x/y:1.2"),
            ("localhost:5000/x/y", "1.2")
        );
        assert_eq!(split_reference("x@sha256:abc"), ("x@sha256:abc", ""));
    }
}
