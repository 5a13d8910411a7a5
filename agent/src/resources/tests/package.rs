//! Package resources against the machine's real dpkg and apt. The install/remove cycle uses a
//! tiny package the test builds itself (`dpkg-deb --build`), so it needs no network.

use std::process::Command;

use lab_proto::v1::{PackageResource, PackageState};

use super::*;
use crate::resources::package::{NIXOS_MESSAGE, UNSUPPORTED_MESSAGE};

const TEST_PKG: &str = "lab-agent-testpkg";

fn pkg(name: &str, state: PackageState) -> Resource {
    res(resource::Kind::Package(PackageResource {
        name: name.into(),
        state: state as i32,
    }))
}

/// Purges the test package when dropped, whatever the test did.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", TEST_PKG]).output();
    }
}

/// Builds `lab-agent-testpkg_1.0_all.deb` in `dir`.
fn build_deb(dir: &Path) -> PathBuf {
    let root = dir.join("pkgroot");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/lab-agent-testpkg")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {TEST_PKG}\nVersion: 1.0\nArchitecture: all\nMaintainer: labfleet <lab@example.invalid>\n\
             Description: labfleet agent test package\n"
        ),
    )
    .unwrap();
    std::fs::write(root.join("usr/share/lab-agent-testpkg/hello"), "hello\n").unwrap();
    let deb = dir.join(format!("{TEST_PKG}_1.0_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb: {out:?}");
    deb
}

#[tokio::test]
async fn check_mode_queries_dpkg() {
    let got = one(true, pkg("dpkg", PackageState::Installed)).await;
    assert_status(&got, Status::Unchanged);
    assert!(got.message.starts_with("installed 1."), "{got:?}");

    let got = one(
        true,
        pkg("lab-agent-no-such-package", PackageState::Installed),
    )
    .await;
    assert_status(&got, Status::Changed);
    assert!(got.message.starts_with("would install"), "{got:?}");
    assert_eq!(got.diff, "install lab-agent-no-such-package");

    let got = one(true, pkg("lab-agent-no-such-package", PackageState::Absent)).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Unchanged, "not installed")
    );
}

#[tokio::test]
async fn install_state_and_removal_of_a_local_package() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());
    let _purge = Purge;
    // apt cannot install a package it has no source for: a clear failure.
    let got = one(false, pkg(TEST_PKG, PackageState::Installed)).await;
    assert_status(&got, Status::Failed);
    assert!(got.message.contains("Unable to locate package"), "{got:?}");

    let out = Command::new("apt-get")
        .args(["install", "-y"])
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apt-get install {}: {out:?}",
        deb.display()
    );

    let got = one(false, pkg(TEST_PKG, PackageState::Installed)).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Unchanged, "installed 1.0")
    );
    // latest, in check mode (no apt-get update): the installed version is apt's candidate
    let got = one(true, pkg(TEST_PKG, PackageState::Latest)).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Unchanged, "installed 1.0 (latest)")
    );

    let got = one(true, pkg(TEST_PKG, PackageState::Absent)).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Changed, "would remove 1.0")
    );
    assert!(std::path::Path::new("/usr/share/lab-agent-testpkg/hello").exists());

    let (report, out) = run(false, vec![pkg(TEST_PKG, PackageState::Absent)]).await;
    let got = &report.resources[0].report;
    assert_eq!(
        (got.status, got.diff.as_str(), got.message.as_str()),
        (Status::Changed, "remove lab-agent-testpkg 1.0", "removed")
    );
    assert!(
        out.contains("Removing lab-agent-testpkg"),
        "apt output is streamed: {out}"
    );
    assert!(!std::path::Path::new("/usr/share/lab-agent-testpkg/hello").exists());

    let got = one(false, pkg(TEST_PKG, PackageState::Absent)).await;
    assert_status(&got, Status::Unchanged);
}

#[tokio::test]
async fn other_systems_are_refused() {
    let nixos = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(nixos.path().join("etc")).unwrap();
    std::fs::write(nixos.path().join("etc/NIXOS"), "").unwrap();
    let (report, _) = run_at(
        nixos.path(),
        false,
        vec![pkg("htop", PackageState::Installed)],
    )
    .await;
    assert_eq!(report.resources[0].report, Report::failed(NIXOS_MESSAGE));

    let bare = tempfile::tempdir().unwrap();
    let (report, _) = run_at(
        bare.path(),
        true,
        vec![pkg("htop", PackageState::Installed)],
    )
    .await;
    assert_eq!(
        report.resources[0].report,
        Report::failed(UNSUPPORTED_MESSAGE)
    );
}
