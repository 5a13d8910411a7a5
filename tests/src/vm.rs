//! A real virtual machine for end-to-end tests: QEMU boots the Debian image of
//! [`crate::vm_image`] (direct kernel boot, virtio disk with `snapshot=on`) with a NoCloud seed
//! ISO (volume `cidata`: the test's `user-data` and a `meta-data`), so cloud-init runs on first
//! boot as in a cloud. User-mode networking forwards one loopback port of the host to the VM's
//! port 7443, and nothing else; the VM reaches the host's loopback as 10.0.2.2.
//!
//! The serial console goes to a log file; a test that panics while a VM runs prints its tail and
//! QEMU's messages when the VM drops, so a failure in CI can be read without rerunning. The
//! image's export unit hands its files back over a virtio-serial port ([`Vm::exported`]).
//!
//! The VM is killed when its [`Vm`] drops, and also when the test process dies by any means: a
//! reaper process in its own session waits for EOF on a pipe only the test process holds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::systemd_host::run_ok;
use crate::vm_image::{Image, EXPORT_PORT};

/// How QEMU runs the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization through /dev/kvm (`-accel kvm -cpu host`).
    Kvm,
    /// QEMU's own binary translation, on machines whose /dev/kvm is not hardware
    /// virtualization (see [`accel`]).
    Tcg,
}

impl Accel {
    fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
            // max: every CPU feature TCG emulates, RDRAND among them (see boot)
            Accel::Tcg => &["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }
}

/// How to run VMs on this machine, or why the VM tests are skipped (no usable /dev/kvm).
///
/// With /dev/kvm backed by hardware virtualization (the kvm_intel or kvm_amd module) the VM
/// runs under KVM. Some sandboxes offer a /dev/kvm without it (e.g. the kvm_pvm module: a
/// software hypervisor that runs an unmodified Debian kernel so slowly that it does not finish
/// booting in ten minutes); there the VM runs under QEMU's TCG, which boots the same image in
/// seconds to minutes. `LAB_VM_ACCEL=kvm` or `tcg` overrides the choice.
pub fn accel() -> Result<Accel, String> {
    match std::env::var("LAB_VM_ACCEL").as_deref() {
        Ok("kvm") => return Ok(Accel::Kvm),
        Ok("tcg") => return Ok(Accel::Tcg),
        Ok("") | Err(_) => {}
        Ok(other) => panic!("LAB_VM_ACCEL is '{other}'; use kvm, tcg, or leave it unset"),
    }
    let kvm = Path::new("/dev/kvm");
    if !kvm.exists() {
        return Err("this machine has no /dev/kvm".into());
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(kvm) {
        return Err(format!("/dev/kvm is not usable here: {e}"));
    }
    let hardware = ["kvm_intel", "kvm_amd"]
        .iter()
        .any(|m| Path::new("/sys/module").join(m).exists());
    Ok(if hardware { Accel::Kvm } else { Accel::Tcg })
}

/// What to boot.
pub struct VmSpec<'a> {
    /// The image.
    pub image: &'a Image,
    /// KVM or TCG.
    pub accel: Accel,
    /// The NoCloud `user-data`.
    pub user_data: &'a str,
    /// The VM's host name (NoCloud `meta-data`).
    pub hostname: &'a str,
    /// The host's loopback port forwarded to the VM's port 7443.
    pub port: u16,
}

/// A running VM, killed when dropped.
pub struct Vm {
    dir: tempfile::TempDir,
    qemu: Child,
    reaper: Child,
    /// Kept open until the VM is gone; its EOF tells the reaper to kill QEMU.
    reaper_pipe: Option<ChildStdin>,
    started: Instant,
}

/// Memory of the VM in MiB.
const MEMORY_MIB: u32 = 1024;

impl Vm {
    /// Writes the seed ISO and starts QEMU; returns at once (poll with [`Vm::wait_until`]).
    pub fn boot(spec: &VmSpec<'_>) -> Result<Vm, String> {
        let dir = tempfile::Builder::new()
            .prefix("labfleet-vm-")
            .tempdir_in("/var/tmp")
            .map_err(|e| format!("cannot make a VM dir in /var/tmp: {e}"))?;
        let seed = write_seed(dir.path(), spec)?;
        let qemu_log = File::create(dir.path().join("qemu.log"))
            .map_err(|e| format!("cannot create qemu.log: {e}"))?;
        let qemu_err = qemu_log.try_clone().map_err(|e| format!("qemu.log: {e}"))?;
        let p = |name: &str| dir.path().join(name).display().to_string();
        let started = Instant::now();
        let mut qemu = Command::new("qemu-system-x86_64")
            .args(["-name", "labfleet-e2e", "-nodefaults", "-display", "none"])
            .args(["-no-reboot", "-smp", "2", "-m", &MEMORY_MIB.to_string()])
            .args(spec.accel.qemu_args())
            .arg("-kernel")
            .arg(&spec.image.kernel)
            .arg("-initrd")
            .arg(&spec.image.initrd)
            .args(["-append", "root=/dev/vda rw console=ttyS0 panic=-1"])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,snapshot=on",
                spec.image.rootfs.display()
            ))
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,readonly=on",
                seed.display()
            ))
            .arg("-netdev")
            .arg(format!(
                "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:7443",
                spec.port
            ))
            .args(["-device", "virtio-net-pci,netdev=net0"])
            // entropy from the host: without a hardware RNG the guest kernel's jitter entropy
            // loop can stall boot for many minutes under TCG on a busy host
            .args(["-device", "virtio-rng-pci"])
            .args(["-device", "virtio-serial-pci", "-chardev"])
            .arg(format!("file,id=export,path={}", p("export.tar")))
            .arg("-device")
            .arg(format!("virtserialport,chardev=export,name={EXPORT_PORT}"))
            .arg("-serial")
            .arg(format!("file:{}", p("serial.log")))
            .stdin(Stdio::null())
            .stdout(qemu_log)
            .stderr(qemu_err)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run qemu-system-x86_64: {e}; the VM test needs it \
                     (apt-get install qemu-system-x86; .ci/run installs it)"
                )
            })?;
        let reaper = Command::new("setsid")
            .args([
                "sh",
                "-c",
                "cat >/dev/null; kill -9 \"$1\" 2>/dev/null",
                "reaper",
            ])
            .arg(qemu.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut reaper = match reaper {
            Ok(r) => r,
            Err(e) => {
                let _ = qemu.kill();
                let _ = qemu.wait();
                return Err(format!("cannot start the VM reaper: {e}"));
            }
        };
        Ok(Vm {
            reaper_pipe: reaper.stdin.take(),
            dir,
            qemu,
            reaper,
            started,
        })
    }

    /// Time since QEMU started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The serial console so far (escape sequences removed).
    pub fn serial(&self) -> String {
        let raw = std::fs::read(self.dir.path().join("serial.log")).unwrap_or_default();
        strip_escapes(&String::from_utf8_lossy(&raw))
    }

    /// QEMU's own messages, and the last lines of the serial console: for failure messages.
    pub fn diagnostics(&self) -> String {
        let qemu = std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default();
        let serial = self.serial();
        let lines: Vec<&str> = serial.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        format!(
            "--- qemu ({}):\n{qemu}--- serial console, last 80 lines ({}):\n{tail}",
            self.dir.path().join("qemu.log").display(),
            self.dir.path().join("serial.log").display()
        )
    }

    /// The directory of files the image's export unit sent, once it has sent a complete tar
    /// (it does once cloud-init is done); `None` until then.
    pub fn exported(&self) -> Option<PathBuf> {
        let tar = self.dir.path().join("export.tar");
        if std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0) == 0 {
            return None;
        }
        let dest = self.dir.path().join("export");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir(&dest).ok()?;
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&dest)
                .arg("-xf")
                .arg(&tar),
            "tar -x",
        )
        .ok()
        .map(|_| dest)
    }

    /// Polls `cond` every 200 ms until it holds; panics when `timeout` passes or QEMU exits
    /// first (dropping the VM then prints its diagnostics).
    pub fn wait_until(&mut self, mut cond: impl FnMut(&Vm) -> bool, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if let Ok(Some(status)) = self.qemu.try_wait() {
                panic!("the VM stopped ({status}) while waiting for: {what}");
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for: {what}"
            );
            std::thread::sleep(Duration::from_millis(200)); // sleep-ok: polling interval
        }
    }
}

