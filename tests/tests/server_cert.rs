//! `lab-coordinator cert`: names added to the server certificate after init.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use lab_proto::ctlconfig::CtlConfig;
use lab_tests::{bin, labctl, stderr, Cluster};

#[test]
fn cert_adds_a_name_that_clients_can_dial_after_a_restart() {
    let mut c = Cluster::builder().agents(0).start();
    let port = c.coord.addr.rsplit(':').next().unwrap().to_owned();
    let mut cfg =
        CtlConfig::parse(&std::fs::read_to_string(c.coord.admin_config()).unwrap()).unwrap();
    cfg.contexts[0].servers = vec![format!("localhost:{port}")];
    let by_name = c.tmp.path().join("by-name.toml");
    std::fs::write(&by_name, cfg.render()).unwrap();
    let out = labctl(&by_name, &["nodes"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the certificate does not name localhost yet"
    );

    let bad = std::process::Command::new(bin("lab-coordinator"))
        .args(["cert", "--data-dir"])
        .arg(&c.coord.dir)
        .args(["--san", "not a name"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("'not a name'"), "{}", stderr(&bad));

    let out = std::process::Command::new(bin("lab-coordinator"))
        .args(["cert", "--data-dir"])
        .arg(&c.coord.dir)
        .args(["--san", "localhost"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("127.0.0.1, localhost") && said.contains("restart"),
        "{said}"
    );

    c.coord.stop(false);
    c.coord.start();
    let out = labctl(&by_name, &["nodes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The address in the certificate from init still works.
    assert!(c.labctl(&["nodes"]).status.success());
}
