//! The SnapRAID output parser, with output captured from snapraid 12 (Debian 12).

use super::*;

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

const DIFF_CHANGED: &str = "Loading state from /tmp/sA/c1/snapraid.content...
Comparing...
update small
add new
remove f1

       1 equal
       1 added
       1 removed
       1 updated
       0 moved
       0 copied
       0 restored
There are differences!
";

const DIFF_CLEAN: &str = "Loading state from /tmp/sA/c1/snapraid.content...
Comparing...

       3 equal
       0 added
       0 removed
       0 updated
       0 moved
       0 copied
       0 restored
No differences
";

const SCRUB_ERRORS: &str = "Self test...
Scrubbing...
Missing file '/tmp/sA/d1/f1'.
8%, 0 MB          \r100% completed, 3 MB accessed in 0:00    

     d1  0% | 
 parity 36% | **********************
            |______________________________________________________________
                           wait time (total, less is better)


      12 file errors
       0 io errors
       0 data errors
WARNING! Unexpected file errors!
Saving state to /tmp/sA/c1/snapraid.content...
";

const SCRUB_OK: &str = "Scrubbing...
11%, 0 MB          \r100% completed, 3 MB accessed in 0:00    

                           wait time (total, less is better)

Everything OK
Saving state to /tmp/sA/c1/snapraid.content...
Verified /tmp/sA/d1/snapraid.content in 0 seconds
";

const STATUS_UNSCRUBBED: &str = "SnapRAID status report:

   Files Fragmented Excess  Wasted  Used    Free  Use Name
            Files  Fragments  GB      GB      GB
       1       0       0     0.0       0       0   4% d1
       2       0       0     0.0       0       0   3% d2
 --------------------------------------------------------------------------
       3       0       0     0.0       0       0   4%

The oldest block was scrubbed 0 days ago, the median 0, the newest 0.

No sync is in progress.
The 100% of the array is not scrubbed.
No file has a zero sub-second timestamp.
No rehash is in progress or needed.
No error detected.
";

const STATUS_DANGER: &str = "No sync is in progress.
The full array was scrubbed at least one time.
DANGER! In the array there are 3 errors!
";

#[test]
fn diff_counts_changes() {
    let s = parse(SnapraidOperation::Diff, &lines(DIFF_CHANGED));
    assert_eq!(
        (s.added, s.removed, s.updated, s.moved, s.copied, s.restored),
        (1, 1, 1, 0, 0, 0)
    );
    assert!(!s.in_sync);
    assert_eq!(s.message, "There are differences!");
    let clean = parse(SnapraidOperation::Diff, &lines(DIFF_CLEAN));
    assert!(clean.in_sync);
    assert_eq!(clean.added + clean.updated, 0);
    assert_eq!(clean.message, "No differences");
}

#[test]
fn scrub_errors_are_counted() {
    let s = parse(SnapraidOperation::Scrub, &lines(SCRUB_ERRORS));
    assert_eq!(s.errors, 12);
    assert_eq!(s.message, "WARNING! Unexpected file errors!");
    let ok = parse(SnapraidOperation::Scrub, &lines(SCRUB_OK));
    assert_eq!(ok.errors, 0);
    assert_eq!(ok.message, "Everything OK");
}

#[test]
fn status_reports_unscrubbed_share_and_errors() {
    let s = parse(SnapraidOperation::Status, &lines(STATUS_UNSCRUBBED));
    assert_eq!(s.percent, 100);
    assert_eq!(s.errors, 0);
    assert!(s.in_sync);
    assert_eq!(s.message, "No error detected.");
    let d = parse(SnapraidOperation::Status, &lines(STATUS_DANGER));
    assert_eq!(d.errors, 3);
    assert_eq!(d.percent, 0);
    assert!(!d.in_sync);
    assert!(d.message.starts_with("DANGER!"));
}

#[test]
fn scrub_plans() {
    let plan = |p, o| {
        scrub_args(&SnapraidTask {
            scrub_percent: p,
            scrub_older_than_days: o,
            ..Default::default()
        })
    };
    assert_eq!(plan(0, 0), ["scrub"]);
    assert_eq!(plan(100, 0), ["-p", "100", "-o", "0", "scrub"]);
    assert_eq!(plan(12, 10), ["-p", "12", "-o", "10", "scrub"]);
    assert_eq!(plan(0, 30), ["-o", "30", "scrub"]);
}
