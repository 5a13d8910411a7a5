//! Service facts: systemd units (failed ones by name, active ones counted) and listening TCP
//! ports.
//!
//! Units need the running systemd, so they are collected only when `root` is `/`, systemd is
//! PID 1 (`/run/systemd/system` exists, as `sd_booted(3)` checks) and `systemctl` is installed.
//! `systemctl` runs through [`super::probe`] with a deadline of [`SYSTEMCTL_TIMEOUT`]; when it
//! fails or is killed, units are absent and the reason is a collector error. Listening ports come from `proc/net/tcp` and `tcp6` and work
//! under any root; they are the ports of the agent's network namespace.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::probe::{failure, Command};
use super::rootfs::read_raw;
use super::{Probe, Problems};

/// How long `systemctl` may take.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(5);

/// `st` value of a listening socket in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// Service facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Services {
    /// systemd units; absent when systemd could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<Units>,
    /// TCP ports in LISTEN state on any address, IPv4 or IPv6, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tcp_listen_ports: Vec<u16>,
}

/// systemd unit summary.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Units {
    /// Units whose active state is `active`.
    pub active: u64,
    /// Units whose active state is `failed`, sorted (empty when none failed).
    pub failed: Vec<String>,
}

/// Collects service facts; `None` when neither units nor listening ports are known.
pub fn collect(probe: &Probe, problems: &mut Problems) -> Option<Services> {
    let services = Services {
        units: if probe.live() {
            system_units(probe, problems)
        } else {
            None
        },
        tcp_listen_ports: listening_ports(probe.root()),
    };
    (services != Services::default()).then_some(services)
}

fn system_units(probe: &Probe, problems: &mut Problems) -> Option<Units> {
    if !Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let systemctl = probe.program("systemctl")?;
    let base = [
        "list-units",
        "--all",
        "--no-legend",
        "--plain",
        "--no-pager",
    ];
    let json_args: Vec<&str> = base.iter().copied().chain(["--output=json"]).collect();
    let run = |args: &[&str]| {
        probe.run(Command::new(&systemctl, args, SYSTEMCTL_TIMEOUT).env("SYSTEMD_COLORS", "0"))
    };
    let ran = run(&json_args);
    if let Some(units) = ran
        .success()
        .then(|| parse_units_json(&String::from_utf8_lossy(&ran.stdout)))
        .flatten()
    {
        return Some(units);
    }
    // systemd before 246 has no JSON output
    let ran = run(&base);
    if ran.success() {
        return Some(parse_units_text(&String::from_utf8_lossy(&ran.stdout)));
    }
    problems.add("systemd", failure(&ran, SYSTEMCTL_TIMEOUT));
    None
}

/// Parses `systemctl list-units --output=json` (an array of `{unit, load, active, sub, ...}`).
pub fn parse_units_json(text: &str) -> Option<Units> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let rows = value.as_array()?;
    let units = rows.iter().filter_map(|row| {
        let name = row.get("unit")?.as_str()?;
        let active = row.get("active")?.as_str()?;
        Some((name, active))
    });
    Some(summarize(units))
}

/// Parses the plain table (`UNIT LOAD ACTIVE SUB DESCRIPTION`, no legend).
pub fn parse_units_text(text: &str) -> Units {
    let units = text.lines().filter_map(|line| {
        // failed units may carry a status mark in front
        let mut columns = line
            .split_whitespace()
            .skip_while(|c| *c == "●" || *c == "*");
        let name = columns.next()?;
        let active = columns.nth(1)?;
        Some((name, active))
    });
    summarize(units)
}

fn summarize<'a>(units: impl Iterator<Item = (&'a str, &'a str)>) -> Units {
    let mut summary = Units::default();
    for (name, active) in units {
        match active {
            "active" => summary.active += 1,
            "failed" => summary.failed.push(name.to_owned()),
            _ => {}
        }
    }
    summary.failed.sort();
    summary.failed.dedup();
    summary
}

fn listening_ports(root: &Path) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    for table in ["proc/net/tcp", "proc/net/tcp6"] {
        if let Some(text) = read_raw(root, table) {
            ports.extend(parse_listening(&text));
        }
    }
    ports.into_iter().collect()
}

/// Local ports of LISTEN sockets in a `/proc/net/tcp` or `tcp6` table.
pub fn parse_listening(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != TCP_LISTEN {
                return None;
            }
            let (_, port) = local.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "services_tests.rs"]
mod tests;
