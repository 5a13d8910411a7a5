//! Unit tests of the debian collector against fixture trees and this machine.

use std::path::Path;

use super::*;
use crate::facts::testutil::{symlink, write};

const STATUS_TEXT: &str = "\
Package: bash
Essential: yes
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 7164
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 Bash also incorporates useful features from the Korn and C shells.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u4

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
Conffiles:
 /etc/timezone 0123456789abcdef

Package: linux-image-amd64
Status: hold ok installed
Architecture: amd64
Version: 6.1.76-1

Package: old-removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: half
Status: install ok half-configured
Architecture: amd64
Version: 1.0-1
";

const MAIN_LIST: &str = "\
Package: bash
Version: 5.2.15-2+b2
Installed-Size: 7164
Architecture: amd64
Description: GNU Bourne Again SHell
Description-md5: 3522aa7b4374048d6450e348a5bb45d9

Package: libc6
Source: glibc
Version: 2.36-9+deb12u4
Architecture: amd64

Package: tzdata
Version: 2024a-0+deb12u1
Architecture: all

Package: linux-image-amd64
Version: 6.1.90-1
Architecture: amd64

Package: not-installed
Version: 9.9
Architecture: amd64
";

const SECURITY_LIST: &str = "\
Package: libc6
Source: glibc
Version: 2.36-9+deb12u7
Architecture: amd64

Package: libc6
Version: 2.36-9+deb12u7
Architecture: i386

Package: bash
Version: 5.2.15-2+b1
Architecture: amd64
";

const BACKPORTS_LIST: &str = "\
Package: tzdata
Version: 2025a-0+deb12u1~bpo1
Architecture: all
";

fn debian_tree(root: &Path) {
    write(root, "var/lib/dpkg/status", STATUS_TEXT);
    let lists = "var/lib/apt/lists";
    write(
        root,
        &format!("{lists}/deb.debian.org_debian_dists_bookworm_InRelease"),
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nSuite: stable\n",
    );
    write(
        root,
        &format!("{lists}/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"),
        MAIN_LIST,
    );
    write(
        root,
        &format!("{lists}/deb.debian.org_debian-security_dists_bookworm-security_InRelease"),
        "Origin: Debian\nSuite: stable-security\n",
    );
    write(
        root,
        &format!(
            "{lists}/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"
        ),
        SECURITY_LIST,
    );
    write(
        root,
        &format!("{lists}/deb.debian.org_debian_dists_bookworm-backports_InRelease"),
        "Origin: Debian Backports\nNotAutomatic: yes\nButAutomaticUpgrades: yes\n",
    );
    write(
        root,
        &format!(
            "{lists}/deb.debian.org_debian_dists_bookworm-backports_main_binary-amd64_Packages"
        ),
        BACKPORTS_LIST,
    );
    // compressed lists are ignored
    write(
        root,
        &format!("{lists}/deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages.lz4"),
        "\u{4}\"M\u{18}",
    );
}

#[test]
fn status_counts_installed_stanzas() {
    let installed = parse_status(STATUS_TEXT);
    let count: usize = installed.values().map(HashMap::len).sum();
    assert_eq!(count, 5, "bash, libc6 twice, tzdata, held kernel");
    assert!(installed["linux-image-amd64"]["amd64"].held);
    assert!(!installed.contains_key("old-removed"));
    assert!(!installed.contains_key("half"));
}

#[test]
fn fixture_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    debian_tree(root);
    write(
        root,
        "run/reboot-required",
        "*** System restart required ***\n",
    );
    write(
        root,
        "run/reboot-required.pkgs",
        "libc6\nlinux-image-6.1.0-18-amd64\nlibc6\n",
    );
    let debian = collect(root).unwrap();
    assert_eq!(debian.packages_installed, 5);
    assert!(debian.reboot_required);
    assert_eq!(
        debian.reboot_required_packages,
        vec!["libc6", "linux-image-6.1.0-18-amd64"]
    );
    let upgradable = debian.upgradable.unwrap();
    // libc6 amd64 and i386 from security; bash's older rebuild, held kernel, backports tzdata
    // and packages that are not installed are not upgrades
    assert_eq!(upgradable.count, 2);
    assert_eq!(
        upgradable.packages,
        vec![
            UpgradablePackage {
                name: "libc6".into(),
                arch: "amd64".into(),
                installed: "2.36-9+deb12u4".into(),
                candidate: "2.36-9+deb12u7".into(),
            },
            UpgradablePackage {
                name: "libc6".into(),
                arch: "i386".into(),
                installed: "2.36-9+deb12u4".into(),
                candidate: "2.36-9+deb12u7".into(),
            },
        ]
    );
}

#[test]
fn list_is_capped_at_fifty() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut status = String::new();
    let mut list = String::new();
    for i in 0..60 {
        status.push_str(&format!(
            "Package: pkg{i:02}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n"
        ));
        list.push_str(&format!(
            "Package: pkg{i:02}\nArchitecture: amd64\nVersion: 1.0-2\n\n"
        ));
    }
    write(root, "var/lib/dpkg/status", &status);
    write(
        root,
        "var/lib/apt/lists/example.org_dists_x_main_binary-amd64_Packages",
        &list,
    );
    let upgradable = collect(root).unwrap().upgradable.unwrap();
    assert_eq!(upgradable.count, 60);
    assert_eq!(upgradable.packages.len(), 50);
    assert_eq!(upgradable.packages[0].name, "pkg00");
    assert_eq!(upgradable.packages[49].name, "pkg49");
}

#[test]
fn var_run_link_and_no_lists() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "var/lib/dpkg/status", STATUS_TEXT);
    // like Debian: /var/run -> /run, resolved inside the root
    symlink(root, "var/run", "/run");
    write(root, "run/reboot-required", "");
    let debian = collect(root).unwrap();
    assert!(debian.reboot_required);
    assert!(debian.reboot_required_packages.is_empty());
    assert_eq!(debian.upgradable, None, "unknown without lists, not zero");
    let json = serde_json::to_value(&debian).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"packages_installed": 5, "reboot_required": true})
    );
}

#[test]
fn not_debian() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(collect(dir.path()), None);
}

#[test]
fn this_machine() {
    // the build machine is Debian 12 with dpkg
    let debian = collect(Path::new("/")).expect("debian area present on this machine");
    assert!(debian.packages_installed > 50);
}
