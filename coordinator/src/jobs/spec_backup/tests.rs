//! Unit tests of backup task validation: one good spec per operation, then each rule broken
//! once, checking that the message names the field.

use lab_proto::v1::{
    backup_task::Action, BackupTask, PostgresDump, PostgresRestore, ResticBackup, ResticCheck,
    ResticForget, ResticRepository, ResticRestore, ResticSnapshots, RestoreDrill, Retention,
    SnapraidOperation, SnapraidTask,
};

use super::{data_subset_ok, validate_backup};
use crate::error::ApiError;

fn repo() -> Option<ResticRepository> {
    Some(ResticRepository {
        repository: "/srv/restic/home".into(),
        password_file: "/etc/lab/restic.pass".into(),
        env_file: String::new(),
        password_from: None,
    })
}

fn task(action: Action) -> BackupTask {
    BackupTask {
        name: "home".into(),
        max_age_ms: 26 * 3600 * 1000,
        retention: None,
        action: Some(action),
    }
}

fn restic() -> ResticBackup {
    ResticBackup {
        repo: repo(),
        paths: vec!["/home".into()],
        exclude: vec!["*.tmp".into()],
        tags: vec!["home".into(), "nightly".into()],
        host: String::new(),
    }
}

/// The error message, or a panic naming `why` when the task was accepted.
fn refused(b: &BackupTask, why: &str) -> String {
    match validate_backup(b) {
        Err(ApiError::InvalidArgument(m)) => m,
        other => panic!("{why}: expected InvalidArgument, got {other:?}"),
    }
}

fn assert_refused(b: &BackupTask, field: &str) {
    let m = refused(b, field);
    assert!(m.contains(field), "message '{m}' does not name {field}");
}

#[test]
fn good_specs_of_every_operation_pass() {
    let good = [
        task(Action::Restic(restic())),
        BackupTask {
            retention: Some(Retention {
                keep_daily: 7,
                ..Default::default()
            }),
            ..task(Action::Forget(ResticForget {
                repo: repo(),
                tags: vec!["home".into()],
                host: "n1".into(),
            }))
        },
        task(Action::Check(ResticCheck {
            repo: repo(),
            read_data_subset: "10%".into(),
        })),
        task(Action::Snapshots(ResticSnapshots {
            repo: repo(),
            ..Default::default()
        })),
        task(Action::Restore(ResticRestore {
            repo: repo(),
            snapshot: "latest".into(),
            target: "/tmp/restore".into(),
            include: vec!["/home/alice".into()],
            ..Default::default()
        })),
        task(Action::Postgres(PostgresDump {
            repo: repo(),
            database: "app_db".into(),
            host: "/run/postgresql".into(),
            port: 5432,
            username: "backup".into(),
            run_as: "postgres".into(),
            filename: "app.sql".into(),
            ..Default::default()
        })),
        task(Action::PostgresRestore(PostgresRestore {
            repo: repo(),
            snapshot: "1a2b3c4d".into(),
            database: "app_drill".into(),
            ..Default::default()
        })),
        task(Action::Snapraid(SnapraidTask {
            operation: SnapraidOperation::Scrub as i32,
            config: "/etc/snapraid.conf".into(),
            scrub_percent: 10,
            scrub_older_than_days: 30,
        })),
        task(Action::Drill(RestoreDrill {
            repo: repo(),
            sample_files: 20,
            scratch_dir: "/var/tmp/drill".into(),
            ..Default::default()
        })),
    ];
    for b in &good {
        if let Err(e) = validate_backup(b) {
            panic!("{b:?} refused: {e:?}");
        }
    }
    // The name is optional.
    assert!(validate_backup(&BackupTask {
        name: String::new(),
        ..task(Action::Restic(restic()))
    })
    .is_ok());
}

#[test]
fn exactly_one_operation() {
    let mut b = task(Action::Restic(restic()));
    b.action = None;
    assert_refused(&b, "no operation");
}

#[test]
fn names() {
    for name in ["a b", "x/y", "..", &"n".repeat(64), "caf\u{e9}", "a\nb"] {
        let b = BackupTask {
            name: name.into(),
            ..task(Action::Restic(restic()))
        };
        assert_refused(&b, "backup.name");
    }
    let b = BackupTask {
        name: "home.db_2-x".into(),
        ..task(Action::Restic(restic()))
    };
    assert!(validate_backup(&b).is_ok());
}

