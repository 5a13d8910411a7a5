//! Validation of backup tasks at submit time (issue 5): a backup spec that restic, pg_dump or
//! snapraid would refuse, or that would put a secret or a flag where a value belongs, is refused
//! before any node is touched, with a message naming the field as spec files write it
//! (`backup.restic.passwordFile`). Pure; the agent re-checks nothing it relies on for safety
//! (it passes values as separate arguments, never through a shell).

use lab_proto::v1::{
    backup_task, BackupTask, PostgresDump, PostgresRestore, ResticRepository, Retention,
    SnapraidOperation, SnapraidTask,
};

use super::spec_config::absolute;
use crate::error::ApiError;

fn bad<T>(m: String) -> Result<T, ApiError> {
    Err(ApiError::InvalidArgument(m))
}

/// Checks a backup task: its name, policy and its one operation.
pub fn validate_backup(b: &BackupTask) -> Result<(), ApiError> {
    if !b.name.is_empty() {
        crate::backups::check_name(&b.name).map_err(ApiError::InvalidArgument)?;
    }
    if b.retention.as_ref().is_some_and(|r| !keeps_something(r)) {
        return bad("backup.retention keeps nothing; set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, or leave retention out".into());
    }
    use backup_task::Action;
    let Some(action) = &b.action else {
        return bad("backup task has no operation; give exactly one of restic, forget, check, snapshots, restore, postgres, postgresRestore, snapraid, drill".into());
    };
    match action {
        Action::Restic(r) => {
            let at = "backup.restic";
            repository(at, r.repo.as_ref())?;
            if r.paths.is_empty() {
                return bad(format!(
                    "{at}.paths: no paths; give the absolute paths to back up"
                ));
            }
            for p in &r.paths {
                absolute(&format!("{at}.paths"), p)?;
            }
            for e in &r.exclude {
                if e.is_empty() || has_control(e) {
                    return bad(format!(
                        "{at}.exclude: pattern '{}' is empty or has a control character",
                        e.escape_debug()
                    ));
                }
            }
            tags_and_host(at, &r.tags, "host", &r.host)?;
        }
        Action::Forget(f) => {
            let at = "backup.forget";
            repository(at, f.repo.as_ref())?;
            if !b.retention.as_ref().is_some_and(keeps_something) {
                return bad(format!("{at}: needs a retention policy that keeps something; set backup.retention with at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly"));
            }
            tags_and_host(at, &f.tags, "host", &f.host)?;
        }
        Action::Check(c) => {
            let at = "backup.check";
            repository(at, c.repo.as_ref())?;
            if !c.read_data_subset.is_empty() && !data_subset_ok(&c.read_data_subset) {
                return bad(format!(
                    "{at}.readDataSubset: '{}' is not a subset restic understands; write a percentage (10%), a part (1/5) or a size (500M)",
                    c.read_data_subset.escape_debug()
                ));
            }
        }
        Action::Snapshots(s) => {
            let at = "backup.snapshots";
            repository(at, s.repo.as_ref())?;
            tags_and_host(at, &s.tags, "host", &s.host)?;
        }
        Action::Restore(r) => {
            let at = "backup.restore";
            repository(at, r.repo.as_ref())?;
            snapshot(at, &r.snapshot)?;
            absolute(&format!("{at}.target"), &r.target)?;
            for i in &r.include {
                if i.is_empty() || has_control(i) {
                    return bad(format!(
                        "{at}.include: path '{}' is empty or has a control character",
                        i.escape_debug()
                    ));
                }
            }
            tags_and_host(at, &r.tags, "host", &r.host)?;
        }
        Action::Postgres(p) => postgres_dump(p)?,
        Action::PostgresRestore(p) => postgres_restore(p)?,
        Action::Snapraid(s) => snapraid(s)?,
        Action::Drill(d) => {
            let at = "backup.drill";
            repository(at, d.repo.as_ref())?;
            snapshot(at, &d.snapshot)?;
            if !d.scratch_dir.is_empty() {
                absolute(&format!("{at}.scratchDir"), &d.scratch_dir)?;
                if d.scratch_dir.trim_end_matches('/').is_empty() {
                    return bad(format!("{at}.scratchDir: '/' cannot be a scratch directory (it is emptied afterwards)"));
                }
            }
            tags_and_host(at, &d.tags, "host", &d.host)?;
        }
    }
    Ok(())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The flattened repository fields of operation `at`.
fn repository(at: &str, repo: Option<&ResticRepository>) -> Result<(), ApiError> {
    let Some(repo) = repo else {
        return bad(format!("{at}.repository is missing; give a restic repository (a path, sftp:..., rest:..., s3:...)"));
    };
    if repo.repository.trim().is_empty() {
        return bad(format!("{at}.repository is missing; give a restic repository (a path, sftp:..., rest:..., s3:...)"));
    }
    if has_control(&repo.repository) || repo.repository.starts_with('-') {
        return bad(format!(
            "{at}.repository: '{}' must not start with '-' or contain control characters",
            repo.repository.escape_debug()
        ));
    }
    match (&repo.password_from, repo.password_file.is_empty()) {
        (None, true) => return bad(format!("{at}.passwordFile is missing; restic needs a password: give the absolute path of a file on the node that holds it, or passwordFrom (a SOPS file)")),
        (None, false) => absolute(&format!("{at}.passwordFile"), &repo.password_file)?,
        (Some(from), true) => super::spec_secrets::value_from(&format!("{at}.passwordFrom"), from)?,
        (Some(_), false) => return bad(format!("{at}: give passwordFile or passwordFrom, not both")),
    }
    if !repo.env_file.is_empty() {
        absolute(&format!("{at}.envFile"), &repo.env_file)?;
    }
    Ok(())
}

/// Tags and a host name as restic takes them (`--tag a,b` splits on commas).
fn tags_and_host(at: &str, tags: &[String], host_field: &str, host: &str) -> Result<(), ApiError> {
    for t in tags {
        if t.is_empty() || t.contains(',') || has_control(t) || t.starts_with('-') {
            return bad(format!(
                "{at}.tags: '{}' must be non-empty, without commas or control characters, and not start with '-'",
                t.escape_debug()
            ));
        }
    }
    if host.contains(',') || has_control(host) || host.starts_with('-') {
        return bad(format!(
            "{at}.{host_field}: '{}' must not contain commas or control characters, or start with '-'",
            host.escape_debug()
        ));
    }
    Ok(())
}

/// Empty (= latest), "latest" or a hex id (a prefix of at least 4 digits, up to 64).
fn snapshot(at: &str, id: &str) -> Result<(), ApiError> {
    let hex = (4..=64).contains(&id.len()) && id.bytes().all(|c| c.is_ascii_hexdigit());
    if id.is_empty() || id == "latest" || hex {
        Ok(())
    } else {
        bad(format!(
            "{at}.snapshot: '{}' is not a snapshot id (4-64 hex digits) or 'latest'",
            id.escape_debug()
        ))
    }
}

fn keeps_something(r: &Retention) -> bool {
    let Retention {
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        prune: _,
    } = r;
    [
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
    ]
    .iter()
    .any(|k| **k > 0)
}

/// restic's `--read-data-subset`: "N%" (0 < N <= 100, decimals allowed), "n/m" (1 <= n <= m),
/// or a size "500M" (digits and an optional K, M, G or T).
pub fn data_subset_ok(s: &str) -> bool {
    if let Some(p) = s.strip_suffix('%') {
        let digits_ok = !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit() || c == b'.');
        return digits_ok && p.parse::<f64>().is_ok_and(|v| v > 0.0 && v <= 100.0);
    }
    if let Some((n, m)) = s.split_once('/') {
        return match (n.parse::<u32>(), m.parse::<u32>()) {
            (Ok(n), Ok(m)) => n >= 1 && n <= m,
            _ => false,
        };
    }
    let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    let unit_len = s.len() - digits.len();
    unit_len <= 1 && digits.parse::<u64>().is_ok_and(|v| v > 0)
}

