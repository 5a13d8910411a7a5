//! The `task.backup` part of the spec file format (issue 5) as serde structs: camelCase,
//! unknown fields refused. The repository fields (`repository`, `passwordFile`, `envFile`) sit
//! directly in each operation, so they are repeated in every operation struct (serde's
//! `flatten` cannot be combined with `deny_unknown_fields`). `convert_backup` checks that
//! exactly one operation is given and builds the wire `BackupTask`.

use std::time::Duration;

use serde::Deserialize;

use super::doc::{duration, Str, ValueFromDoc};

/// `task.backup`: name, policy and exactly one operation key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackupDoc {
    /// Name in `labctl backups`; absent = the document's `metadata.name`.
    #[serde(default)]
    pub name: Option<String>,
    /// Maximum age of the last success before the backup shows red (humantime, e.g. 26h).
    #[serde(default, deserialize_with = "duration")]
    pub max_age: Option<Duration>,
    /// Retention policy (`forget`, and after a successful backup).
    pub retention: Option<RetentionDoc>,
    /// `restic backup` of paths.
    pub restic: Option<ResticDoc>,
    /// `restic forget` with `retention`.
    pub forget: Option<ForgetDoc>,
    /// `restic check`.
    pub check: Option<CheckDoc>,
    /// `restic snapshots`.
    pub snapshots: Option<SnapshotsDoc>,
    /// `restic restore`.
    pub restore: Option<RestoreDoc>,
    /// A PostgreSQL dump streamed into restic.
    pub postgres: Option<PostgresDoc>,
    /// Restore a PostgreSQL dump.
    pub postgres_restore: Option<PostgresRestoreDoc>,
    /// A SnapRAID operation.
    pub snapraid: Option<SnapraidDoc>,
    /// A restore drill.
    pub drill: Option<DrillDoc>,
}

/// `backup.retention`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RetentionDoc {
    /// --keep-last.
    #[serde(default)]
    pub keep_last: u32,
    /// --keep-hourly.
    #[serde(default)]
    pub keep_hourly: u32,
    /// --keep-daily.
    #[serde(default)]
    pub keep_daily: u32,
    /// --keep-weekly.
    #[serde(default)]
    pub keep_weekly: u32,
    /// --keep-monthly.
    #[serde(default)]
    pub keep_monthly: u32,
    /// --keep-yearly.
    #[serde(default)]
    pub keep_yearly: u32,
    /// --prune.
    #[serde(default)]
    pub prune: bool,
}

/// `backup.restic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResticDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Absolute paths to back up.
    #[serde(default)]
    pub paths: Vec<String>,
    /// --exclude patterns.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// --tag values.
    #[serde(default)]
    pub tags: Vec<Str>,
    /// --host.
    #[serde(default)]
    pub host: String,
}

/// `backup.forget`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForgetDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Only snapshots with these tags.
    #[serde(default)]
    pub tags: Vec<Str>,
    /// Only snapshots of this host.
    #[serde(default)]
    pub host: String,
}

/// `backup.check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CheckDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// --read-data-subset ("10%", "1/5", "500M").
    #[serde(default)]
    pub read_data_subset: Option<Str>,
}

/// `backup.snapshots`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotsDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Only snapshots with these tags.
    #[serde(default)]
    pub tags: Vec<Str>,
    /// Only snapshots of this host.
    #[serde(default)]
    pub host: String,
}

/// `backup.restore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Snapshot id or "latest"; absent = latest.
    #[serde(default)]
    pub snapshot: Option<Str>,
    /// Absolute directory to restore into.
    #[serde(default)]
    pub target: String,
    /// Only these paths of the snapshot.
    #[serde(default)]
    pub include: Vec<String>,
    /// Restrict "latest" to these tags.
    #[serde(default)]
    pub tags: Vec<Str>,
    /// Restrict "latest" to this host.
    #[serde(default)]
    pub host: String,
}

/// `backup.postgres`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Database; absent = the whole cluster (pg_dumpall).
    #[serde(default)]
    pub database: String,
    /// libpq host or socket directory.
    #[serde(default)]
    pub host: String,
    /// libpq port.
    #[serde(default)]
    pub port: u32,
    /// libpq role.
    #[serde(default)]
    pub username: String,
    /// OS user running pg_dump.
    #[serde(default)]
    pub run_as: String,
    /// File name inside the snapshot.
    #[serde(default)]
    pub filename: String,
    /// --tag values.
    #[serde(default)]
    pub tags: Vec<Str>,
    /// restic --host of the snapshot.
    #[serde(default)]
    pub restic_host: String,
}

/// `backup.postgresRestore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresRestoreDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Snapshot id or "latest"; absent = latest.
    #[serde(default)]
    pub snapshot: Option<Str>,
    /// File name inside the snapshot.
    #[serde(default)]
    pub filename: String,
    /// Target database.
    #[serde(default)]
    pub database: String,
    /// Replace an existing database.
    #[serde(default)]
    pub replace: bool,
    /// libpq host or socket directory.
    #[serde(default)]
    pub host: String,
    /// libpq port.
    #[serde(default)]
    pub port: u32,
    /// libpq role.
    #[serde(default)]
    pub username: String,
    /// OS user running psql.
    #[serde(default)]
    pub run_as: String,
    /// Restrict "latest" to these tags.
    #[serde(default)]
    pub tags: Vec<Str>,
}

/// `backup.snapraid`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapraidDoc {
    /// sync, scrub, status or diff.
    pub operation: SnapraidOp,
    /// snapraid.conf; absent = /etc/snapraid.conf.
    #[serde(default)]
    pub config: String,
    /// Scrub: percentage of the array.
    #[serde(default)]
    pub scrub_percent: u32,
    /// Scrub: minimum age of the blocks in days.
    #[serde(default)]
    pub scrub_older_than_days: u32,
}

/// `snapraid.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SnapraidOp {
    /// `snapraid sync`.
    Sync,
    /// `snapraid scrub`.
    Scrub,
    /// `snapraid status`.
    Status,
    /// `snapraid diff`.
    Diff,
}

/// `backup.drill`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DrillDoc {
    /// restic repository.
    #[serde(default)]
    pub repository: String,
    /// File on the node with the repository password.
    #[serde(default)]
    pub password_file: String,
    /// The repository password from a SOPS file, decrypted on the node.
    pub password_from: Option<ValueFromDoc>,
    /// File on the node with backend variables.
    #[serde(default)]
    pub env_file: String,
    /// Snapshot id or "latest"; absent = latest.
    #[serde(default)]
    pub snapshot: Option<Str>,
    /// Random files to verify; absent or 0 = all.
    #[serde(default)]
    pub sample_files: u32,
    /// Absolute scratch directory; absent = a temporary one.
    #[serde(default)]
    pub scratch_dir: String,
    /// Restrict "latest" to these tags.
    #[serde(default)]
    pub tags: Vec<Str>,
    /// Restrict "latest" to this host.
    #[serde(default)]
    pub host: String,
}
