//! From `task.backup` of a spec file to the wire `BackupTask`: picks the one operation and
//! maps the flattened repository fields. Pure. An absent name is filled in from
//! `metadata.name` by `convert::with_name`.
//! Struct literals name every proto field, so a new field fails the build here.

use lab_proto::v1::{
    backup_task::Action, BackupTask, PostgresDump, PostgresRestore, ResticBackup, ResticCheck,
    ResticForget, ResticRepository, ResticRestore, ResticSnapshots, RestoreDrill, Retention,
    SnapraidOperation, SnapraidTask,
};

use super::convert::{exactly_one, millis};
use super::doc::{strings, Str, ValueFromDoc};
use super::doc_backup::{self as d, BackupDoc};

/// The operation keys, in the order of the contract.
const OPERATIONS: &[&str] = &[
    "restic",
    "forget",
    "check",
    "snapshots",
    "restore",
    "postgres",
    "postgresRestore",
    "snapraid",
    "drill",
];

fn repo(
    op: &str,
    repository: String,
    password_file: String,
    env_file: String,
    password_from: Option<ValueFromDoc>,
) -> Result<Option<ResticRepository>, String> {
    let password_from = password_from
        .map(|v| super::convert::value_from(&format!("spec.task.backup.{op}.passwordFrom"), v))
        .transpose()?;
    Ok(Some(ResticRepository {
        repository,
        password_file,
        env_file,
        password_from,
    }))
}

fn text(s: Option<Str>) -> String {
    s.map(|s| s.0).unwrap_or_default()
}

/// Converts `spec.task.backup`.
pub fn backup_task(b: BackupDoc) -> Result<BackupTask, String> {
    let BackupDoc {
        name,
        max_age,
        retention,
        restic,
        forget,
        check,
        snapshots,
        restore,
        postgres,
        postgres_restore,
        snapraid,
        drill,
    } = b;
    let mut found = Vec::new();
    if let Some(r) = restic {
        let r = ResticBackup {
            repo: repo(
                "restic",
                r.repository,
                r.password_file,
                r.env_file,
                r.password_from,
            )?,
            paths: r.paths,
            exclude: r.exclude,
            tags: strings(&r.tags),
            host: r.host,
        };
        found.push(("restic", Action::Restic(r)));
    }
    if let Some(f) = forget {
        let f = ResticForget {
            repo: repo(
                "forget",
                f.repository,
                f.password_file,
                f.env_file,
                f.password_from,
            )?,
            tags: strings(&f.tags),
            host: f.host,
        };
        found.push(("forget", Action::Forget(f)));
    }
    if let Some(c) = check {
        let c = ResticCheck {
            repo: repo(
                "check",
                c.repository,
                c.password_file,
                c.env_file,
                c.password_from,
            )?,
            read_data_subset: text(c.read_data_subset),
        };
        found.push(("check", Action::Check(c)));
    }
    if let Some(s) = snapshots {
        let s = ResticSnapshots {
            repo: repo(
                "snapshots",
                s.repository,
                s.password_file,
                s.env_file,
                s.password_from,
            )?,
            tags: strings(&s.tags),
            host: s.host,
        };
        found.push(("snapshots", Action::Snapshots(s)));
    }
    if let Some(r) = restore {
        let r = ResticRestore {
            repo: repo(
                "restore",
                r.repository,
                r.password_file,
                r.env_file,
                r.password_from,
            )?,
            snapshot: text(r.snapshot),
            target: r.target,
            include: r.include,
            tags: strings(&r.tags),
            host: r.host,
        };
        found.push(("restore", Action::Restore(r)));
    }
    if let Some(p) = postgres {
        let p = PostgresDump {
            repo: repo(
                "postgres",
                p.repository,
                p.password_file,
                p.env_file,
                p.password_from,
            )?,
            database: p.database,
            host: p.host,
            port: p.port,
            username: p.username,
            run_as: p.run_as,
            filename: p.filename,
            tags: strings(&p.tags),
            restic_host: p.restic_host,
        };
        found.push(("postgres", Action::Postgres(p)));
    }
    if let Some(p) = postgres_restore {
        let p = PostgresRestore {
            repo: repo(
                "postgresRestore",
                p.repository,
                p.password_file,
                p.env_file,
                p.password_from,
            )?,
            snapshot: text(p.snapshot),
            filename: p.filename,
            database: p.database,
            replace: p.replace,
            host: p.host,
            port: p.port,
            username: p.username,
            run_as: p.run_as,
            tags: strings(&p.tags),
        };
        found.push(("postgresRestore", Action::PostgresRestore(p)));
    }
    if let Some(s) = snapraid {
        let s = SnapraidTask {
            operation: snapraid_op(s.operation) as i32,
            config: s.config,
            scrub_percent: s.scrub_percent,
            scrub_older_than_days: s.scrub_older_than_days,
        };
        found.push(("snapraid", Action::Snapraid(s)));
    }
    if let Some(r) = drill {
        let r = RestoreDrill {
            repo: repo(
                "drill",
                r.repository,
                r.password_file,
                r.env_file,
                r.password_from,
            )?,
            snapshot: text(r.snapshot),
            sample_files: r.sample_files,
            scratch_dir: r.scratch_dir,
            tags: strings(&r.tags),
            host: r.host,
        };
        found.push(("drill", Action::Drill(r)));
    }
    let action = exactly_one("spec.task.backup", OPERATIONS, found)?;
    Ok(BackupTask {
        name: name.unwrap_or_default(),
        max_age_ms: millis(max_age),
        retention: retention.map(retention_policy),
        action: Some(action),
    })
}

fn retention_policy(r: d::RetentionDoc) -> Retention {
    Retention {
        keep_last: r.keep_last,
        keep_hourly: r.keep_hourly,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
        prune: r.prune,
    }
}

fn snapraid_op(op: d::SnapraidOp) -> SnapraidOperation {
    match op {
        d::SnapraidOp::Sync => SnapraidOperation::Sync,
        d::SnapraidOp::Scrub => SnapraidOperation::Scrub,
        d::SnapraidOp::Status => SnapraidOperation::Status,
        d::SnapraidOp::Diff => SnapraidOperation::Diff,
    }
}