/// A PostgreSQL database or role name as we accept it: 1-63 of A-Z, a-z, 0-9, '_', '-', '.',
/// '$', not starting with '-'.
fn pg_name(at: &str, field: &str, value: &str) -> Result<(), ApiError> {
    let ok = (1..=63).contains(&value.len())
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.$".contains(&c));
    if ok {
        Ok(())
    } else {
        bad(format!(
            "{at}.{field}: '{}' must be 1-63 characters of A-Z, a-z, 0-9, '_', '-', '.', '$' and not start with '-'",
            value.escape_debug()
        ))
    }
}

/// host (a name, an address or an absolute socket directory), port, username and runAs.
fn pg_connection(
    at: &str,
    host: &str,
    port: u32,
    username: &str,
    run_as: &str,
) -> Result<(), ApiError> {
    if host.starts_with('-') || has_control(host) || host.contains(' ') {
        return bad(format!(
            "{at}.host: '{}' is not a host name, address or socket directory",
            host.escape_debug()
        ));
    }
    if port > u32::from(u16::MAX) {
        return bad(format!("{at}.port: {port} is over 65535"));
    }
    if !username.is_empty() {
        pg_name(at, "username", username)?;
    }
    if !run_as.is_empty() {
        let ok = run_as.len() <= 32
            && !run_as.starts_with('-')
            && run_as
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c));
        if !ok {
            return bad(format!(
                "{at}.runAs: '{}' is not a user name",
                run_as.escape_debug()
            ));
        }
    }
    Ok(())
}

