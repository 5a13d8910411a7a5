//! Platform facts: os-release, kernel, architecture, hostname, CPU count, memory, boot time and
//! virtualization (detected by [`super::virt`]).

use std::path::Path;

use serde::Serialize;

use super::virt::{self, Virtualization};

/// What kind of machine this is.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Platform {
    /// os-release `ID` (debian, nixos, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// os-release `VERSION_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// os-release `PRETTY_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_pretty: Option<String>,
    /// Kernel release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// CPU architecture (x86_64, aarch64, ...).
    pub arch: String,
    /// Host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Logical CPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u64>,
    /// Total memory in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    /// Boot time, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_time_unix: Option<u64>,
    /// Container, hypervisor or `none` (the source of the derived `virt` label).
    pub virtualization: Virtualization,
}

/// Links are resolved inside `root`: NixOS's `/etc/os-release` is an absolute link into
/// `/etc/static` and the store.
fn read(root: &Path, rel: &str) -> Option<String> {
    super::rootfs::read_trimmed(root, rel)
}

/// Parses os-release text (`KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.replace("\\\"", "\"")))
        })
        .collect()
}

fn meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Collects platform facts under `root`.
pub fn collect(root: &Path) -> Platform {
    let os_release = read(root, "etc/os-release")
        .or_else(|| read(root, "usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let get = |key: &str| {
        os_release
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let cpus = read(root, "proc/cpuinfo")
        .map(|t| t.lines().filter(|l| l.starts_with("processor")).count() as u64)
        .filter(|&n| n > 0);
    Platform {
        os: get("ID"),
        os_version: get("VERSION_ID"),
        os_pretty: get("PRETTY_NAME"),
        kernel: read(root, "proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.to_owned(),
        hostname: read(root, "proc/sys/kernel/hostname").or_else(|| read(root, "etc/hostname")),
        cpus,
        memory_total_bytes: read(root, "proc/meminfo").and_then(|t| meminfo_total(&t)),
        boot_time_unix: read(root, "proc/stat").and_then(|t| boot_time(&t)),
        virtualization: virt::detect(root),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes_and_comments() {
        let parsed = parse_os_release(
            "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\n",
        );
        assert_eq!(
            parsed,
            vec![
                (
                    "PRETTY_NAME".into(),
                    "Debian GNU/Linux 12 (bookworm)".into()
                ),
                ("ID".into(), "debian".into()),
                ("VERSION_ID".into(), "12".into()),
            ]
        );
    }

    #[test]
    fn fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
        std::fs::write(
            root.join("etc/os-release"),
            "ID=nixos\nVERSION_ID=\"24.05\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("proc/meminfo"),
            "MemTotal:       16384 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        std::fs::write(root.join("proc/sys/kernel/hostname"), "nas\n").unwrap();
        let p = collect(root);
        assert_eq!(p.os.as_deref(), Some("nixos"));
        assert_eq!(p.os_version.as_deref(), Some("24.05"));
        assert_eq!(p.memory_total_bytes, Some(16384 * 1024));
        assert_eq!(p.hostname.as_deref(), Some("nas"));
        assert_eq!(p.kernel, None);
        assert_eq!(p.virtualization, Virtualization::BareMetal);
    }

    #[test]
    fn this_machine() {
        let p = collect(Path::new("/"));
        assert!(p.os.is_some(), "no os-release on this machine");
        assert!(p.memory_total_bytes.unwrap_or(0) > 0);
        assert!(p.cpus.unwrap_or(0) > 0);
    }
}