/// Writes `user-data` and `meta-data` and makes the NoCloud seed ISO of them; returns its path.
fn write_seed(dir: &Path, spec: &VmSpec<'_>) -> Result<PathBuf, String> {
    let seed = dir.join("seed");
    let meta = format!(
        "instance-id: {}-{}\nlocal-hostname: {}\n",
        spec.hostname,
        std::process::id(),
        spec.hostname
    );
    std::fs::create_dir(&seed)
        .and_then(|()| std::fs::write(seed.join("user-data"), spec.user_data))
        .and_then(|()| std::fs::write(seed.join("meta-data"), meta))
        .map_err(|e| format!("cannot write the seed files: {e}"))?;
    let iso = dir.join("seed.iso");
    run_ok(
        Command::new("genisoimage")
            .args(["-quiet", "-volid", "cidata", "-joliet", "-rock", "-output"])
            .arg(&iso)
            .arg(seed.join("user-data"))
            .arg(seed.join("meta-data")),
        "genisoimage (apt-get install genisoimage; .ci/run installs it)",
    )?;
    Ok(iso)
}

/// `text` without terminal escape sequences (systemd colours its console status lines).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then one final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the VM at the time of the failure:\n{}", self.diagnostics());
        }
        // the reaper first, so it never signals a reused process id
        let _ = self.reaper.kill();
        let _ = self.reaper.wait();
        self.reaper_pipe.take();
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}
