//! Filesystem usage (`statvfs(2)` through nix) with a deadline: a FUSE filesystem whose daemon
//! hangs (mergerfs, sshfs) blocks `statvfs` until it answers, possibly forever.
//!
//! The calls run one after another on a helper thread; whatever has not answered within
//! [`USAGE_TIMEOUT`] is left without usage and reported. The mount point the helper is stuck
//! on is remembered until the call returns, and skipped (reported again) by later collections,
//! so a mount that never answers costs one blocked thread, not one per collection.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long all `statvfs` calls of one collection may take together.
pub const USAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Usage is rounded down to a multiple of this, so facts do not change with every write.
pub const USAGE_GRANULE: u64 = 16 << 20;

/// Size, used and available bytes of one filesystem, rounded down to [`USAGE_GRANULE`].
pub type Usage = (u64, u64, u64);

/// A `statvfs` call (tests stand in one that hangs).
type StatCall = Arc<dyn Fn(&str) -> Option<Usage> + Send + Sync>;

/// Mount points whose `statvfs` has not returned yet (from this or an earlier collection).
static STUCK: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The usage of each of `mount_points` (in order; `None` where unknown), and a message for each
/// mount point that did not answer in time.
pub fn usage_of(mount_points: &[String]) -> (Vec<Option<Usage>>, Vec<String>) {
    usage_with(mount_points, USAGE_TIMEOUT, Arc::new(statvfs))
}

/// [`usage_of`] with the deadline and the call given (tests stand in a call that hangs).
fn usage_with(
    mount_points: &[String],
    timeout: Duration,
    call: StatCall,
) -> (Vec<Option<Usage>>, Vec<String>) {
    let mut usage = vec![None; mount_points.len()];
    let mut problems = Vec::new();
    let stuck = STUCK.lock().map(|s| s.clone()).unwrap_or_default();
    let mut todo = Vec::new();
    for (i, mount) in mount_points.iter().enumerate() {
        if stuck.contains(mount) {
            problems.push(still_stuck(mount));
        } else {
            todo.push((i, mount.clone()));
        }
    }
    if todo.is_empty() {
        return (usage, problems);
    }
    let (tx, rx) = mpsc::channel::<(usize, Option<Usage>)>();
    let work = todo.clone();
    let spawned = std::thread::Builder::new()
        .name("facts-statvfs".to_owned())
        .spawn(move || {
            for (i, mount) in work {
                mark(&mount, true);
                let answer = call(&mount);
                mark(&mount, false);
                if tx.send((i, answer)).is_err() {
                    return;
                }
            }
        });
    if spawned.is_err() {
        problems.push("cannot start a thread for statvfs; usage left out".to_owned());
        return (usage, problems);
    }
    let deadline = Instant::now() + timeout;
    let mut answered = BTreeSet::new();
    while answered.len() < todo.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, answer)) => {
                usage[i] = answer;
                answered.insert(i);
            }
            Err(_) => break,
        }
    }
    for (i, mount) in &todo {
        if !answered.contains(i) {
            problems.push(format!(
                "statvfs of {mount} did not answer within {}; its usage is left out (is its \
                 server or FUSE daemon hung?)",
                humantime::format_duration(timeout)
            ));
        }
    }
    (usage, problems)
}

fn still_stuck(mount: &str) -> String {
    format!(
        "statvfs of {mount} has not answered since an earlier collection; its usage is left \
         out (is its server or FUSE daemon hung?)"
    )
}

fn mark(mount: &str, busy: bool) {
    if let Ok(mut stuck) = STUCK.lock() {
        if busy {
            stuck.insert(mount.to_owned());
        } else {
            stuck.remove(mount);
        }
    }
}

/// `statvfs` of a mount point: (size, used, available) in bytes, rounded down to
/// [`USAGE_GRANULE`].
fn statvfs(mount_point: &str) -> Option<Usage> {
    let st = nix::sys::statvfs::statvfs(mount_point).ok()?;
    #[allow(clippy::unnecessary_cast)] // c_ulong and fsblkcnt_t differ by platform
    let (frsize, blocks, free, avail) = (
        st.fragment_size() as u64,
        st.blocks() as u64,
        st.blocks_free() as u64,
        st.blocks_available() as u64,
    );
    let bytes = |n: u64| n.saturating_mul(frsize) / USAGE_GRANULE * USAGE_GRANULE;
    Some((
        bytes(blocks),
        bytes(blocks.saturating_sub(free)),
        bytes(avail),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn the_root_filesystem_has_usage() {
        let (usage, problems) = usage_of(&["/".to_owned()]);
        assert!(problems.is_empty(), "{problems:?}");
        let (size, used, avail) = usage[0].unwrap();
        assert!(size > 0 && used <= size && avail <= size);
        assert_eq!(size % USAGE_GRANULE, 0);
    }

    #[test]
    fn a_missing_mount_point_has_no_usage_and_no_problem() {
        let (usage, problems) = usage_of(&["/nonexistent-lab-mount".to_owned()]);
        assert_eq!(usage, vec![None]);
        assert!(problems.is_empty());
    }

    /// A mount whose `statvfs` hangs: the ones before it have usage, it and the ones after it
    /// are reported; the next collection skips it while it is still stuck, and measures it
    /// again once the call returned.
    #[test]
    fn a_hung_mount_is_reported_and_skipped_until_it_answers() {
        let release = Arc::new(AtomicBool::new(false));
        let hold = release.clone();
        let call: StatCall = Arc::new(move |mount: &str| {
            if mount == "/lab-test/hung" {
                while !hold.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Some((USAGE_GRANULE, 0, USAGE_GRANULE))
        });
        let mounts: Vec<String> = ["/lab-test/a", "/lab-test/hung", "/lab-test/b"]
            .map(str::to_owned)
            .to_vec();
        let (usage, problems) = usage_with(&mounts, Duration::from_millis(200), call.clone());
        assert!(usage[0].is_some());
        assert_eq!(usage[1..], [None, None]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("statvfs of /lab-test/hung did not answer within 200ms"));

        let (usage, problems) = usage_with(&mounts, Duration::from_millis(200), call.clone());
        assert!(usage[0].is_some() && usage[2].is_some(), "{usage:?}");
        assert_eq!(usage[1], None);
        assert_eq!(problems, vec![still_stuck("/lab-test/hung")]);

        release.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while STUCK.lock().unwrap().contains("/lab-test/hung") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (usage, problems) = usage_with(&mounts, Duration::from_secs(10), call);
        assert!(usage.iter().all(Option::is_some), "{usage:?}");
        assert!(problems.is_empty(), "{problems:?}");
    }
}
