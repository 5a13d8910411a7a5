//! Finding the PostgreSQL clusters of a host from files: running postmasters in `proc` (their
//! working directory is the data directory) and Debian's `etc/postgresql`, each data
//! directory's `postmaster.pid` and `PG_VERSION`.
//!
//! `postmaster.pid` lines (PostgreSQL's `pidfile.h`): 1 PID, 2 data directory, 3 start time,
//! 4 port, 5 first socket directory (empty without unix sockets), 6 first listen address,
//! 7 shared memory key, 8 status. The file is left behind by a crash, so a cluster counts as
//! running only while that PID is a `postgres` process.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Cluster;
use crate::facts::rootfs::{dir_names, exists, is_dir, link_text, read_raw, read_trimmed, resolve};
use crate::facts::Problems;

/// Where a PostgreSQL installation leaves traces; without one, `proc` is not scanned.
const INSTALLED: &[&str] = &[
    "usr/lib/postgresql",
    "etc/postgresql",
    "usr/local/pgsql",
    "usr/bin/postgres",
    "usr/pgsql",
    "run/current-system/sw/bin/postgres",
];

/// Process names of a postmaster and its children.
const PROCESS_NAMES: &[&str] = &["postgres", "postmaster"];

/// What `postmaster.pid` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    /// The postmaster's PID.
    pub pid: u32,
    /// TCP port.
    pub port: Option<u16>,
    /// First unix socket directory; `None` when it has none.
    pub socket_dir: Option<String>,
}

/// Parses `postmaster.pid`; an error says what is wrong with it.
pub fn parse_pid_file(text: &str) -> Result<PidFile, String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pid = lines
        .first()
        .and_then(|l| l.parse::<u32>().ok())
        .filter(|&p| p > 0)
        .ok_or("its first line is not a process id")?;
    let port = match lines.get(3) {
        None | Some(&"") => None,
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| format!("its port line '{port}' is not a port"))?,
        ),
    };
    Ok(PidFile {
        pid,
        port,
        socket_dir: lines
            .get(4)
            .filter(|d| !d.is_empty())
            .map(|d| (*d).to_owned()),
    })
}

/// The clusters under `root`, sorted by data directory; problems with their files go to
/// `problems`.
pub fn clusters(root: &Path, problems: &mut Problems) -> Vec<Cluster> {
    if !INSTALLED.iter().any(|p| exists(root, p)) {
        return Vec::new();
    }
    let mut found: BTreeMap<String, Cluster> = BTreeMap::new();
    for cluster in debian_clusters(root, problems) {
        found.insert(cluster.data_dir.clone(), cluster);
    }
    for dir in postmaster_dirs(root) {
        found.entry(dir.clone()).or_insert_with(|| Cluster {
            data_dir: dir,
            ..Cluster::default()
        });
    }
    found
        .into_values()
        .filter_map(|mut cluster| {
            let rel = cluster.data_dir.trim_start_matches('/').to_owned();
            if !is_dir(root, &rel) {
                return cluster.name.is_some().then_some(cluster);
            }
            cluster.major_version = read_trimmed(root, &format!("{rel}/PG_VERSION"));
            cluster.owner = resolve(root, &rel)
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| crate::accounts::user_name(m.uid()));
            if let Some(text) = read_raw(root, &format!("{rel}/postmaster.pid")) {
                match parse_pid_file(&text) {
                    Ok(pid_file) if is_postgres(root, pid_file.pid) => {
                        cluster.running = true;
                        cluster.port = pid_file.port.or(cluster.port);
                        cluster.socket_dir = pid_file.socket_dir;
                    }
                    Ok(_) => {}
                    Err(e) => problems.add(
                        "postgresql",
                        format!(
                            "{}/postmaster.pid cannot be read: {e}; is it a PostgreSQL data \
                             directory?",
                            cluster.data_dir
                        ),
                    ),
                }
            }
            Some(cluster)
        })
        .collect()
}

fn is_postgres(root: &Path, pid: u32) -> bool {
    read_trimmed(root, &format!("proc/{pid}/comm"))
        .is_some_and(|name| PROCESS_NAMES.contains(&name.as_str()))
}

/// Data directories of running `postgres` processes: their working directory, else the `-D`
/// of their command line (when the working directory cannot be read).
fn postmaster_dirs(root: &Path) -> Vec<String> {
    let mut dirs = Vec::new();
    for pid in dir_names(root, "proc") {
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(pid_number) = pid.parse::<u32>() else {
            continue;
        };
        if !is_postgres(root, pid_number) {
            continue;
        }
        let dir = link_text(root, &format!("proc/{pid}/cwd")).or_else(|| {
            let cmdline = read_raw(root, &format!("proc/{pid}/cmdline"))?;
            let args: Vec<&str> = cmdline.split('\0').collect();
            let at = args.iter().position(|a| *a == "-D")?;
            args.get(at + 1).map(|d| (*d).to_owned())
        });
        if let Some(dir) = dir.filter(|d| d.starts_with('/') && d.len() > 1) {
            if exists(
                root,
                &format!("{}/postmaster.pid", dir.trim_start_matches('/')),
            ) && !dirs.contains(&dir)
            {
                dirs.push(dir);
            }
        }
    }
    dirs
}

/// Debian's clusters: `etc/postgresql/<version>/<name>/postgresql.conf`.
fn debian_clusters(root: &Path, problems: &mut Problems) -> Vec<Cluster> {
    let mut clusters = Vec::new();
    for version in dir_names(root, "etc/postgresql") {
        for name in dir_names(root, &format!("etc/postgresql/{version}")) {
            let conf_path = format!("etc/postgresql/{version}/{name}/postgresql.conf");
            let Some(text) = read_raw(root, &conf_path) else {
                continue;
            };
            let conf = parse_conf(&text);
            let port = match conf.get("port") {
                Some(port) => match port.parse::<u16>() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        problems.add(
                            "postgresql",
                            format!("/{conf_path}: port '{port}' is not a port"),
                        );
                        None
                    }
                },
                None => Some(5432),
            };
            clusters.push(Cluster {
                data_dir: conf
                    .get("data_directory")
                    .cloned()
                    .unwrap_or_else(|| format!("/var/lib/postgresql/{version}/{name}")),
                name: Some(format!("{version}/{name}")),
                port,
                ..Cluster::default()
            });
        }
    }
    clusters
}

/// `name = value` settings of a `postgresql.conf` (quotes removed, comments dropped; the last
/// one wins, as for PostgreSQL). Included files are not followed.
pub fn parse_conf(text: &str) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = line
            .split_once('=')
            .or_else(|| line.split_once(char::is_whitespace))
        else {
            continue;
        };
        let rest = rest.trim();
        let value = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.split('\'').next().unwrap_or("").to_owned()
        } else {
            rest.split('#').next().unwrap_or("").trim().to_owned()
        };
        settings.insert(name.trim().to_lowercase(), value);
    }
    settings
}
