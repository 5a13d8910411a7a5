//! Unit tests of `task.backup` in spec files: every operation converts to the expected
//! `BackupTask`, names default to `metadata.name`, unknown fields name their path, and the
//! shipped example passes the coordinator's checks.

use lab_proto::v1::{
    backup_task::Action, task_spec, BackupTask, PostgresDump, PostgresRestore, ResticBackup,
    ResticCheck, ResticForget, ResticRepository, ResticRestore, ResticSnapshots, RestoreDrill,
    Retention, SnapraidOperation, SnapraidTask,
};

use super::{parse, preflight, SpecJob};

const REPO: &str = "repository: /srv/r, passwordFile: /etc/lab/r.pass";

fn repo() -> Option<ResticRepository> {
    Some(ResticRepository {
        repository: "/srv/r".into(),
        password_file: "/etc/lab/r.pass".into(),
        env_file: String::new(),
        password_from: None,
    })
}

/// A Job document named `name` whose task is `backup:` with `body` (one line, YAML flow).
fn doc(name: &str, body: &str) -> String {
    format!(
        "apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  selector: node=n1\n  task:\n    backup: {body}\n"
    )
}

fn parse_one(text: &str) -> SpecJob {
    let mut jobs = parse::parse("b.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

fn backup_of(job: &SpecJob) -> BackupTask {
    match job.spec.task.clone().and_then(|t| t.kind) {
        Some(task_spec::Kind::Backup(b)) => b,
        other => panic!("not a backup task: {other:?}"),
    }
}

fn error(text: &str) -> String {
    match parse::parse("b.yaml", text) {
        Ok(jobs) => panic!("accepted: {jobs:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn restic_backup_with_policy() {
    let job = parse_one(&doc(
        "home-nightly",
        &format!(
            "{{name: home, maxAge: 26h, retention: {{keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 6, keepYearly: 1, keepHourly: 2, prune: true}}, restic: {{{REPO}, envFile: /etc/lab/b2.env, paths: [/home], exclude: ['*.tmp'], tags: [home, 2024], host: nas}}}}"
        ),
    ));
    assert_eq!(
        job.spec.name, "home-nightly",
        "JobSpec.name is metadata.name"
    );
    let expected = BackupTask {
        name: "home".into(),
        max_age_ms: 26 * 3_600_000,
        retention: Some(Retention {
            keep_last: 3,
            keep_hourly: 2,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            keep_yearly: 1,
            prune: true,
        }),
        action: Some(Action::Restic(ResticBackup {
            repo: Some(ResticRepository {
                env_file: "/etc/lab/b2.env".into(),
                ..repo().unwrap_or_default()
            }),
            paths: vec!["/home".into()],
            exclude: vec!["*.tmp".into()],
            tags: vec!["home".into(), "2024".into()],
            host: "nas".into(),
        })),
    };
    assert_eq!(backup_of(&job), expected);
    preflight(&job).unwrap();
}

#[test]
fn a_job_name_that_cannot_name_its_backup_is_refused_in_the_users_terms() {
    let text = doc(
        "\"nightly home\"",
        &format!("{{restic: {{{REPO}, paths: [/home]}}}}"),
    );
    let err = parse::parse("b.yaml", &text).unwrap_err().to_string();
    assert!(
        err.contains("metadata.name 'nightly home' also names the backup (spec.task.backup.name is not set), but '")
            && err.ends_with("set spec.task.backup.name or rename the job"),
        "{err}"
    );
    // With a backup name of its own, the job's name may be anything.
    let text = doc(
        "\"nightly home\"",
        &format!("{{name: home, restic: {{{REPO}, paths: [/home]}}}}"),
    );
    assert_eq!(backup_of(&parse_one(&text)).name, "home");
}

#[test]
fn name_defaults_to_metadata_name() {
    let job = parse_one(&doc(
        "home",
        &format!("{{restic: {{{REPO}, paths: [/home]}}}}"),
    ));
    let b = backup_of(&job);
    assert_eq!((b.name.as_str(), b.max_age_ms), ("home", 0));
    assert_eq!(b.retention, None);
    let text = format!(
        "apiVersion: labfleet/v1\nkind: Job\nspec:\n  selector: \"*\"\n  task:\n    backup: {{restic: {{{REPO}, paths: [/home]}}}}\n"
    );
    let job = parse_one(&text);
    assert_eq!(
        (backup_of(&job).name.as_str(), job.spec.name.as_str()),
        ("", "")
    );
}

#[test]
fn every_other_operation() {
    let cases: Vec<(String, Action)> = vec![
        (
            format!("{{retention: {{keepLast: 1}}, forget: {{{REPO}, tags: [a], host: h}}}}"),
            Action::Forget(ResticForget {
                repo: repo(),
                tags: vec!["a".into()],
                host: "h".into(),
            }),
        ),
        (
            format!("{{check: {{{REPO}, readDataSubset: 1/5}}}}"),
            Action::Check(ResticCheck {
                repo: repo(),
                read_data_subset: "1/5".into(),
            }),
        ),
        (
            format!("{{snapshots: {{{REPO}, tags: [a], host: h}}}}"),
            Action::Snapshots(ResticSnapshots {
                repo: repo(),
                tags: vec!["a".into()],
                host: "h".into(),
            }),
        ),
        (
            format!("{{restore: {{{REPO}, snapshot: 12345678, target: /tmp/r, include: [/home/a], tags: [a], host: h}}}}"),
            Action::Restore(ResticRestore {
                repo: repo(),
                snapshot: "12345678".into(),
                target: "/tmp/r".into(),
                include: vec!["/home/a".into()],
                tags: vec!["a".into()],
                host: "h".into(),
            }),
        ),
        (
            format!("{{postgres: {{{REPO}, database: app, host: /run/postgresql, port: 5433, username: u, runAs: postgres, filename: app.sql, tags: [db], resticHost: db1}}}}"),
            Action::Postgres(PostgresDump {
                repo: repo(),
                database: "app".into(),
                host: "/run/postgresql".into(),
                port: 5433,
                username: "u".into(),
                run_as: "postgres".into(),
                filename: "app.sql".into(),
                tags: vec!["db".into()],
                restic_host: "db1".into(),
            }),
        ),
        (
            format!("{{postgresRestore: {{{REPO}, snapshot: latest, filename: app.sql, database: app2, replace: true, host: h, port: 5432, username: u, runAs: postgres, tags: [db]}}}}"),
            Action::PostgresRestore(PostgresRestore {
                repo: repo(),
                snapshot: "latest".into(),
                filename: "app.sql".into(),
                database: "app2".into(),
                replace: true,
                host: "h".into(),
                port: 5432,
                username: "u".into(),
                run_as: "postgres".into(),
                tags: vec!["db".into()],
            }),
        ),
        (
            "{snapraid: {operation: scrub, config: /etc/snapraid.conf, scrubPercent: 5, scrubOlderThanDays: 10}}".into(),
            Action::Snapraid(SnapraidTask {
                operation: SnapraidOperation::Scrub as i32,
                config: "/etc/snapraid.conf".into(),
                scrub_percent: 5,
                scrub_older_than_days: 10,
            }),
        ),
        (
            format!("{{drill: {{{REPO}, snapshot: latest, sampleFiles: 20, scratchDir: /var/tmp/d, tags: [a], host: h}}}}"),
            Action::Drill(RestoreDrill {
                repo: repo(),
                snapshot: "latest".into(),
                sample_files: 20,
                scratch_dir: "/var/tmp/d".into(),
                tags: vec!["a".into()],
                host: "h".into(),
            }),
        ),
    ];
    for (body, action) in cases {
        let job = parse_one(&doc("b", &body));
        assert_eq!(backup_of(&job).action, Some(action), "{body}");
        preflight(&job).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
}

#[test]
fn exactly_one_operation() {
    let e = error(&doc("b", "{maxAge: 1h}"));
    assert!(
        e.contains("spec.task.backup: no kind given; give one of restic, forget, check"),
        "{e}"
    );
    let e = error(&doc(
        "b",
        &format!("{{restic: {{{REPO}, paths: [/a]}}, check: {{{REPO}}}}}"),
    ));
    assert!(
        e.contains("spec.task.backup: has restic and check; give exactly one of"),
        "{e}"
    );
}

#[test]
fn unknown_fields_and_bad_values_name_their_path() {
    let e = error(&doc("b", &format!("{{restic: {{{REPO}, path: [/a]}}}}")));
    assert!(
        e.contains("spec.task.backup.restic.path: unknown field 'path', expected one of"),
        "{e}"
    );
    let e = error(&doc("b", "{retention: {keepLst: 1}, forget: {}}"));
    assert!(
        e.contains("spec.task.backup.retention.keepLst: unknown field 'keepLst'"),
        "{e}"
    );
    let e = error(&doc("b", "{snapraid: {operation: fix}}"));
    assert!(e.contains("spec.task.backup.snapraid.operation: unknown variant 'fix', expected one of sync, scrub, status, diff"), "{e}");
    let e = error(&doc(
        "b",
        &format!("{{maxAge: 26, restic: {{{REPO}, paths: [/a]}}}}"),
    ));
    assert!(e.contains("spec.task.backup.maxAge: 26 has no unit"), "{e}");
    let e = error(&doc(
        "b",
        &format!("{{drill: {{{REPO}, sampleFiles: -1}}}}"),
    ));
    assert!(e.contains("spec.task.backup.drill.sampleFiles"), "{e}");
}

#[test]
fn coordinator_checks_run_before_submitting() {
    let job = parse_one(&doc("b", "{restic: {repository: /srv/r, paths: [/a]}}"));
    let e = preflight(&job).unwrap_err().to_string();
    assert!(e.contains("backup.restic.passwordFile is missing"), "{e}");
    let job = parse_one(&doc(
        "b",
        "{forget: {repository: /srv/r, passwordFile: /p}}",
    ));
    let e = preflight(&job).unwrap_err().to_string();
    assert!(e.contains("backup.forget: needs a retention policy"), "{e}");
    let job = parse_one(&doc(
        "b",
        &format!("{{name: \"bad name\", restic: {{{REPO}, paths: [/a]}}}}"),
    ));
    let e = preflight(&job).unwrap_err().to_string();
    assert!(e.contains("backup.name: 'bad name'"), "{e}");
}

#[test]
fn the_shipped_backup_example_is_valid() {
    let text = include_str!("../../../../deploy/examples/backup-home.yaml");
    let jobs = parse::parse("backup-home.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        preflight(job).unwrap_or_else(|e| panic!("{}: {e}", job.label()));
        assert_eq!(backup_of(job).name, "home", "{}", job.label());
    }
    let first = backup_of(&jobs[0]);
    assert_eq!(first.max_age_ms, 26 * 3_600_000);
    assert!(matches!(first.action, Some(Action::Restic(_))));
    assert!(first
        .retention
        .is_some_and(|r| r.prune && r.keep_daily == 7));
    assert!(
        matches!(backup_of(&jobs[1]).action, Some(Action::Check(c)) if c.read_data_subset == "5%")
    );
    assert!(matches!(backup_of(&jobs[2]).action, Some(Action::Drill(d)) if d.sample_files == 50));
    assert_eq!(jobs[2].spec.name, "home-drill");
}
