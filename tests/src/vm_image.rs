//! The Debian 12 disk image the VM tests boot: a `debootstrap --variant=minbase` root filesystem
//! with Debian's cloud kernel, systemd and cloud-init, written into a raw ext4 image with
//! `mkfs.ext4 -d` (no loop mount), plus the kernel and initrd for QEMU's direct kernel boot (no
//! bootloader). Like a Debian cloud image it has no labfleet package: cloud-init installs that.
//!
//! Built once per machine into `/var/tmp/labfleet-e2e-vm-HASH/`, where HASH covers everything
//! that goes into the image, so a changed package list or tweak builds a new image (and removes
//! the old ones) instead of reusing a stale one. The VMs boot it with `snapshot=on`, so the
//! cached image never changes. Concurrent test processes wait on a lock file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use crate::systemd_host::{debootstrap, machine_lock, run_ok, SUITE};

/// Packages debootstrap adds to `minbase`: the cloud kernel flavour (virtio drivers, a third of
/// the generic kernel's size), systemd as init, cloud-init, and what the coordinator VM's
/// user-data uses (`ip`, `curl`) and the lab-coordinator package's scripts need.
/// `python3-cffi-backend` is named because debootstrap does not resolve the virtual packages
/// python3-cryptography (a cloud-init dependency) depends on.
pub const INCLUDE: &[&str] = &[
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "dbus",
    "cloud-init",
    "python3-cffi-backend",
    "iproute2",
    "curl",
    "procps",
    "adduser",
    "passwd",
];

/// Size of the root filesystem (the raw file is sparse).
const DISK_BYTES: u64 = 2 << 30;

/// Shell run on the fresh root filesystem (`$1`) before it becomes the image: no apt sources
/// (apt installs the downloaded .deb only), a machine id made at boot, no caches, docs or
/// translations; a system locale (as cloud images have, so cloud-init does not generate one);
/// cloud-init looks for a NoCloud seed only; systemd-networkd brings up the network cloud-init
/// configures; and the test rig's export unit (below).
const TWEAKS: &str = r#"set -e
root="$1"
: > "$root/etc/apt/sources.list"
: > "$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
echo LANG=C.UTF-8 > "$root/etc/default/locale"
echo 'datasource_list: [NoCloud, None]' > "$root/etc/cloud/cloud.cfg.d/90-labfleet-e2e.cfg"
printf '%s\n' "$EXPORT_SCRIPT" > "$root/usr/local/sbin/labfleet-e2e-export"
chmod 0755 "$root/usr/local/sbin/labfleet-e2e-export"
printf '%s\n' "$EXPORT_UNIT" > "$root/etc/systemd/system/labfleet-e2e-export.service"
systemctl --root="$root" enable systemd-networkd.service labfleet-e2e-export.service
"#;

/// The virtio-serial port name the export unit writes to (`/dev/virtio-ports/NAME` in the VM).
pub const EXPORT_PORT: &str = "labfleet.out";

/// Test rig only, not part of the user-data under test: once cloud-init's final stage is over,
/// hand the test what it cannot reach over the network — cloud-init's status, whether the
/// coordinator service is active, its settings and the first admin labctl config — as a tar
/// written to a virtio-serial port that QEMU saves to a file on the host.
const EXPORT_SCRIPT: &str = r#"#!/bin/sh
d=$(mktemp -d)
cloud-init status --long > "$d/cloud-init-status" 2>&1
systemctl is-active lab-coordinator.service > "$d/lab-coordinator-active" 2>&1
for f in labctl.toml coordinator.toml; do
  cp /var/lib/lab-coordinator/$f "$d/" 2>/dev/null
done
exec tar -C "$d" -cf /dev/virtio-ports/labfleet.out ."#;

/// The unit that runs [`EXPORT_SCRIPT`] after cloud-init is done.
const EXPORT_UNIT: &str = "[Unit]
Description=labfleet e2e: hand cloud-init's result to the test over virtio-serial
After=cloud-final.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/labfleet-e2e-export

[Install]
WantedBy=cloud-init.target";

/// Prefix of the cache directories in /var/tmp.
const CACHE_PREFIX: &str = "labfleet-e2e-vm-";

