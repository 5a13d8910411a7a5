//! Unit tests of the services collector against fixture trees and this machine.

use std::path::Path;

use super::*;
use crate::facts::testutil::write;

const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21341 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 25021 1 0000000000000000 100 0 0 10 0
   2: 0A00000A:0016 0A000001:D2F0 01 00000000:00000000 02:0009F0C6 00000000     0        0 61234 2 0000000000000000 20 4 29 10 -1
";

const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21343 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21350 1 0000000000000000 100 0 0 10 0
";

#[test]
fn listening_sockets_only() {
    assert_eq!(parse_listening(TCP), vec![22, 3306]);
    assert_eq!(parse_listening(TCP6), vec![22, 8080]);
    assert_eq!(parse_listening("header only\n"), Vec::<u16>::new());
}

#[test]
fn units_json() {
    let text = r#"[
        {"unit":"ssh.service","load":"loaded","active":"active","sub":"running","description":"OpenBSD Secure Shell server"},
        {"unit":"nfs-server.service","load":"loaded","active":"failed","sub":"failed","description":"NFS server"},
        {"unit":"backup.timer","load":"loaded","active":"active","sub":"waiting","description":"Backup"},
        {"unit":"apt-daily.service","load":"loaded","active":"inactive","sub":"dead","description":"Daily apt"},
        {"unit":"a-broken.mount","load":"loaded","active":"failed","sub":"failed","description":"x"}
    ]"#;
    let units = parse_units_json(text).unwrap();
    assert_eq!(units.active, 2);
    assert_eq!(units.failed, vec!["a-broken.mount", "nfs-server.service"]);
    assert_eq!(parse_units_json("Unknown output 'json'."), None);
}

#[test]
fn units_plain_text() {
    let text = "\
ssh.service                loaded active   running OpenBSD Secure Shell server
● nfs-server.service       loaded failed   failed  NFS server and services
apt-daily.service          loaded inactive dead    Daily apt download activities
-.mount                    loaded active   mounted Root Mount
";
    let units = parse_units_text(text);
    assert_eq!(units.active, 2);
    assert_eq!(units.failed, vec!["nfs-server.service"]);
}

#[test]
fn fixture_tree_has_ports_but_no_units() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "proc/net/tcp", TCP);
    write(root, "proc/net/tcp6", TCP6);
    let services = collect(&Probe::new(root), &mut Problems::default()).unwrap();
    assert_eq!(services.units, None, "units only for the running system");
    assert_eq!(services.tcp_listen_ports, vec![22, 3306, 8080]);
    assert_eq!(
        collect(&Probe::new(&root.join("missing")), &mut Problems::default()),
        None
    );
}

#[test]
fn this_machine() {
    let services = collect(&Probe::new(Path::new("/")), &mut Problems::default());
    if !Path::new("/run/systemd/system").exists() {
        assert_eq!(services.and_then(|s| s.units), None);
    }
}
