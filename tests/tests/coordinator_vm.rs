//! The coordinator as a VM, for real: QEMU boots a Debian 12 image the rig builds
//! (`lab_tests::vm_image`) with a NoCloud seed whose user-data is `deploy/vm/user-data.yaml`
//! with its settings filled in exactly the way `deploy/vm/terraform/main.tf` fills them (plus
//! `LAB_SANS`). cloud-init downloads the lab-coordinator package from this test (the VM reaches
//! the host's loopback as 10.0.2.2), installs it, runs `lab-coordinator init` and starts the
//! service; the VM's port 7443 is forwarded to a loopback port. An agent on the host enrolls
//! through that port and a `labctl run` round trip passes.
//!
//! Needs /dev/kvm: without it this test says so and is skipped (see `lab_tests::vm::accel` for
//! machines whose /dev/kvm is not hardware virtualization). Also needs qemu-system-x86,
//! genisoimage, e2fsprogs, debootstrap (the first run builds the image) and the packages of
//! `deploy/build-packages`; without them it fails saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use lab_tests::file_server::FileServer;
use lab_tests::systemd_fleet::package;
use lab_tests::vm::{accel, Accel, Vm, VmSpec};
use lab_tests::vm_image::ensure_image;
use lab_tests::{free_port, labctl, nodes, stderr, wait_until, Agent};

/// The file under test.
const USER_DATA: &str = include_str!("../../deploy/vm/user-data.yaml");

/// A syntactically valid ed25519 public key (nobody holds its private key).
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN/2gZAbTWOOSGMYb5QvbmY3sxsu7lxFyhIJy4YmTSpX e2e@labfleet";

const TRUST_DOMAIN: &str = "vm.e2e.test";
const SAN: &str = "coordinator.vm.e2e.test";

/// `template` with each `(needle, replacement)` applied; each needle must occur exactly once
/// (the Terraform example relies on the same text).
fn fill(template: &str, edits: &[(&str, String)]) -> String {
    let mut text = template.to_owned();
    for (needle, replacement) in edits {
        assert_eq!(
            text.matches(needle).count(),
            1,
            "deploy/vm/user-data.yaml must hold {needle:?} exactly once (deploy/vm/terraform/main.tf replaces it too)"
        );
        text = text.replace(needle, replacement);
    }
    text
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("the VM did not export {name}: {e}"))
}

#[test]
fn a_coordinator_vm_from_the_cloud_init_user_data_serves_an_agent_on_the_host() {
    let accel = match accel() {
        Ok(a) => a,
        Err(why) => {
            eprintln!("skipped: {why}; the coordinator VM test boots its VM under KVM");
            return;
        }
    };
    if accel == Accel::Tcg {
        eprintln!(
            "/dev/kvm here is not hardware virtualization (no kvm_intel or kvm_amd module), \
             so the VM runs under QEMU's TCG (LAB_VM_ACCEL=kvm forces KVM)"
        );
    }
    let started = Instant::now();
    let image = ensure_image().unwrap_or_else(|e| panic!("building the VM image failed: {e}"));
    let image_ready = started.elapsed();

    let deb = FileServer::serve(&package("lab-coordinator")).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let user_data = fill(
        USER_DATA,
        &[
            (
                "#ssh_authorized_keys: []",
                format!("ssh_authorized_keys: [\"{SSH_KEY}\"]"),
            ),
            (
                "LAB_DEB_URL=\n",
                format!("LAB_DEB_URL={}\n", deb.guest_url()),
            ),
            ("LAB_ADVERTISE=\n", format!("LAB_ADVERTISE={addr}\n")),
            (
                "LAB_TRUST_DOMAIN=lab.local\n",
                format!("LAB_TRUST_DOMAIN={TRUST_DOMAIN}\n"),
            ),
            ("LAB_SANS=\n", format!("LAB_SANS={SAN}\n")),
        ],
    );
    let mut vm = Vm::boot(&VmSpec {
        image: &image,
        accel,
        user_data: &user_data,
        hostname: "lab-coordinator",
        port,
    })
    .unwrap();

    // the image's export unit sends its tar once cloud-init's final stage is over
    vm.wait_until(
        |vm| vm.exported().is_some(),
        Duration::from_secs(15 * 60),
        "cloud-init done in the VM (its export unit sends the admin config)",
    );
    let booted = vm.uptime();
    let export = vm.exported().expect("exported files");
    let status = read(&export, "cloud-init-status");
    assert!(
        status.contains("status: done"),
        "cloud-init did not finish cleanly:\n{status}"
    );
    let serial = vm.serial();
    assert!(
        !serial.contains("Invalid cloud-config provided"),
        "cloud-init found schema errors in the user-data"
    );
    assert!(
        serial.contains(&format!(
            "labfleet: coordinator at {addr}; first admin config: /var/lib/lab-coordinator/labctl.toml"
        )),
        "the setup script did not report the coordinator"
    );
    assert_eq!(deb.downloads(), 1, "the VM downloaded the package once");
    assert_eq!(read(&export, "lab-coordinator-active").trim(), "active");
    let settings = read(&export, "coordinator.toml");
    for want in [
        format!("trust-domain = \"{TRUST_DOMAIN}\""),
        format!("advertise = \"{addr}\""),
        "\"127.0.0.1\"".to_owned(),
        format!("\"{SAN}\""),
    ] {
        assert!(settings.contains(&want), "{want} in:\n{settings}");
    }
    let admin = export.join("labctl.toml");
    assert!(
        read(&export, "labctl.toml").contains(&format!("servers = [\"{addr}\"]")),
        "the admin config dials the advertised address"
    );

    // an agent on the host enrolls through the forwarded port
    let tmp = tempfile::tempdir().unwrap();
    let enrolled_at = Instant::now();
    let out = labctl(&admin, &["token", "create", "--ttl", "10m"]);
    assert!(out.status.success(), "token create: {}", stderr(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut agent = Agent::new("vm-agent", tmp.path());
    let out = agent.enroll_output(&addr, &token);
    assert!(out.status.success(), "enroll: {}", stderr(&out));
    agent.start();
    wait_until(
        || {
            nodes(&admin)
                .iter()
                .any(|n| n["name"] == "vm-agent" && n["online"] == true)
        },
        Duration::from_secs(60),
        "vm-agent online at the VM's coordinator",
    );
    let online = enrolled_at.elapsed();

    let out = labctl(
        &admin,
        &[
            "run",
            "-l",
            "node=vm-agent",
            "--",
            "echo",
            "hello through the VM",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "labctl run: {}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hello through the VM"), "labctl run: {text}");

    eprintln!(
        "coordinator VM ({accel:?}): image ready in {image_ready:.1?}, cloud-init done {booted:.1?} \
         after QEMU started, agent online {online:.1?} after enrolling, {:.1?} in all",
        started.elapsed()
    );
}