/// The built image: paths of its three files.
#[derive(Clone, Debug)]
pub struct Image {
    /// The raw ext4 root filesystem (boot it read-only or with `snapshot=on`).
    pub rootfs: PathBuf,
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
}

impl Image {
    fn in_dir(dir: &Path) -> Image {
        Image {
            rootfs: dir.join("rootfs.raw"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
        }
    }

    fn is_complete(&self) -> bool {
        self.rootfs.is_file() && self.kernel.is_file() && self.initrd.is_file()
    }
}

/// The cache directory name: a hash of what goes into the image.
fn cache_name() -> String {
    use std::hash::{Hash, Hasher};
    // DefaultHasher's algorithm may change between Rust releases; that only costs a rebuild
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        SUITE,
        INCLUDE,
        TWEAKS,
        EXPORT_SCRIPT,
        EXPORT_UNIT,
        DISK_BYTES,
    )
        .hash(&mut h);
    format!("{CACHE_PREFIX}{:016x}", h.finish())
}

/// Makes sure the image exists, building it the first time (once per machine).
pub fn ensure_image() -> Result<Image, String> {
    static IMAGE: OnceLock<Result<Image, String>> = OnceLock::new();
    IMAGE.get_or_init(build_image_once).clone()
}

fn build_image_once() -> Result<Image, String> {
    let cache = Path::new("/var/tmp");
    let dir = cache.join(cache_name());
    let image = Image::in_dir(&dir);
    if image.is_complete() {
        return Ok(image);
    }
    let _lock = machine_lock("labfleet-e2e-vm.lock")?;
    if image.is_complete() {
        return Ok(image); // another test process built it while we waited
    }
    let started = Instant::now();
    build_image(cache, &dir)?;
    eprintln!(
        "built the VM image {} in {:.0?} (once per machine)",
        dir.display(),
        started.elapsed()
    );
    remove_stale(cache, &dir);
    Ok(image)
}

/// debootstrap and tweak in a scratch directory, copy out kernel and initrd, `mkfs.ext4 -d`, then
/// rename the finished directory into place (so a half-built image is never found).
fn build_image(cache: &Path, dir: &Path) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix("labfleet-vm-build-")
        .tempdir_in(cache)
        .map_err(|e| format!("cannot make a scratch dir in {}: {e}", cache.display()))?;
    let root = scratch.path().join("root");
    debootstrap(INCLUDE, &root)?;
    run_ok(
        Command::new("sh")
            .args(["-c", TWEAKS, "tweaks"])
            .arg(&root)
            .env("EXPORT_SCRIPT", EXPORT_SCRIPT)
            .env("EXPORT_UNIT", EXPORT_UNIT),
        "VM image tweaks",
    )?;
    let out = scratch.path().join("image");
    std::fs::create_dir(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let image = Image::in_dir(&out);
    copy_boot_file(&root, "vmlinuz-", &image.kernel)?;
    copy_boot_file(&root, "initrd.img-", &image.initrd)?;
    std::fs::File::create(&image.rootfs)
        .and_then(|f| f.set_len(DISK_BYTES))
        .map_err(|e| format!("cannot create {}: {e}", image.rootfs.display()))?;
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "labfleet-root", "-d"])
            .arg(&root)
            .arg(&image.rootfs),
        "mkfs.ext4 -d (apt-get install e2fsprogs)",
    )?;
    std::fs::rename(&out, dir)
        .map_err(|e| format!("cannot move the image to {}: {e}", dir.display()))
}

/// Copies the one `/boot/PREFIX*` file of the root filesystem to `dest`.
fn copy_boot_file(root: &Path, prefix: &str, dest: &Path) -> Result<(), String> {
    let boot = root.join("boot");
    let found: Vec<PathBuf> = std::fs::read_dir(&boot)
        .map_err(|e| format!("cannot read {}: {e}", boot.display()))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    match found.as_slice() {
        [src] => std::fs::copy(src, dest)
            .map(|_| ())
            .map_err(|e| format!("cannot copy {}: {e}", src.display())),
        _ => Err(format!(
            "expected one {prefix}* in {}, found {found:?}",
            boot.display()
        )),
    }
}

/// Removes images of other hashes (built before a change to the image).
fn remove_stale(cache: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e.file_name().to_string_lossy().starts_with(CACHE_PREFIX) && e.path() != keep;
        if stale {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
