//! File resources: check mode, create with mode and owner, idempotence, templates, absent,
//! secrets, mode-only changes, binary content.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::resources::file::{parse_mode, FileSpec};
use lab_proto::v1::{FileResource, Presence};
use nix::unistd::{Group, User};

use super::*;

fn file(path: &Path, content: &str) -> FileResource {
    FileResource {
        path: path_str(path),
        content: content.into(),
        ..Default::default()
    }
}

fn r(f: FileResource) -> Resource {
    res(resource::Kind::File(f))
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn check_mode_reports_the_diff_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "motd");
    std::fs::write(&p, "old\nsame\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (report, out) = run(true, vec![r(file(&p, "new\nsame\n"))]).await;
    let got = &report.resources[0].report;
    assert_status(got, Status::Changed);
    let shown = path_str(&p);
    assert_eq!(
        got.diff,
        format!("--- {shown}\n+++ {shown}\n@@ -1,2 +1,2 @@\n-old\n+new\n same")
    );
    assert!(got.message.starts_with("would update: 0600 "), "{got:?}");
    assert!(report.check);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\nsame\n");
    assert_eq!(
        out,
        format!("file {shown}: would change ({})\n", got.message)
    );

    // A new file in check mode is not created.
    let new = tmp_path(&dir, "new");
    let got = one(true, r(file(&new, "hi\n"))).await;
    assert_status(&got, Status::Changed);
    assert!(got.diff.starts_with("--- /dev/null\n"), "{got:?}");
    assert!(!new.exists());
}

#[tokio::test]
async fn creates_with_mode_and_owner_then_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "conf");
    let spec = FileResource {
        mode: "0640".into(),
        owner: "nobody".into(),
        group: "nogroup".into(),
        ..file(&p, "a=1\n")
    };
    let got = one(false, r(spec.clone())).await;
    assert_status(&got, Status::Changed);
    assert_eq!(got.message, "created: 0640 nobody:nogroup, 4 bytes");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "a=1\n");
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    let nobody = User::from_name("nobody").unwrap().unwrap();
    let nogroup = Group::from_name("nogroup").unwrap().unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (nobody.uid.as_raw(), nogroup.gid.as_raw())
    );
    // no temp files left behind
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let again = one(false, r(spec.clone())).await;
    assert_status(&again, Status::Unchanged);
    assert_eq!(again.message, "0640 nobody:nogroup, 4 bytes");
    assert!(again.diff.is_empty());

    // New content keeps owner and mode when the resource does not give them.
    let got = one(false, r(file(&p, "a=2\n"))).await;
    assert_status(&got, Status::Changed);
    let meta = std::fs::metadata(&p).unwrap();
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid()),
        (0o640, nobody.uid.as_raw())
    );

    // A new file without a mode gets 0644.
    let plain = tmp_path(&dir, "plain");
    assert_status(&one(false, r(file(&plain, ""))).await, Status::Changed);
    assert_eq!(mode_of(&plain), 0o644);
}

#[tokio::test]
async fn templates_render_facts() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "os");
    let facts = crate::facts::to_json(&crate::facts::collect(Path::new("/")));
    let os = facts["platform"]["os"].as_str().unwrap().to_owned();
    assert_eq!(os, "debian", "the build machine is Debian");
    let spec = FileResource {
        template: true,
        ..file(
            &p,
            "os={{ facts.platform.os }} arch={{facts.platform.arch}}\n",
        )
    };
    assert_status(&one(false, r(spec)).await, Status::Changed);
    let arch = facts["platform"]["arch"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        format!("os={os} arch={arch}\n")
    );

    let unknown = FileResource {
        template: true,
        ..file(&p, "{{ facts.platform.no_such_fact }}")
    };
    let got = one(false, r(unknown)).await;
    assert_status(&got, Status::Failed);
    assert_eq!(
        got.message,
        "unknown fact 'facts.platform.no_such_fact' in the template; this node has no such fact"
    );
    assert!(std::fs::read_to_string(&p).unwrap().starts_with("os="));
}

#[tokio::test]
async fn absent_removes() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "gone");
    std::fs::write(&p, "bye\n").unwrap();
    let absent = FileResource {
        state: Presence::Absent as i32,
        ..file(&p, "")
    };
    let got = one(true, r(absent.clone())).await;
    assert_status(&got, Status::Changed);
    assert_eq!(got.message, "would remove");
    assert!(got.diff.ends_with("-bye\n"), "{got:?}");
    assert!(p.exists());
    let got = one(false, r(absent.clone())).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Changed, "removed")
    );
    assert!(!p.exists());
    let got = one(false, r(absent.clone())).await;
    assert_eq!(
        (got.status, got.message.as_str()),
        (Status::Unchanged, "absent")
    );

    let sub = tmp_path(&dir, "sub");
    std::fs::create_dir(&sub).unwrap();
    let got = one(
        false,
        r(FileResource {
            path: path_str(&sub),
            ..absent
        }),
    )
    .await;
    assert_status(&got, Status::Failed);
    assert!(got.message.contains("is a directory"), "{got:?}");
}

