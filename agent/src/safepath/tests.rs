//! `resolve_dir` with real directories, modes, owners and symlinks in a temp dir (the tests run
//! as root, so "another user" is `nobody`).

use std::os::unix::fs::{lchown, symlink, PermissionsExt};

use super::*;

fn nobody() -> u32 {
    nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

fn mkdir(path: &Path, mode: u32) -> PathBuf {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

fn unsafe_message(r: Result<Resolved, DirError>) -> String {
    match r {
        Err(DirError::Unsafe(m)) => m,
        other => panic!("expected an unsafe directory, got {other:?}"),
    }
}

#[test]
fn a_private_dir_under_tmp_is_safe_but_tmp_itself_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(tmp.path()).unwrap();
    assert_eq!(
        resolve_dir(tmp.path(), false).unwrap(),
        Resolved {
            path: real,
            unsafe_allowed: false
        }
    );
    // A sticky world-writable directory is fine on the way, not as the directory written into.
    let shared = mkdir(&tmp.path().join("shared"), 0o1777);
    let m = unsafe_message(resolve_dir(&shared, false));
    assert!(
        m.ends_with("shared is writable by all users (mode 1777)"),
        "{m}"
    );
    let inner = mkdir(&shared.join("inner"), 0o755);
    assert!(resolve_dir(&inner, false).is_ok());
    let allowed = resolve_dir(&shared, true).unwrap();
    assert!(allowed.unsafe_allowed);
}

#[test]
fn writable_or_foreign_directories_on_the_way_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let open = mkdir(&tmp.path().join("open"), 0o777);
    let below = mkdir(&open.join("below"), 0o755);
    let m = unsafe_message(resolve_dir(&below, false));
    assert!(
        m.ends_with("open is writable by all users (mode 0777)"),
        "{m}"
    );

    let theirs = mkdir(&tmp.path().join("theirs"), 0o755);
    std::os::unix::fs::chown(&theirs, Some(nobody()), None).unwrap();
    let m = unsafe_message(resolve_dir(&mkdir(&theirs.join("x"), 0o755), false));
    assert!(m.ends_with("theirs is owned by nobody (not root)"), "{m}");

    let group = mkdir(&tmp.path().join("group"), 0o775);
    std::os::unix::fs::chown(&group, None, Some(65534)).unwrap();
    let m = unsafe_message(resolve_dir(&group, false));
    assert!(m.contains("group is writable by group "), "{m}");
}

#[test]
fn symlinks_are_followed_only_when_root_owns_them() {
    let tmp = tempfile::tempdir().unwrap();
    let real = std::fs::canonicalize(tmp.path()).unwrap();
    let target = mkdir(&tmp.path().join("target"), 0o755);
    symlink(&target, tmp.path().join("link")).unwrap();
    symlink("target/../target", tmp.path().join("rel")).unwrap();
    for name in ["link", "rel"] {
        let got = resolve_dir(&tmp.path().join(name), false).unwrap();
        assert_eq!(got.path, real.join("target"), "{name}");
    }
    // Planted by another user in a sticky directory: it could point anywhere.
    let shared = mkdir(&tmp.path().join("shared"), 0o1777);
    let planted = shared.join("planted");
    symlink("/etc", &planted).unwrap();
    lchown(&planted, Some(nobody()), None).unwrap();
    let m = unsafe_message(resolve_dir(&planted, false));
    assert!(m.ends_with("planted is a symlink owned by nobody"), "{m}");

    symlink("loop", tmp.path().join("loop")).unwrap();
    assert!(matches!(
        resolve_dir(&tmp.path().join("loop"), false),
        Err(DirError::Other(m)) if m.starts_with("too many symlinks")
    ));
}

#[test]
fn missing_and_non_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("a/b");
    assert_eq!(
        resolve_dir(&missing, false),
        Err(DirError::Missing(
            std::fs::canonicalize(tmp.path()).unwrap().join("a")
        ))
    );
    std::fs::write(tmp.path().join("f"), "").unwrap();
    assert!(matches!(
        resolve_dir(&tmp.path().join("f/x"), false),
        Err(DirError::Other(m)) if m.ends_with("f is not a directory")
    ));
}