#[test]
fn repository_rules() {
    let with = |f: &dyn Fn(&mut ResticRepository)| {
        let mut r = restic();
        if let Some(repo) = r.repo.as_mut() {
            f(repo);
        }
        task(Action::Restic(r))
    };
    assert_refused(&with(&|r| r.repository.clear()), "backup.restic.repository");
    assert_refused(
        &with(&|r| r.repository = "/srv/a\nb".into()),
        "backup.restic.repository",
    );
    assert_refused(
        &with(&|r| r.repository = "/srv/a\0b".into()),
        "backup.restic.repository",
    );
    assert_refused(
        &with(&|r| r.password_file.clear()),
        "backup.restic.passwordFile",
    );
    assert_refused(
        &with(&|r| r.password_file = "restic.pass".into()),
        "backup.restic.passwordFile",
    );
    assert_refused(
        &with(&|r| r.env_file = "env".into()),
        "backup.restic.envFile",
    );
    assert!(validate_backup(&with(&|r| r.env_file = "/etc/lab/b2.env".into())).is_ok());
    assert!(validate_backup(&with(
        &|r| r.repository = "s3:s3.amazonaws.com/bucket".into()
    ))
    .is_ok());
    let mut r = restic();
    r.repo = None;
    assert_refused(&task(Action::Restic(r)), "backup.restic.repository");
}

#[test]
fn restic_paths_tags_and_host() {
    let mut r = restic();
    r.paths.clear();
    assert_refused(&task(Action::Restic(r)), "backup.restic.paths");
    let mut r = restic();
    r.paths = vec!["home".into()];
    assert_refused(&task(Action::Restic(r)), "backup.restic.paths");
    let mut r = restic();
    r.tags = vec!["a,b".into()];
    assert_refused(&task(Action::Restic(r)), "backup.restic.tags");
    let mut r = restic();
    r.tags = vec!["a\nb".into()];
    assert_refused(&task(Action::Restic(r)), "backup.restic.tags");
    let mut r = restic();
    r.host = "n1,n2".into();
    assert_refused(&task(Action::Restic(r)), "backup.restic.host");
    let mut r = restic();
    r.exclude = vec!["a\nb".into()];
    assert_refused(&task(Action::Restic(r)), "backup.restic.exclude");
}

#[test]
fn restore_target_must_be_absolute() {
    let restore = |target: &str, snapshot: &str| {
        task(Action::Restore(ResticRestore {
            repo: repo(),
            snapshot: snapshot.into(),
            target: target.into(),
            ..Default::default()
        }))
    };
    assert_refused(&restore("", ""), "backup.restore.target");
    assert_refused(&restore("restore", ""), "backup.restore.target");
    assert_refused(&restore("/tmp/r", "--delete"), "backup.restore.snapshot");
    assert_refused(&restore("/tmp/r", "xyz"), "backup.restore.snapshot");
    assert!(validate_backup(&restore("/tmp/r", "")).is_ok());
}

#[test]
fn forget_needs_a_policy_that_keeps_something() {
    let forget = |retention: Option<Retention>| BackupTask {
        retention,
        ..task(Action::Forget(ResticForget {
            repo: repo(),
            ..Default::default()
        }))
    };
    assert_refused(&forget(None), "backup.retention");
    assert_refused(
        &forget(Some(Retention {
            prune: true,
            ..Default::default()
        })),
        "backup.retention",
    );
    assert!(validate_backup(&forget(Some(Retention {
        keep_last: 1,
        ..Default::default()
    })))
    .is_ok());
    // A policy that keeps nothing is refused on a backup too (restic would refuse it after the
    // backup); no policy at all is fine there.
    let with = |retention: Option<Retention>| BackupTask {
        retention,
        ..task(Action::Restic(restic()))
    };
    assert_refused(&with(Some(Retention::default())), "backup.retention");
    assert!(validate_backup(&with(None)).is_ok());
}

#[test]
fn read_data_subset_forms() {
    for good in ["10%", "2.5%", "100%", "1/5", "5/5", "500M", "2G", "1024"] {
        assert!(data_subset_ok(good), "{good}");
    }
    for bad in [
        "", "0%", "101%", "x%", "0/5", "6/5", "1/", "500MB", "M", "-1", "ten",
    ] {
        assert!(!data_subset_ok(bad), "{bad}");
    }
    let check = task(Action::Check(ResticCheck {
        repo: repo(),
        read_data_subset: "half".into(),
    }));
    assert_refused(&check, "backup.check.readDataSubset");
}

