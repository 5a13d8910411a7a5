//! Package resources, on Debian and Proxmox VE (dpkg + apt).
//!
//! The installed version comes from `dpkg-query -W`; `installed` runs
//! `apt-get install -y --no-install-recommends NAME`, `absent` runs `apt-get remove -y NAME`
//! (configuration files stay, as with apt). `latest` first runs `apt-get update`, then compares
//! the installed version with apt's candidate (`apt-cache policy`) and installs the candidate if
//! they differ; the other states never refresh the package lists, so `installed` uses whatever
//! lists the node has. apt runs with `DEBIAN_FRONTEND=noninteractive`, the C locale and a
//! two-minute wait for the dpkg lock; its output is streamed to the task's output.
//!
//! Check mode runs only the queries (`dpkg-query`, `apt-cache policy`; not `apt-get update`, so
//! `latest` compares against the current lists). On NixOS packages are declarative and this
//! resource fails with a pointer to `nixosRebuild`; without dpkg it fails too.

use lab_proto::v1::{PackageResource, PackageState};

use super::process::{self, Cmd};
use super::{Cx, Report};

/// What the resource says on NixOS.
pub const NIXOS_MESSAGE: &str = "packages are declarative on NixOS; add it to your configuration and use a nixosRebuild resource";

/// What the resource says without dpkg.
pub const UNSUPPORTED_MESSAGE: &str =
    "no supported package manager on this node (package resources need dpkg and apt)";

/// Desired state of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Installed, any version.
    Installed,
    /// Not installed.
    Absent,
    /// apt's candidate version after `apt-get update`.
    Latest,
}

/// A package resource, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    /// Debian package name, optionally with `:arch`.
    pub name: String,
    /// Desired state.
    pub want: Want,
}

/// Whether `name` is a Debian package name (`[a-z0-9][a-z0-9+.-]+`, optionally `:arch`).
pub fn valid_name(name: &str) -> bool {
    let (pkg, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let pkg_ok = pkg.len() >= 2
        && pkg.len() <= 128
        && pkg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && pkg
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.len() <= 32
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    pkg_ok && arch_ok
}

impl TryFrom<PackageResource> for PackageSpec {
    type Error = String;
    fn try_from(p: PackageResource) -> Result<Self, String> {
        let PackageResource { name, state } = p;
        if !valid_name(&name) {
            return Err(format!(
                "invalid package name '{}'; Debian package names use a-z, 0-9, '+', '-' and '.'",
                name.escape_debug()
            ));
        }
        let want = match PackageState::try_from(state) {
            Ok(PackageState::Unspecified | PackageState::Installed) => Want::Installed,
            Ok(PackageState::Absent) => Want::Absent,
            Ok(PackageState::Latest) => Want::Latest,
            Err(_) => return Err(format!("unknown package state {state}; upgrade the agent")),
        };
        Ok(PackageSpec { name, want })
    }
}

/// Parses `dpkg-query -W -f '${db:Status-Abbrev}|${Version}\n'`: the installed version, if a
/// line says the package is installed (status letter `i`).
pub fn parse_installed(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (abbrev, version) = line.split_once('|')?;
        (abbrev.chars().nth(1) == Some('i')).then(|| version.trim().to_owned())
    })
}

/// Parses `apt-cache policy NAME` (C locale): the candidate version, if apt has one.
pub fn parse_candidate(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let v = line.trim().strip_prefix("Candidate:")?.trim();
        (!v.is_empty() && v != "(none)").then(|| v.to_owned())
    })
}

/// The installed version of `name`, or `None`.
async fn installed(cx: &mut Cx<'_>, name: &str) -> Result<Option<String>, String> {
    let cmd = Cmd::new(&[
        "dpkg-query",
        "-W",
        "-f",
        "${db:Status-Abbrev}|${Version}\n",
        name,
    ]);
    let ran = process::run(cx, cmd).await;
    match ran.exit_code {
        0 => Ok(parse_installed(&String::from_utf8_lossy(&ran.stdout))),
        1 if ran.error.is_empty() => Ok(None), // "no packages found matching"
        _ => Err(ran.failure()),
    }
}

/// apt's candidate version of `name`, or `None`.
async fn candidate(cx: &mut Cx<'_>, name: &str) -> Result<Option<String>, String> {
    let ran = process::run(cx, Cmd::new(&["apt-cache", "policy", name])).await;
    if !ran.success() {
        return Err(ran.failure());
    }
    Ok(parse_candidate(&String::from_utf8_lossy(&ran.stdout)))
}

