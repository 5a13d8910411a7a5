//! Parsers of restic's JSON listings, with output captured from restic 0.14.0.

use super::*;

const SNAPSHOTS: &str = r#"[{"time":"2026-11-26T10:09:04.487842613Z","parent":"0371a4d1e5f9f8e70b6c76e122833e3ba72a131b6de93b26615233a6e73daaad","tree":"d01f3d0eb032d9f4596ac9f5f703516840d064faf59b4f5e183daa4d2ccd9f38","paths":["/tmp/rA/data"],"hostname":"vm","username":"root","tags":["t1","t2"],"id":"622b0d62d36aeaee285271b1a6b4beae6ee6a7d539eb136512296f6b2e65d831","short_id":"622b0d62"}]"#;

const FORGET: &str = r#"[{"tags":null,"host":"vm","paths":["/tmp/rA/data"],"keep":[{"time":"2026-11-26T10:09:04.487842613Z","paths":["/tmp/rA/data"],"hostname":"vm","username":"root","id":"622b0d62d36aeaee285271b1a6b4beae6ee6a7d539eb136512296f6b2e65d831","short_id":"622b0d62"}],"remove":[{"time":"2026-11-26T10:09:02.876189932Z","paths":["/tmp/rA/data"],"hostname":"vm","username":"root","tags":["t1"],"id":"0371a4d1e5f9f8e70b6c76e122833e3ba72a131b6de93b26615233a6e73daaad","short_id":"0371a4d1"},{"time":"2026-11-26T10:08:56.374451592Z","paths":["/tmp/rA/data"],"hostname":"vm","username":"root","tags":["t1","t2"],"id":"829bfa2b6fcd5371c749be6688427b1a74366c0a827587b57375bfe08cee4cda","short_id":"829bfa2b"}],"reasons":[]}]"#;

const LS: [&str; 3] = [
    r#"{"time":"2026-11-26T10:09:04.487842613Z","paths":["/tmp/rA/data"],"hostname":"vm","username":"root","id":"622b0d62d36aeaee285271b1a6b4beae6ee6a7d539eb136512296f6b2e65d831","short_id":"622b0d62","struct_type":"snapshot"}"#,
    r#"{"name":"data","type":"dir","path":"/data","uid":0,"gid":0,"mode":2147484141,"permissions":"drwxr-xr-x","mtime":"2026-11-26T10:09:04.468244119Z","atime":"2026-11-26T10:09:04.468244119Z","ctime":"2026-11-26T10:09:04.468244119Z","struct_type":"node"}"#,
    r#"{"name":"big","type":"file","path":"/data/big","uid":0,"gid":0,"size":30000000,"mode":420,"permissions":"-rw-r--r--","mtime":"2026-11-26T10:08:53.588243834Z","atime":"2026-11-26T10:08:53.588243834Z","ctime":"2026-11-26T10:08:53.588243834Z","struct_type":"node"}"#,
];

#[test]
fn snapshots_listing() {
    let list = parse_snapshots(SNAPSHOTS).unwrap();
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s.short_id, "622b0d62");
    assert!(s.id.starts_with("622b0d62d36a"));
    assert_eq!(s.hostname, "vm");
    assert_eq!(s.paths, ["/tmp/rA/data"]);
    assert_eq!(s.tags, ["t1", "t2"]);
    assert_eq!(s.time_unix_ms, 1_795_687_744_487);
    assert!(parse_snapshots("[]").unwrap().is_empty());
    assert!(parse_snapshots("null").unwrap().is_empty());
    assert!(parse_snapshots("Fatal: x").is_err());
}

