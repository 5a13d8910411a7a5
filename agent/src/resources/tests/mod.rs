//! Tests of config resources with real files and real processes (the build machine is Debian
//! as root, without systemd as PID 1): helpers here, one file per resource kind.

mod command;
mod file;
mod file_links;
mod package;
mod sequence;

use std::path::{Path, PathBuf};
use std::time::Duration;

use lab_proto::v1::{resource, ConfigTask, Resource};
use tokio_util::sync::CancellationToken;

use super::{apply, ConfigReport, ConfigSpec, Cx, Report, Status};

/// A wire resource of `kind`.
fn res(kind: resource::Kind) -> Resource {
    Resource {
        kind: Some(kind),
        ..Default::default()
    }
}

/// Runs `resources` (wire types, converted as the runner does) under `root`; returns the
/// report and everything written to the task's output.
async fn run_at(root: &Path, check: bool, resources: Vec<Resource>) -> (ConfigReport, String) {
    let spec = ConfigSpec::from(ConfigTask { resources, check });
    let mut out = Vec::new();
    let mut emit = |_stream, data: Vec<u8>| out.extend(data);
    let mut cx = Cx::new(
        check,
        CancellationToken::new(),
        Duration::from_secs(1),
        &mut emit,
    );
    cx.root = root.to_path_buf();
    let report = apply(&spec, &mut cx).await;
    drop(cx);
    (report, String::from_utf8_lossy(&out).into_owned())
}

/// [`run_at`] on this host.
async fn run(check: bool, resources: Vec<Resource>) -> (ConfigReport, String) {
    run_at(Path::new("/"), check, resources).await
}

/// The only resource's report.
async fn one(check: bool, resource: Resource) -> Report {
    let (report, _) = run(check, vec![resource]).await;
    assert_eq!(report.resources.len(), 1);
    report.resources[0].report.clone()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn tmp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn assert_status(r: &Report, status: Status) {
    assert_eq!(r.status, status, "{r:?}");
}