/// Runs `apt-get ARGS`, streamed; the failure message if it failed. (Package names are
/// validated not to start with '-', so no `--` is needed before them.)
async fn apt_get(cx: &mut Cx<'_>, args: &[&str]) -> Result<(), String> {
    let mut argv = vec!["apt-get", "-o", "DPkg::Lock::Timeout=120"];
    argv.extend_from_slice(args);
    let cmd = Cmd::new(&argv)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .streamed();
    let ran = process::run(cx, cmd).await;
    if ran.success() {
        Ok(())
    } else {
        Err(ran.failure())
    }
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &PackageSpec, cx: &mut Cx<'_>) -> Report {
    if cx.root.join("etc/NIXOS").exists() {
        return Report::failed(NIXOS_MESSAGE);
    }
    if !cx.root.join("var/lib/dpkg/status").exists() {
        return Report::failed(UNSUPPORTED_MESSAGE);
    }
    match run(spec, cx).await {
        Ok(report) => report,
        Err(message) => Report::failed(message),
    }
}

async fn run(spec: &PackageSpec, cx: &mut Cx<'_>) -> Result<Report, String> {
    let name = spec.name.as_str();
    let before = installed(cx, name).await?;
    match (spec.want, before) {
        (Want::Installed, Some(v)) => Ok(Report::unchanged(format!("installed {v}"))),
        (Want::Absent, None) => Ok(Report::unchanged("not installed")),
        (Want::Absent, Some(v)) => {
            let diff = format!("remove {name} {v}");
            if cx.check {
                return Ok(Report::changed(diff, format!("would remove {v}")));
            }
            apt_get(cx, &["remove", "-y", name]).await?;
            match installed(cx, name).await? {
                None => Ok(Report::changed(diff, "removed")),
                Some(v) => Err(format!(
                    "apt-get remove succeeded but {name} {v} is still installed"
                )),
            }
        }
        (Want::Installed, None) => {
            let cand = candidate(cx, name).await?;
            install(cx, name, None, cand).await
        }
        (Want::Latest, before) => {
            if !cx.check {
                apt_get(cx, &["update"]).await?;
            }
            let Some(cand) = candidate(cx, name).await? else {
                return match before {
                    Some(v) => Ok(Report::unchanged(format!(
                        "installed {v} (apt has no candidate version)"
                    ))),
                    None => Err(format!(
                        "apt has no installation candidate for {name}; check the name and the node's apt sources"
                    )),
                };
            };
            if before.as_deref() == Some(cand.as_str()) {
                return Ok(Report::unchanged(format!("installed {cand} (latest)")));
            }
            install(cx, name, before, Some(cand)).await
        }
    }
}

/// Installs (or upgrades from `before` to) `name`.
async fn install(
    cx: &mut Cx<'_>,
    name: &str,
    before: Option<String>,
    cand: Option<String>,
) -> Result<Report, String> {
    let target = cand.clone().unwrap_or_default();
    let diff = match &before {
        Some(v) => format!("upgrade {name} {v} → {target}"),
        None => format!("install {name} {target}").trim_end().to_owned(),
    };
    if cx.check {
        let message = match (&before, &cand) {
            (Some(v), Some(c)) => {
                format!("would upgrade {v} → {c} (apt lists not refreshed in check mode)")
            }
            (None, Some(c)) => format!("would install {c}"),
            (_, None) => "would install (apt knows no candidate version yet; the install may fail)"
                .to_owned(),
        };
        return Ok(Report::changed(diff, message));
    }
    apt_get(cx, &["install", "-y", "--no-install-recommends", name]).await?;
    match installed(cx, name).await? {
        Some(v) => {
            let diff = match &before {
                Some(old) => format!("upgrade {name} {old} → {v}"),
                None => format!("install {name} {v}"),
            };
            let verb = if before.is_some() {
                "upgraded to"
            } else {
                "installed"
            };
            Ok(Report::changed(diff, format!("{verb} {v}")))
        }
        None => Err(format!(
            "apt-get install succeeded but {name} is not installed"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["htop", "libc6:amd64", "g++", "python3.11", "0ad"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "-y", "Htop", "a b", "x;y", "a:", "a:B", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(PackageSpec::try_from(PackageResource {
            name: "--purge".into(),
            state: 0
        })
        .is_err());
        let spec = PackageSpec::try_from(PackageResource {
            name: "htop".into(),
            state: PackageState::Latest as i32,
        })
        .unwrap();
        assert_eq!(spec.want, Want::Latest);
    }

    #[test]
    fn parses_dpkg_and_apt() {
        assert_eq!(parse_installed("ii |1.2-3\n"), Some("1.2-3".into()));
        assert_eq!(parse_installed("rc |1.2-3\n"), None);
        assert_eq!(parse_installed("un |\n"), None);
        assert_eq!(parse_installed("un |\nii |2.36-9\n"), Some("2.36-9".into()));
        let policy = "htop:\n  Installed: (none)\n  Candidate: 3.2.2-2\n  Version table:\n";
        assert_eq!(parse_candidate(policy), Some("3.2.2-2".into()));
        assert_eq!(
            parse_candidate("x:\n  Installed: 1\n  Candidate: (none)\n"),
            None
        );
        assert_eq!(parse_candidate(""), None);
    }
}
