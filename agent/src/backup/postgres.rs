//! PostgreSQL dumps through restic without a temporary file: `pg_dump` (or `pg_dumpall`) piped
//! into `restic backup --stdin`, and back with `restic dump` piped into `psql` in a database
//! created for it.
//!
//! A dump that fails never becomes a snapshot ([`super::proc`] kills restic before it sees
//! the end of its input); a restore refuses an existing database unless `replace`, and drops
//! the database it created when the restore fails.

use lab_proto::v1::backup_result::Kind;
use lab_proto::v1::{BackupResult, PostgresDump, PostgresRestore, RestoreSummary, Retention};

use super::ops::{self, open};
use super::proc::{self, Step};
use super::restic;
use super::{snapshot_or_latest, Cx};

/// libpq connection flags (`-h`, `-p`, `-U`) for the given fields; empty ones are left to
/// libpq's defaults. `--no-password`: a task must never wait for a prompt.
pub fn conn_args(host: &str, port: u32, username: &str) -> Vec<String> {
    let mut args = vec!["--no-password".to_owned()];
    if !host.is_empty() {
        args.extend(["-h".to_owned(), host.to_owned()]);
    }
    if port != 0 {
        args.extend(["-p".to_owned(), port.to_string()]);
    }
    if !username.is_empty() {
        args.extend(["-U".to_owned(), username.to_owned()]);
    }
    args
}

/// A database name that libpq takes as a name (not a connection string, not a flag).
pub fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the database name is empty".to_owned());
    }
    if name.starts_with('-') || name.contains('=') || name.contains('\0') || name.len() > 63 {
        return Err(format!(
            "'{name}' is not a usable database name (no leading '-', no '=', at most 63 bytes)"
        ));
    }
    Ok(())
}

/// The file name inside the snapshot for a dump.
pub fn dump_filename(p: &PostgresDump) -> Result<String, String> {
    let name = if !p.filename.is_empty() {
        p.filename.clone()
    } else if p.database.is_empty() {
        "pg_dumpall.sql".to_owned()
    } else {
        format!("{}.sql", p.database)
    };
    if name.contains('/') || name == "." || name == ".." || name.starts_with('-') {
        return Err(format!(
            "'{name}' is not a usable file name for the dump (no '/', no leading '-')"
        ));
    }
    Ok(name)
}

/// `pg_dump DATABASE | restic backup --stdin`, then the retention policy.
pub async fn dump(
    cx: &mut Cx<'_>,
    p: &PostgresDump,
    retention: Option<&Retention>,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, p.repo.as_ref()).await?;
    let filename = dump_filename(p)?;
    let mut argv = if p.database.is_empty() {
        vec!["pg_dumpall".to_owned()]
    } else {
        check_database_name(&p.database)?;
        vec!["pg_dump".to_owned()]
    };
    argv.extend(conn_args(&p.host, p.port, &p.username));
    if !p.database.is_empty() {
        argv.extend(["-d".to_owned(), p.database.clone()]);
    }
    let mut producer = Step::new(&argv);
    producer.user = p.run_as.clone();
    let mut args = vec![
        "backup".to_owned(),
        "--json".to_owned(),
        "--stdin".to_owned(),
        "--stdin-filename".to_owned(),
        filename.clone(),
    ];
    for t in &p.tags {
        args.extend(["--tag".to_owned(), t.clone()]);
    }
    if !p.restic_host.is_empty() {
        args.extend(["--host".to_owned(), p.restic_host.clone()]);
    }
    let summary = ops::run_backup(cx, &repo, &repo.step(&args), Some(&producer)).await?;
    let id = summary.snapshot_id.clone();
    cx.line(&format!(
        "snapshot {id} saved: {} as {filename}, {} bytes",
        if p.database.is_empty() {
            "the whole cluster"
        } else {
            &p.database
        },
        summary.total_bytes_processed
    ));
    result.kind = Some(Kind::Backup(summary));
    let paths = [format!("/{filename}")];
    let only = ops::Only {
        tags: &p.tags,
        host: &p.restic_host,
        paths: &paths,
    };
    ops::apply_retention(cx, &repo, retention, &only, result, &id).await
}

/// Runs a psql query (tuples only, unaligned) and returns its stdout lines.
async fn query(cx: &mut Cx<'_>, p: &PostgresRestore, sql: &str) -> Result<Vec<String>, String> {
    let mut argv = vec!["psql".to_owned(), "-X".to_owned(), "-At".to_owned()];
    argv.extend(conn_args(&p.host, p.port, &p.username));
    argv.extend([
        "-d".to_owned(),
        "postgres".to_owned(),
        "-c".to_owned(),
        sql.to_owned(),
    ]);
    let mut step = Step::new(&argv);
    step.user = p.run_as.clone();
    let mut lines = Vec::new();
    let ran = proc::run(cx, &step, None, |_, line| lines.push(line.to_owned())).await;
    if ran.success() {
        Ok(lines)
    } else {
        Err(ran.failure())
    }
}