#[test]
fn postgres_names() {
    let dump = |f: &dyn Fn(&mut PostgresDump)| {
        let mut p = PostgresDump {
            repo: repo(),
            database: "app".into(),
            ..Default::default()
        };
        f(&mut p);
        task(Action::Postgres(p))
    };
    assert!(
        validate_backup(&dump(&|p| p.database.clear())).is_ok(),
        "pg_dumpall"
    );
    assert_refused(
        &dump(&|p| p.database = "app; drop".into()),
        "backup.postgres.database",
    );
    assert_refused(
        &dump(&|p| p.database = "-app".into()),
        "backup.postgres.database",
    );
    assert_refused(
        &dump(&|p| p.username = "a b".into()),
        "backup.postgres.username",
    );
    assert_refused(
        &dump(&|p| p.run_as = "root;id".into()),
        "backup.postgres.runAs",
    );
    assert_refused(&dump(&|p| p.port = 70000), "backup.postgres.port");
    assert_refused(&dump(&|p| p.host = "-h".into()), "backup.postgres.host");
    assert_refused(
        &dump(&|p| p.filename = "../x.sql".into()),
        "backup.postgres.filename",
    );
    assert_refused(
        &dump(&|p| p.restic_host = "a,b".into()),
        "backup.postgres.resticHost",
    );
    let restore = |database: &str| {
        task(Action::PostgresRestore(PostgresRestore {
            repo: repo(),
            database: database.into(),
            ..Default::default()
        }))
    };
    assert_refused(&restore(""), "backup.postgresRestore.database");
    assert_refused(&restore("a'b"), "backup.postgresRestore.database");
}

#[test]
fn snapraid_rules() {
    let snapraid = |operation: i32, config: &str, scrub_percent: u32| {
        task(Action::Snapraid(SnapraidTask {
            operation,
            config: config.into(),
            scrub_percent,
            scrub_older_than_days: 0,
        }))
    };
    assert_refused(&snapraid(0, "", 0), "backup.snapraid.operation");
    assert_refused(&snapraid(99, "", 0), "backup.snapraid.operation");
    assert_refused(
        &snapraid(SnapraidOperation::Sync as i32, "snapraid.conf", 0),
        "backup.snapraid.config",
    );
    assert_refused(
        &snapraid(SnapraidOperation::Scrub as i32, "", 101),
        "backup.snapraid.scrubPercent",
    );
    assert!(validate_backup(&snapraid(SnapraidOperation::Status as i32, "", 0)).is_ok());
}

#[test]
fn drill_scratch_dir() {
    let drill = |scratch: &str| {
        task(Action::Drill(RestoreDrill {
            repo: repo(),
            scratch_dir: scratch.into(),
            ..Default::default()
        }))
    };
    assert_refused(&drill("scratch"), "backup.drill.scratchDir");
    assert_refused(&drill("/"), "backup.drill.scratchDir");
    assert!(validate_backup(&drill("")).is_ok());
}

/// Whatever a peer sends decodes to some BackupTask; validation answers without panicking.
#[test]
fn mutated_wire_messages_never_panic() {
    use prost::Message;
    let seeds: Vec<Vec<u8>> = [
        task(Action::Restic(restic())),
        task(Action::Check(ResticCheck {
            repo: repo(),
            read_data_subset: "99.5%".into(),
        })),
        task(Action::PostgresRestore(PostgresRestore {
            repo: repo(),
            database: "db".into(),
            port: 5432,
            ..Default::default()
        })),
        task(Action::Snapraid(SnapraidTask {
            operation: 2,
            scrub_percent: 50,
            ..Default::default()
        })),
    ]
    .iter()
    .map(|t| t.encode_to_vec())
    .collect();
    let mut decoded = 0;
    for round in 0..20_000u32 {
        let mut bytes = seeds[round as usize % seeds.len()].clone();
        for _ in 0..=(rand::random::<u32>() % 4) {
            let i = rand::random::<u32>() as usize % bytes.len();
            bytes[i] = rand::random();
        }
        if let Ok(t) = BackupTask::decode(bytes.as_slice()) {
            decoded += 1;
            let _ = validate_backup(&t);
        }
    }
    assert!(decoded > 1000, "only {decoded} mutations decoded");
}

#[test]
fn the_password_comes_from_a_file_or_a_sops_file_not_both() {
    use lab_proto::v1::{value_from::Source, SopsValue, ValueFrom};
    let from = ValueFrom {
        source: Some(Source::Sops(SopsValue {
            file: "secrets/db.yaml".into(),
            document: include_str!("../../../../deploy/examples/secrets/db.yaml").into(),
            key: r#"["db"]["password"]"#.into(),
        })),
    };
    let mut b = restic();
    let repo = b.repo.as_mut().unwrap();
    repo.password_from = Some(from);
    assert_refused(&task(Action::Restic(b.clone())), "not both");
    b.repo.as_mut().unwrap().password_file.clear();
    validate_backup(&task(Action::Restic(b.clone()))).unwrap();
    b.repo.as_mut().unwrap().password_from = None;
    assert_refused(&task(Action::Restic(b)), "passwordFile is missing");
}
