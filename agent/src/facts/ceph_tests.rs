//! Unit tests of the Ceph status collector: real `ceph status -f json` documents (see
//! `testdata/ceph/SOURCE.md`), keyring lookup, and stand-in `ceph` programs that fail, print
//! garbage or hang.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::facts::testutil::write;
use crate::facts::CollectorError;

const LUMINOUS: &str = include_str!("testdata/ceph/status-luminous-12.1.3.json");
const QUINCY: &str = include_str!("testdata/ceph/status-quincy.json");

/// Proxmox's `ceph.conf`: the keyring lives in `/etc/pve/priv`.
const PVE_CONF: &str = "[global]\n\t fsid = 4a1b2c3d-5e6f-4789-8abc-def012345678\n\
                        [client]\n\t keyring = /etc/pve/priv/$cluster.$name.keyring\n";

#[test]
fn luminous_document() {
    let status = parse_status(LUMINOUS).unwrap();
    assert_eq!(
        status,
        CephStatus {
            health: "HEALTH_WARN".into(),
            checks: vec![
                "OSD_DOWN".into(),
                "OSD_HOST_DOWN".into(),
                "PG_AVAILABILITY".into(),
                "POOL_APP_NOT_ENABLED".into()
            ],
            mons: 3,
            quorum: vec![
                "rook-ceph-mon0".into(),
                "rook-ceph-mon2".into(),
                "rook-ceph-mon1".into()
            ],
            osds: 2,
            osds_up: 1,
            osds_in: 2,
            pgs: 200,
            pg_states: vec![
                PgState {
                    state: "active+clean".into(),
                    count: 99
                },
                PgState {
                    state: "stale+active+clean".into(),
                    count: 101
                },
            ],
            // 33436786688, 13611479040, 19825307648 rounded down to 16 MiB
            bytes_total: 33_420_214_272,
            bytes_used: 13_606_322_176,
            bytes_avail: 19_813_892_096,
        }
    );
}

#[test]
fn quincy_document() {
    let status = parse_status(QUINCY).unwrap();
    assert_eq!(status.health, "HEALTH_OK");
    assert!(status.checks.is_empty());
    assert_eq!((status.mons, status.quorum.len()), (3, 3));
    assert_eq!((status.osds, status.osds_up, status.osds_in), (1, 1, 1));
    assert_eq!((status.pgs, status.bytes_total), (0, 0));
    let json = serde_json::to_value(&status).unwrap();
    assert!(json.get("pg_states").is_none(), "empty lists are left out");
    assert_eq!(json["osds_up"], 1);
}

#[test]
fn documents_that_are_not_a_status() {
    assert!(parse_status("HEALTH_OK")
        .unwrap_err()
        .starts_with("not JSON"));
    assert_eq!(parse_status("{}").unwrap_err(), "no health status");
    assert_eq!(
        parse_status(r#"{"health":{"status":"HEALTH_OK"}}"#).unwrap_err(),
        "no monitor map"
    );
}

#[test]
fn keyring_places() {
    assert_eq!(
        keyrings(PVE_CONF)[0],
        "/etc/pve/priv/ceph.client.admin.keyring"
    );
    let conf = "[global]\nkeyring = /g\n[client.admin]\nkeyring = /a\n[osd]\nkeyring = /o\n";
    let found = keyrings(conf);
    assert_eq!(found[..2], ["/a".to_owned(), "/g".to_owned()]);
    assert_eq!(found[2], "/etc/ceph/ceph.client.admin.keyring");
    assert!(!found.contains(&"/o".to_owned()));
}

/// A fixture root with a Proxmox-style keyring, and a stand-in `ceph` running `script`.
fn host(dir: &Path, script: &str) -> Probe {
    let root = dir.join("root");
    write(
        &root,
        "etc/pve/priv/ceph.client.admin.keyring",
        "[client.admin]\n",
    );
    write(dir, "bin/ceph", script);
    let bin: PathBuf = dir.join("bin");
    std::fs::set_permissions(bin.join("ceph"), std::fs::Permissions::from_mode(0o755)).unwrap();
    Probe::with_programs(&root, vec![bin])
}

fn ask(probe: &Probe) -> (Option<CephStatus>, Vec<CollectorError>) {
    let mut problems = Problems::default();
    let status = status(probe, PVE_CONF, &mut problems);
    (status, problems.list().to_vec())
}

#[test]
fn status_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("status.json");
    std::fs::write(&doc, LUMINOUS).unwrap();
    let args = dir.path().join("args");
    let probe = host(
        dir.path(),
        &format!(
            "#!/bin/sh\necho \"$@\" > {}\ncat {}\n",
            args.display(),
            doc.display()
        ),
    );
    let (status, problems) = ask(&probe);
    assert_eq!(problems, vec![]);
    assert_eq!(status.unwrap().osds_up, 1);
    assert_eq!(
        std::fs::read_to_string(args).unwrap(),
        "status -f json --connect-timeout 4\n"
    );
}

#[test]
fn no_keyring_no_question() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("asked");
    let probe = host(
        dir.path(),
        &format!("#!/bin/sh\ntouch {}\n", marker.display()),
    );
    std::fs::remove_file(
        dir.path()
            .join("root/etc/pve/priv/ceph.client.admin.keyring"),
    )
    .unwrap();
    assert_eq!(ask(&probe), (None, vec![]));
    assert!(!marker.exists(), "ceph was run without a keyring");
}

#[test]
fn a_failing_or_babbling_ceph_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let probe = host(
        dir.path(),
        "#!/bin/sh\necho '[errno 2] RADOS object not found (error connecting to the cluster)' >&2\nexit 1\n",
    );
    let (status, problems) = ask(&probe);
    assert_eq!(status, None);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].collector, "ceph");
    assert!(
        problems[0]
            .message
            .ends_with("failed (exit code 1): [errno 2] RADOS object not found (error connecting to the cluster)"),
        "{problems:?}"
    );

    let probe = host(dir.path(), "#!/bin/sh\necho 'HEALTH_OK'\n");
    let (_, problems) = ask(&probe);
    assert!(problems[0]
        .message
        .starts_with("cannot read the output of '"));
    assert!(problems[0].message.contains("': not JSON"), "{problems:?}");
}

/// A `ceph` that hangs (a cluster without quorum) is killed at the deadline, with the child it
/// started, and the problem is reported.
#[test]
fn a_hung_ceph_is_killed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let probe = host(dir.path(), "#!/bin/sh\nsleep 600\n");
    let (status, problems) = ask(&probe);
    assert_eq!(status, None);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].message.ends_with(
            "status -f json --connect-timeout 4' did not finish within 5s and was killed"
        ),
        "{problems:?}"
    );
}