/// Runs `createdb`/`dropdb` for the restore's database.
async fn db_tool(cx: &mut Cx<'_>, p: &PostgresRestore, tool: &str) -> Result<(), String> {
    let mut argv = vec![tool.to_owned()];
    argv.extend(conn_args(&p.host, p.port, &p.username));
    if tool == "dropdb" {
        argv.push("--if-exists".to_owned());
    }
    argv.extend(["--".to_owned(), p.database.clone()]);
    let mut step = Step::new(&argv);
    step.user = p.run_as.clone();
    let ran = proc::run(cx, &step, None, |cx, line| cx.line(line)).await;
    if ran.success() {
        Ok(())
    } else {
        Err(ran.failure())
    }
}

/// `restic dump SNAPSHOT FILE | psql DATABASE` into a new (or, with `replace`, recreated)
/// database.
pub async fn restore(
    cx: &mut Cx<'_>,
    p: &PostgresRestore,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, p.repo.as_ref()).await?;
    check_database_name(&p.database)?;
    let listing = ops::list(cx, &repo, &p.snapshot, &p.tags, "").await?;
    let file = if p.filename.is_empty() {
        match listing.files.as_slice() {
            [(path, size)] => (path.clone(), *size),
            files => {
                return Err(format!(
                    "snapshot {} holds {} files; name the dump with filename",
                    listing.snapshot.short_id,
                    files.len()
                ))
            }
        }
    } else {
        let wanted = format!("/{}", p.filename.trim_start_matches('/'));
        listing
            .files
            .iter()
            .find(|(path, _)| *path == wanted)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "snapshot {} has no file {wanted}",
                    listing.snapshot.short_id
                )
            })?
    };
    let existing = query(cx, p, "SELECT datname FROM pg_database").await?;
    if existing.iter().any(|d| d == &p.database) {
        if !p.replace {
            return Err(format!(
                "database '{}' already exists; restore into a new database or set replace: true",
                p.database
            ));
        }
        cx.line(&format!("dropping database '{}' (replace)", p.database));
        db_tool(cx, p, "dropdb").await?;
    }
    db_tool(cx, p, "createdb").await?;
    let mut args = vec!["dump".to_owned()];
    args.extend(restic::filter_args(&p.tags, ""));
    args.extend(["--".to_owned(), listing.snapshot.id.clone(), file.0.clone()]);
    let producer = repo.step(&args);
    let mut argv = vec![
        "psql".to_owned(),
        "-X".to_owned(),
        "-q".to_owned(),
        "-v".to_owned(),
        "ON_ERROR_STOP=1".to_owned(),
    ];
    argv.extend(conn_args(&p.host, p.port, &p.username));
    argv.extend(["-d".to_owned(), p.database.clone()]);
    let mut psql = Step::new(&argv);
    psql.user = p.run_as.clone();
    let ran = ops::run_restic(cx, &repo, &psql, Some(&producer), |cx, line| cx.line(line)).await;
    if !ran.success() {
        let why = ran.failure();
        // No half-restored database is left behind.
        let cleanup = match db_tool(cx, p, "dropdb").await {
            Ok(()) => format!("database '{}' was dropped again", p.database),
            Err(e) => format!("dropping database '{}' failed too: {e}", p.database),
        };
        return Err(format!("restoring {} failed: {why}; {cleanup}", file.0));
    }
    result.kind = Some(Kind::Restore(RestoreSummary {
        snapshot_id: listing.snapshot.short_id.clone(),
        target: format!("postgres database {}", p.database),
        files_restored: 1,
        bytes_restored: file.1,
    }));
    cx.line(&format!(
        "restored {} of snapshot {} into database '{}'",
        file.0,
        snapshot_or_latest(&listing.snapshot.short_id),
        p.database
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_flags() {
        assert_eq!(
            conn_args("/tmp/s", 5433, "u"),
            ["--no-password", "-h", "/tmp/s", "-p", "5433", "-U", "u"]
        );
        assert_eq!(conn_args("", 0, ""), ["--no-password"]);
        assert!(check_database_name("app").is_ok());
        for bad in ["", "-x", "host=evil", &"a".repeat(64)] {
            assert!(check_database_name(bad).is_err(), "{bad}");
        }
        let mut p = PostgresDump {
            database: "app".into(),
            ..Default::default()
        };
        assert_eq!(dump_filename(&p).unwrap_or_default(), "app.sql");
        p.database.clear();
        assert_eq!(dump_filename(&p).unwrap_or_default(), "pg_dumpall.sql");
        p.filename = "../x".into();
        assert!(dump_filename(&p).is_err());
    }
}