/// A file name inside a snapshot: one path component.
fn dump_filename(at: &str, name: &str) -> Result<(), ApiError> {
    let ok = name.is_empty()
        || (name.len() <= 255
            && !name.contains('/')
            && !has_control(name)
            && !name.starts_with('-')
            && name != "."
            && name != "..");
    if ok {
        Ok(())
    } else {
        bad(format!(
            "{at}.filename: '{}' must be a plain file name (no '/', not starting with '-')",
            name.escape_debug()
        ))
    }
}

fn postgres_dump(p: &PostgresDump) -> Result<(), ApiError> {
    let at = "backup.postgres";
    repository(at, p.repo.as_ref())?;
    if !p.database.is_empty() {
        pg_name(at, "database", &p.database)?;
    }
    pg_connection(at, &p.host, p.port, &p.username, &p.run_as)?;
    dump_filename(at, &p.filename)?;
    tags_and_host(at, &p.tags, "resticHost", &p.restic_host)
}

fn postgres_restore(p: &PostgresRestore) -> Result<(), ApiError> {
    let at = "backup.postgresRestore";
    repository(at, p.repo.as_ref())?;
    snapshot(at, &p.snapshot)?;
    dump_filename(at, &p.filename)?;
    if p.database.is_empty() {
        return bad(format!(
            "{at}.database is missing; name the database to restore into"
        ));
    }
    pg_name(at, "database", &p.database)?;
    pg_connection(at, &p.host, p.port, &p.username, &p.run_as)?;
    tags_and_host(at, &p.tags, "host", "")
}

fn snapraid(s: &SnapraidTask) -> Result<(), ApiError> {
    let at = "backup.snapraid";
    match SnapraidOperation::try_from(s.operation) {
        Ok(SnapraidOperation::Unspecified) => {
            return bad(format!(
                "{at}.operation is missing; give sync, scrub, status or diff"
            ))
        }
        Err(_) => {
            return bad(format!(
                "{at}.operation {} is unknown; give sync, scrub, status or diff",
                s.operation
            ))
        }
        Ok(_) => {}
    }
    if !s.config.is_empty() {
        absolute(&format!("{at}.config"), &s.config)?;
    }
    if s.scrub_percent > 100 {
        return bad(format!(
            "{at}.scrubPercent: {} is over 100",
            s.scrub_percent
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
