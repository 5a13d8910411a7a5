//! Test support for the container tests: the real Docker engine at `/run/docker.sock`, a test
//! image built from the static busybox (there is no registry to pull from), container names
//! unique to this test process, and a guard that removes the containers even when a test fails.
//!
//! Missing prerequisites fail the test with what to install; nothing is skipped.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::Docker;
use lab_proto::v1::{ContainerResult, ContainerTask, OutputStream};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

use super::{engine, run_task};

/// The engine socket the tests use.
pub const SOCKET: &str = "/run/docker.sock";
/// Where Debian's `busybox-static` puts the binary.
const BUSYBOX: &str = "/bin/busybox";
/// Repository of the test image.
const REPO: &str = "labfleet-test/busybox";
/// Applets linked in the test image.
const APPLETS: &[&str] = &["sh", "sleep", "echo", "cat", "ls", "httpd", "true"];

/// The socket, or a failure saying what to install.
pub fn socket() -> &'static str {
    assert!(
        Path::new(SOCKET).exists(),
        "no Docker engine socket at {SOCKET}: the container tests need a running Docker engine \
         (apt-get install -y docker.io, then start dockerd)"
    );
    SOCKET
}

/// A client for the test engine.
pub async fn docker() -> Docker {
    match engine::connect(Path::new(socket())).await {
        Ok(docker) => docker,
        Err(e) => panic!("{e}"),
    }
}

/// A container name unique to this test process.
pub fn unique_name(test: &str) -> String {
    format!("labfleet-test-{}-{test}", std::process::id())
}

/// The test image (`labfleet-test/busybox:<digest of the busybox binary>`), imported once per
/// process from a rootfs tar. The tag follows the binary's content, so repeated runs reuse one
/// image instead of piling up new ones, and no test removes it.
pub fn image() -> String {
    static IMAGE: OnceLock<Result<String, String>> = OnceLock::new();
    let built = IMAGE.get_or_init(|| {
        // Its own thread and runtime: this is called from inside #[tokio::test] runtimes.
        std::thread::spawn(build_image)
            .join()
            .unwrap_or_else(|_| Err("building the test image panicked".into()))
    });
    match built {
        Ok(image) => image.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn build_image() -> Result<String, String> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| {
        format!(
            "cannot read {BUSYBOX} ({e}): the container tests build their image from it; \
             install it with 'apt-get install -y busybox-static'"
        )
    })?;
    let tag = hex::encode(&Sha256::digest(&busybox)[..6]);
    let image = format!("{REPO}:{tag}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let docker = docker().await;
        if docker.inspect_image(&image).await.is_ok() {
            return Ok(image);
        }
        let tar = rootfs_tar(&busybox)?;
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(REPO)
            .tag(&tag)
            .build();
        let mut stream = std::pin::pin!(docker.create_image(
            Some(options),
            Some(bollard::body_full(tar.into())),
            None
        ));
        while let Some(item) = stream.next().await {
            item.map_err(|e| format!("importing {image}: {}", engine::describe(&e)))?;
        }
        docker
            .inspect_image(&image)
            .await
            .map_err(|e| format!("{image} missing after import: {e}"))?;
        Ok(image)
    })
}

/// A tar of `bin/busybox` and its applet links, made with the system `tar`.
fn rootfs_tar(busybox: &[u8]) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = dir.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.path().join("rootfs/tmp")).map_err(|e| e.to_string())?;
    std::fs::write(bin.join("busybox"), busybox).map_err(|e| e.to_string())?;
    std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
    }
    let out = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path().join("rootfs"))
        .args(["-cf", "-", "."])
        .output()
        .map_err(|e| format!("running tar: {e}"))?;
    if !out.status.success() {
        return Err(format!("tar: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

/// Removes the named containers when dropped, whether the test passed or not.
pub struct Cleanup(pub Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.0);
        // Its own thread and runtime: Drop runs inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(docker) = engine::connect(Path::new(SOCKET)).await else {
                    return;
                };
                for name in names {
                    let force = RemoveContainerOptionsBuilder::new().force(true).build();
                    let _ = docker.remove_container(&name, Some(force)).await;
                }
            });
        })
        .join();
    }
}

/// What a task run returned and wrote.
pub struct Run {
    /// The result.
    pub result: ContainerResult,
    /// Everything emitted on stdout.
    pub stdout: String,
    /// Everything emitted on stderr.
    pub stderr: String,
}

/// Runs `task`, collecting its output.
pub async fn run(task: ContainerTask) -> Run {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let result = run_task(&task, &mut |stream, bytes: Vec<u8>| match stream {
        OutputStream::Stderr => stderr.extend(bytes),
        _ => stdout.extend(bytes),
    })
    .await;
    Run {
        result,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Polls `check` until it is true, failing with `what` after `timeout`.
pub async fn wait_until<F, Fut>(mut check: F, timeout: Duration, what: &str)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
