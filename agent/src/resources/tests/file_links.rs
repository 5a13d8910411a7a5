//! File resources against planted symlinks, hard links and directories other users can write
//! (issue 11): refused by default, never leaking the other file's content into a diff, never
//! changing it; `followSymlinks` and `allowUnsafeParent` opt in.

use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};

use lab_proto::v1::{FileResource, Presence};

use super::*;

const SECRET: &str = "root-only RT-SECRET-4711\n";

fn file(path: &Path, content: &str) -> Resource {
    spec(FileResource {
        path: path_str(path),
        content: content.into(),
        ..Default::default()
    })
}

fn spec(f: FileResource) -> Resource {
    res(resource::Kind::File(f))
}

/// A 0600 file only root may read, as the attacker's target.
fn secret_file(dir: &Path) -> PathBuf {
    let p = dir.join("secret");
    std::fs::write(&p, SECRET).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn assert_untouched(p: &Path) {
    assert_eq!(std::fs::read_to_string(p).unwrap(), SECRET);
    assert_eq!(std::fs::metadata(p).unwrap().mode() & 0o7777, 0o600);
}

/// Runs `resource` in check mode and for real; both fail without showing the secret.
async fn refused(resource: Resource, want: &str) {
    for check in [true, false] {
        let (report, out) = run(check, vec![resource.clone()]).await;
        let got = &report.resources[0].report;
        assert_status(got, Status::Failed);
        assert!(got.message.contains(want), "{check}: {got:?}");
        let everything = format!("{report:?}{out}");
        assert!(!everything.contains("RT-SECRET"), "{everything}");
    }
}

#[tokio::test]
async fn a_planted_symlink_is_refused_and_its_target_is_neither_shown_nor_changed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let link = dir.path().join("app.conf");
    symlink(&secret, &link).unwrap();

    refused(file(&link, "x=1\n"), "is a symlink (to ").await;
    refused(
        // The same content, so only a mode change: also refused, the mode stays.
        spec(FileResource {
            path: path_str(&link),
            content: SECRET.into(),
            mode: "0644".into(),
            ..Default::default()
        }),
        "set followSymlinks: true",
    )
    .await;
    assert_untouched(&secret);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // Opting in manages the target, as before.
    let follow = spec(FileResource {
        path: path_str(&link),
        content: "via link\n".into(),
        follow_symlinks: true,
        ..Default::default()
    });
    assert_status(&one(false, follow).await, Status::Changed);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "via link\n");
    assert_eq!(std::fs::metadata(&secret).unwrap().mode() & 0o7777, 0o600);

    // `absent` removes the link itself, never its target.
    std::fs::write(&secret, SECRET).unwrap();
    let absent = spec(FileResource {
        path: path_str(&link),
        state: Presence::Absent as i32,
        ..Default::default()
    });
    let got = one(false, absent).await;
    assert_eq!(
        (got.status, got.diff.as_str()),
        (Status::Changed, "remove symlink")
    );
    assert!(!link.exists());
    assert_untouched(&secret);
}

#[tokio::test]
async fn directories_other_users_can_write_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();

    // The attack: app.conf planted in a 1777 directory by another user.
    let link = shared.join("app.conf");
    symlink(&secret, &link).unwrap();
    lchown(&link, Some(65534), None).unwrap();
    refused(
        file(&link, "x=1\n"),
        "shared is writable by all users (mode 1777), so another user could redirect",
    )
    .await;
    // Allowing the directory still does not follow the link.
    let allowed = |path: &Path| {
        spec(FileResource {
            path: path_str(path),
            content: "x=1\n".into(),
            allow_unsafe_parent: true,
            ..Default::default()
        })
    };
    refused(allowed(&link), "is a symlink").await;
    // A hard link to the secret (where the kernel allows one) is another file's name.
    let hard = shared.join("hard.conf");
    std::fs::hard_link(&secret, &hard).unwrap();
    refused(allowed(&hard), "has 2 hard links").await;
    assert_untouched(&secret);

    // A directory planted on the way by another user is refused too.
    let sub = shared.join("sub");
    symlink("/etc", &sub).unwrap();
    lchown(&sub, Some(65534), None).unwrap();
    refused(
        file(&sub.join("motd"), "x\n"),
        "sub is a symlink owned by nobody",
    )
    .await;

    // With allowUnsafeParent a new file is written (by rename, never through a link).
    let fresh = shared.join("fresh.conf");
    assert_status(&one(false, allowed(&fresh)).await, Status::Changed);
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "x=1\n");
}