#[test]
fn forget_counts() {
    let s = parse_forget(FORGET, true).unwrap();
    assert_eq!((s.kept, s.removed, s.pruned), (1, 2, true));
    let none = parse_forget(r#"[{"keep":[{}],"remove":null}]"#, false).unwrap();
    assert_eq!((none.kept, none.removed), (1, 0));
}

#[test]
fn ls_lines() {
    match parse_ls_line(LS[0]).unwrap() {
        LsLine::Snapshot(s) => assert_eq!(s.short_id, "622b0d62"),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse_ls_line(LS[1]).unwrap(), LsLine::Other);
    assert_eq!(
        parse_ls_line(LS[2]).unwrap(),
        LsLine::File {
            path: "/data/big".into(),
            size: 30_000_000
        }
    );
    assert!(parse_ls_line("not json").is_err());
}

#[test]
fn env_files() {
    let text =
        "# comment\n\nexport AWS_ACCESS_KEY_ID=abc\nAWS_SECRET_ACCESS_KEY=\"s3cr=et\"\nB2='x'\n";
    assert_eq!(
        parse_env_file(text).unwrap(),
        [
            ("AWS_ACCESS_KEY_ID".to_owned(), "abc".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "s3cr=et".to_owned()),
            ("B2".to_owned(), "x".to_owned()),
        ]
    );
    let err = parse_env_file("A=1\nsecretvalue\n").unwrap_err();
    assert_eq!(err, "line 2 is not KEY=VALUE");
    assert!(parse_env_file("1A=x").is_err());
    assert!(parse_env_file("A B=x").is_err());
    // A malformed line is named by its number; none of its text is in the error.
    let err = parse_env_file("A=1\nAWS_SECRET_ACCESS_KEY RT-LEAK-4711=x\n").unwrap_err();
    assert!(err.starts_with("line 2: "), "{err}");
    for leak in ["RT-LEAK", "AWS_SECRET"] {
        assert!(!err.contains(leak), "{err}");
    }
}

#[test]
fn flags() {
    let r = Retention {
        keep_last: 1,
        keep_daily: 7,
        keep_weekly: 4,
        prune: true,
        ..Default::default()
    };
    assert_eq!(
        retention_args(&r),
        [
            "--keep-last",
            "1",
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--prune"
        ]
    );
    assert!(retention_args(&Retention {
        prune: true,
        ..Default::default()
    })
    .is_empty());
    assert_eq!(
        filter_args(&["a".into(), "b".into()], "h"),
        ["--tag", "a,b", "--host", "h"]
    );
    assert!(filter_args(&[], "").is_empty());
}

#[tokio::test]
async fn opening_a_repository_reads_the_env_file_and_checks_the_password_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("pw");
    let env = tmp.path().join("env");
    std::fs::write(&pw, "pw\n").unwrap();
    std::fs::write(&env, "AWS_SECRET_ACCESS_KEY=topsecret\nB2_ACCOUNT_ID=id\n").unwrap();
    let mut wire = ResticRepository {
        repository: "s3:https://s3.example/bucket".into(),
        password_file: pw.to_str().unwrap().into(),
        env_file: env.to_str().unwrap().into(),
        password_from: None,
    };
    let repo = Repo::open(Some(&wire)).await.unwrap();
    assert_eq!(
        repo.env["RESTIC_REPOSITORY"],
        "s3:https://s3.example/bucket"
    );
    assert_eq!(repo.env["RESTIC_PASSWORD_FILE"], wire.password_file);
    assert_eq!(repo.env["AWS_SECRET_ACCESS_KEY"], "topsecret");
    assert_eq!(repo.secrets, ["topsecret"]);
    let step = repo.step(&["snapshots"]);
    assert_eq!(step.argv, ["restic", "snapshots"]);
    assert!(!step.what().contains("topsecret"));

    // The password file's content is redacted too, should a program print it.
    std::fs::write(&pw, "hunter22\n").unwrap();
    let repo = Repo::open(Some(&wire)).await.unwrap();
    assert_eq!(repo.secrets, ["hunter22", "topsecret"]);

    std::fs::write(&env, "topsecret\n").unwrap();
    let err = Repo::open(Some(&wire)).await.unwrap_err();
    assert!(
        err.contains("line 1") && !err.contains("topsecret"),
        "{err}"
    );
    std::fs::write(&env, "AWS_SECRET_ACCESS_KEY topsecret=1\n").unwrap();
    let err = Repo::open(Some(&wire)).await.unwrap_err();
    assert!(
        err.starts_with(&format!("env file {}: line 1: ", wire.env_file))
            && !err.contains("topsecret"),
        "{err}"
    );
    // Too large is refused (not cut in the middle of a value), naming only the file.
    std::fs::write(&env, format!("A={}\n", "s".repeat(70_000))).unwrap();
    let err = Repo::open(Some(&wire)).await.unwrap_err();
    assert!(
        err.contains("larger than 64 KiB") && !err.contains("sss"),
        "{err}"
    );
    wire.password_file = tmp.path().join("missing").to_str().unwrap().into();
    let err = Repo::open(Some(&wire)).await.unwrap_err();
    assert!(
        err.contains("cannot read password file") && err.contains("missing"),
        "{err}"
    );
    assert!(Repo::open(None).await.is_err());
}