#[tokio::test]
async fn secrets_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "token");
    std::fs::write(&p, "old-secret-value\n").unwrap();
    let spec = FileResource {
        secret: true,
        mode: "0600".into(),
        ..file(&p, "new-secret-value\n")
    };
    let (report, out) = run(false, vec![r(spec)]).await;
    let got = &report.resources[0].report;
    assert_status(got, Status::Changed);
    assert!(got.diff.starts_with("(content redacted)"), "{got:?}");
    let everything = format!("{got:?}{out}");
    assert!(!everything.contains("secret-value"), "{everything}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "new-secret-value\n");
}

#[tokio::test]
async fn mode_only_changes_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "m");
    std::fs::write(&p, "x\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let spec = FileResource {
        mode: "0644".into(),
        ..file(&p, "x\n")
    };
    let got = one(true, r(spec.clone())).await;
    assert_eq!(
        (got.status, got.diff.as_str()),
        (Status::Changed, "mode 0600 → 0644")
    );
    assert_eq!(mode_of(&p), 0o600);
    let got = one(false, r(spec.clone())).await;
    assert_eq!(
        (got.status, got.diff.as_str()),
        (Status::Changed, "mode 0600 → 0644")
    );
    assert_eq!(mode_of(&p), 0o644);
    assert_status(&one(false, r(spec)).await, Status::Unchanged);

    // owner only
    let got = one(
        false,
        r(FileResource {
            owner: "nobody".into(),
            ..file(&p, "x\n")
        }),
    )
    .await;
    assert_status(&got, Status::Changed);
    assert!(
        got.diff.starts_with("owner ") && got.diff.ends_with(" → nobody"),
        "{got:?}"
    );
}

#[tokio::test]
async fn binary_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = tmp_path(&dir, "bin");
    std::fs::write(&p, [0xff, 0x00, 0xfe]).unwrap();
    let got = one(false, r(file(&p, "text\n"))).await;
    assert_eq!(
        (got.status, got.diff.as_str()),
        (Status::Changed, "binary content differs")
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "text\n");
}

#[tokio::test]
async fn bad_input_fails_the_resource() {
    let dir = tempfile::tempdir().unwrap();
    let sub = tmp_path(&dir, "sub");
    std::fs::create_dir(&sub).unwrap();
    let cases = [
        (file(Path::new("relative/x"), ""), "is not absolute"),
        (
            FileResource {
                mode: "99".into(),
                ..file(&tmp_path(&dir, "a"), "")
            },
            "invalid file mode",
        ),
        (
            FileResource {
                owner: "no-such-user-lab".into(),
                ..file(&tmp_path(&dir, "b"), "")
            },
            "unknown user 'no-such-user-lab'",
        ),
        (
            FileResource {
                group: "no-such-group-lab".into(),
                ..file(&tmp_path(&dir, "c"), "")
            },
            "unknown group",
        ),
        (
            file(&tmp_path(&dir, "missing/x"), ""),
            "does not exist; create it first",
        ),
        (file(&sub, ""), "is a directory"),
    ];
    for (spec, want) in cases {
        let got = one(false, r(spec.clone())).await;
        assert_status(&got, Status::Failed);
        assert!(got.message.contains(want), "{spec:?}: {got:?}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only sub"
    );
}

#[test]
fn modes() {
    assert_eq!(parse_mode(""), Ok(None));
    assert_eq!(parse_mode("0644"), Ok(Some(0o644)));
    assert_eq!(parse_mode("600"), Ok(Some(0o600)));
    assert_eq!(parse_mode("0o4755"), Ok(Some(0o4755)));
    for bad in [
        "999",
        "0x1",
        "17777",
        "-644",
        "+644",
        "rw-r--r--",
        "000000644",
    ] {
        assert!(parse_mode(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation() {
    let ok = FileResource {
        path: "/etc/motd".into(),
        mode: "0600".into(),
        owner: "nobody".into(),
        ..Default::default()
    };
    let spec = FileSpec::try_from(ok.clone()).unwrap();
    assert!(spec.present && spec.mode == Some(0o600) && spec.group.is_none());
    for bad in [
        FileResource {
            path: "etc/motd".into(),
            ..ok.clone()
        },
        FileResource {
            path: "/etc/../motd".into(),
            ..ok.clone()
        },
        FileResource {
            mode: "abc".into(),
            ..ok.clone()
        },
        FileResource {
            owner: "a:b".into(),
            ..ok.clone()
        },
        FileResource {
            state: 42,
            ..ok.clone()
        },
    ] {
        assert!(FileSpec::try_from(bad.clone()).is_err(), "{bad:?}");
    }
    assert_eq!(
        FileSpec::try_from(FileResource {
            path: "motd".into(),
            ..ok
        })
        .unwrap_err(),
        "file path 'motd' is not absolute; use a full path such as /etc/motd"
    );
}
