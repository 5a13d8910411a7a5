//! SnapRAID end to end: the test builds an array of separate tmpfs filesystems (two data
//! disks, parity, content) and runs `snapraid sync`, `diff`, `scrub` and `status` through
//! `labctl apply -f` on a real agent; a changed file is seen by diff and sync and reported in
//! the result.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::path::{Path, PathBuf};

use backup_util::{apply, job, random_file, require, Applied};
use lab_proto::v1::backup_result::Kind;
use lab_proto::v1::SnapraidSummary;
use lab_tests::{Cluster, Tmpfs};

/// Distinct tmpfs mounts under a temp dir, unmounted when dropped.
struct Array {
    dir: tempfile::TempDir,
    mounts: Vec<Tmpfs>,
}

impl Array {
    fn new() -> Array {
        require("snapraid", "snapraid");
        let dir = tempfile::tempdir().unwrap();
        let mut array = Array {
            dir,
            mounts: Vec::new(),
        };
        for name in ["d1", "d2", "parity", "content"] {
            let at = array.dir.path().join(name);
            array.mounts.push(Tmpfs::mount(&at, "32m"));
        }
        let conf = format!(
            "parity {p}/snapraid.parity\ncontent {c}/snapraid.content\ncontent {d1}/snapraid.content\ndata d1 {d1}/\ndata d2 {d2}/\n",
            p = array.disk("parity").display(),
            c = array.disk("content").display(),
            d1 = array.disk("d1").display(),
            d2 = array.disk("d2").display(),
        );
        std::fs::write(array.config(), conf).unwrap();
        array
    }

    fn disk(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("snapraid.conf")
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        // Unmount in reverse order, before the temp dir goes.
        while self.mounts.pop().is_some() {}
    }
}

fn snapraid(c: &Cluster, array: &Array, op: &str, extra: &str) -> Applied {
    let spec = job(
        "array",
        &format!(
            "    backup:\n      snapraid: {{operation: {op}, config: {}{extra}}}\n",
            array.config().display()
        ),
    );
    apply(c, &spec)
}

fn summary(run: &Applied) -> SnapraidSummary {
    match run.result().kind {
        Some(Kind::Snapraid(s)) => s,
        _ => panic!("no snapraid summary: {}", run.describe()),
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn sync_diff_and_scrub_on_a_real_array_report_a_changed_file() {
    let c = Cluster::builder().agents(1).start();
    let array = Array::new();
    random_file(&array.disk("d1").join("a.bin"), 2 << 20);
    random_file(&array.disk("d1").join("b.bin"), 300_000);
    random_file(&array.disk("d2").join("c.bin"), 1 << 20);
    std::fs::write(array.disk("d2").join("notes.txt"), "first\n").unwrap();

    let run = snapraid(&c, &array, "sync", "");
    run.assert_ok();
    let s = summary(&run);
    assert_eq!(
        (s.added, s.updated, s.removed, s.errors),
        (4, 0, 0, 0),
        "{s:?}"
    );
    assert!(array.disk("parity").join("snapraid.parity").exists());

    let run = snapraid(&c, &array, "diff", "");
    run.assert_ok();
    let s = summary(&run);
    assert!(s.in_sync && s.added == 0, "{s:?}");

    append(&array.disk("d2").join("notes.txt"), "second\n");
    let run = snapraid(&c, &array, "diff", "");
    run.assert_ok();
    let s = summary(&run);
    assert_eq!((s.updated, s.added, s.removed), (1, 0, 0), "{s:?}");
    assert!(!s.in_sync, "{s:?}");

    let run = snapraid(&c, &array, "sync", "");
    run.assert_ok();
    let s = summary(&run);
    assert_eq!((s.updated, s.errors), (1, 0), "{s:?}");

    let run = snapraid(
        &c,
        &array,
        "scrub",
        ", scrubPercent: 100, scrubOlderThanDays: 0",
    );
    run.assert_ok();
    let s = summary(&run);
    assert_eq!((s.errors, s.percent), (0, 100), "{s:?}");
    assert!(s.message.contains("Everything OK"), "{s:?}");

    let run = snapraid(&c, &array, "status", "");
    run.assert_ok();
    let s = summary(&run);
    assert!(s.in_sync && s.errors == 0, "{s:?}");
}
