//! labfleet on real systemd hosts: Debian 12 containers with systemd as PID 1 (see
//! `lab_tests::systemd_host`), one coordinator host and two agent hosts shared by these tests
//! (`lab_tests::systemd_fleet`). Service and package resources act on real units and real dpkg;
//! agent restarts, reboots, package upgrades and purges happen for real. The hosts install the
//! .debs `deploy/build-packages` made.
//!
//! Needs Docker, debootstrap (the first run builds the Debian image, one to two minutes) and the
//! packages; without them every test fails saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab_tests::systemd_fleet::{fleet, install_deb, install_package, package, Fleet, Node};
use lab_tests::systemd_host::SystemdHost;
use lab_tests::{free_port, stderr, wait_until};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A config job with one resource, on one node.
fn config_job(node: &str, resource: &str) -> String {
    format!(
        r#"apiVersion: labfleet/v1
kind: Job
metadata: {{name: e2e-systemd}}
spec:
  selector: "node={node}"
  task:
    config:
      resources:
        - {resource}
"#
    )
}

/// Applies `resource` on `node`, requiring success; returns labctl's output.
fn apply_ok(f: &Fleet, node: &Node, resource: &str, extra: &[&str]) -> String {
    let out = f.apply(&config_job(&node.name, resource), extra);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply {resource} {extra:?}:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

const UNIT: &str = "labfleet-e2e-web.service";

/// The unit the service test ships: a long-running process, wanted by multi-user.target.
const UNIT_FILE: &str = "[Unit]\nDescription=labfleet e2e test service\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n";

fn unit_state(n: &Node) -> (String, String) {
    let active = n.host.exec(&format!("systemctl is-active {UNIT}"));
    let enabled = n.host.exec(&format!("systemctl is-enabled {UNIT}"));
    (
        stdout(&active).trim().to_owned(),
        stdout(&enabled).trim().to_owned(),
    )
}

#[test]
fn service_resources_start_stop_restart_enable_and_disable_a_unit() {
    let f = fleet();
    let n = &f.agents[0];
    let _lock = n.lock();
    n.host
        .write(&format!("/etc/systemd/system/{UNIT}"), UNIT_FILE);
    n.host.sh("systemctl daemon-reload");
    assert_eq!(unit_state(n), ("inactive".into(), "disabled".into()));

    let up = format!("service: {{unit: {UNIT}, state: running, enabled: true}}");
    let text = apply_ok(f, n, &up, &["--check"]);
    assert!(
        text.contains(&format!("deb-a: service {UNIT}: would change"))
            && text.contains("would enable, would start"),
        "check mode says what would change: {text}"
    );
    assert_eq!(
        unit_state(n),
        ("inactive".into(), "disabled".into()),
        "check mode changed nothing"
    );

    let text = apply_ok(f, n, &up, &[]);
    assert!(
        text.contains(&format!("deb-a: service {UNIT}: changed")),
        "{text}"
    );
    assert_eq!(unit_state(n), ("active".into(), "enabled".into()));
    let text = apply_ok(f, n, &up, &[]);
    assert!(
        text.contains(&format!(
            "service {UNIT}: unchanged (active (running), enabled)"
        )),
        "applying again changes nothing: {text}"
    );

    let pid = n.unit_prop(UNIT, "MainPID");
    let restarted = format!("service: {{unit: {UNIT}, state: restarted}}");
    let text = apply_ok(f, n, &restarted, &["--check"]);
    assert!(text.contains("would restart"), "{text}");
    assert_eq!(n.unit_prop(UNIT, "MainPID"), pid, "check mode restarted it");
    apply_ok(f, n, &restarted, &[]);
    let new_pid = n.unit_prop(UNIT, "MainPID");
    assert!(
        new_pid != pid && new_pid != "0",
        "restart gave a new main process ({pid} → {new_pid})"
    );

    let down = format!("service: {{unit: {UNIT}, state: stopped, enabled: false}}");
    let text = apply_ok(f, n, &down, &["--check"]);
    assert!(text.contains("would disable, would stop"), "{text}");
    assert_eq!(unit_state(n), ("active".into(), "enabled".into()));
    let text = apply_ok(f, n, &down, &[]);
    assert!(text.contains("changed"), "{text}");
    assert_eq!(unit_state(n), ("inactive".into(), "disabled".into()));
    let text = apply_ok(f, n, &down, &[]);
    assert!(text.contains("unchanged"), "{text}");
}

/// Builds `labfleet-e2e-hello_VERSION_all.deb` with dpkg-deb into `dir`.
fn build_test_package(dir: &Path, version: &str) -> std::path::PathBuf {
    let root = dir.join(format!("hello-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: labfleet-e2e-hello\nVersion: {version}\nArchitecture: all\n\
             Maintainer: labfleet tests <tests@labfleet.invalid>\n\
             Description: labfleet end-to-end test package\n \
             Installed and removed by a package resource.\n"
        ),
    )
    .unwrap();
    let bin = root.join("usr/bin/labfleet-e2e-hello");
    std::fs::write(&bin, "#!/bin/sh\necho hello from the e2e package\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = dir.join(format!("labfleet-e2e-hello_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb: {}", stderr(&out));
    deb
}

/// Turns the .debs in `dir` (inside the host) into a flat apt repository the host's apt uses.
const MAKE_REPO: &str = r#"set -e
cd "$1"
for d in *.deb; do
  dpkg-deb -f "$d"
  echo "Filename: ./$d"
  echo "Size: $(stat -c %s "$d")"
  echo "SHA256: $(sha256sum "$d" | cut -d' ' -f1)"
  echo
done > Packages
echo "deb [trusted=yes] file:$1 ./" > /etc/apt/sources.list.d/labfleet-e2e.list
apt-get update -qq
"#;

#[test]
fn package_resource_installs_and_removes_a_debian_package() {
    let f = fleet();
    let n = &f.agents[0];
    let _lock = n.lock();
    let dir = tempfile::tempdir().unwrap();
    let deb = build_test_package(dir.path(), "1.0-1");
    let repo = "/srv/labfleet-e2e-repo";
    n.host.sh(&format!("mkdir -p {repo}"));
    n.host.copy_in(&deb, &format!("{repo}/"));
    n.host.write("/root/make-repo", MAKE_REPO);
    n.host.sh(&format!("sh /root/make-repo {repo}"));
    let installed = || {
        n.host
            .exec("dpkg-query -W -f '${db:Status-Abbrev}${Version}' labfleet-e2e-hello")
            .stdout
    };
    assert!(!String::from_utf8_lossy(&installed()).starts_with("ii"));

    let want = "package: {name: labfleet-e2e-hello, state: installed}";
    let text = apply_ok(f, n, want, &["--check"]);
    assert!(
        text.contains("package labfleet-e2e-hello: would change (would install 1.0-1)"),
        "{text}"
    );
    assert!(
        n.host.exec("command -v labfleet-e2e-hello").status.code() != Some(0),
        "check mode installed nothing"
    );

    let text = apply_ok(f, n, want, &[]);
    assert!(
        text.contains("package labfleet-e2e-hello: changed (installed 1.0-1)"),
        "{text}"
    );
    assert_eq!(String::from_utf8_lossy(&installed()), "ii 1.0-1");
    assert_eq!(
        n.host.sh("labfleet-e2e-hello").trim(),
        "hello from the e2e package"
    );
    let text = apply_ok(f, n, want, &[]);
    assert!(text.contains("unchanged (installed 1.0-1)"), "{text}");

    let gone = "package: {name: labfleet-e2e-hello, state: absent}";
    let text = apply_ok(f, n, gone, &["--check"]);
    assert!(text.contains("would remove 1.0-1"), "{text}");
    assert_eq!(String::from_utf8_lossy(&installed()), "ii 1.0-1");
    let text = apply_ok(f, n, gone, &[]);
    assert!(text.contains("changed (removed)"), "{text}");
    assert!(!String::from_utf8_lossy(&installed()).starts_with("ii"));
    assert!(n.host.exec("command -v labfleet-e2e-hello").status.code() != Some(0));
    let text = apply_ok(f, n, gone, &[]);
    assert!(text.contains("unchanged (not installed)"), "{text}");
}

/// `labctl run --detach` on one node; the job id.
fn run_detached(f: &Fleet, node: &str, script: &str) -> String {
    f.labctl_ok(&[
        "run",
        "--detach",
        "-l",
        &format!("node={node}"),
        "--",
        "sh",
        "-c",
        script,
    ])
    .trim()
    .to_owned()
}

/// `labctl run` on one node that must succeed; its output.
fn run_ok(f: &Fleet, node: &str, script: &str) -> String {
    f.labctl_ok(&[
        "run",
        "-l",
        &format!("node={node}"),
        "--",
        "sh",
        "-c",
        script,
    ])
}

#[test]
fn restarting_lab_agent_during_a_task_makes_it_lost_never_rerun() {
    let f = fleet();
    let n = &f.agents[1];
    let _lock = n.lock();
    n.host.sh("rm -f /root/e2e-runs");
    let id = run_detached(f, &n.name, "echo run >> /root/e2e-runs; sleep 20");
    wait_until(
        || f.job(&id)["tasks"][0]["state"] == "running",
        Duration::from_secs(20),
        "task running",
    );
    let pid = n.unit_prop("lab-agent", "MainPID");
    n.host.sh("systemctl restart lab-agent");
    assert_ne!(n.unit_prop("lab-agent", "MainPID"), pid);
    let job = f.wait_job_done(&id, Duration::from_secs(30));
    assert_eq!(job["tasks"][0]["state"], "lost", "{job}");
    assert!(
        job["tasks"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("restarted"),
        "{job}"
    );
    // the restarted agent takes new work, and the lost task did not run again
    f.wait_online(&n.name, Duration::from_secs(30));
    run_ok(f, &n.name, "true");
    assert_eq!(n.host.sh("cat /root/e2e-runs"), "run\n");
}

/// SHA-256 of the node's identity file, inside its host.
fn identity_hash(n: &Node) -> String {
    n.host
        .sh("sha256sum /var/lib/lab-agent/node.pem | cut -d' ' -f1")
        .trim()
        .to_owned()
}

#[test]
fn a_rebooted_host_comes_back_online_with_the_same_identity() {
    let f = fleet();
    let n = &f.agents[1];
    let _lock = n.lock();
    let before = f.node(&n.name).unwrap();
    let hash = identity_hash(n);
    let booted = n.host.started_at();
    n.host.reboot();
    assert_ne!(n.host.started_at(), booted, "the container started again");
    assert_eq!(n.unit_prop("lab-agent", "UnitFileState"), "enabled");
    f.wait_online(&n.name, Duration::from_secs(60));
    let after = f.node(&n.name).unwrap();
    assert_eq!(after["enrolled"], before["enrolled"], "{after}");
    assert_eq!(after["cert_expires"], before["cert_expires"], "{after}");
    assert_eq!(identity_hash(n), hash, "node.pem unchanged");
    // the agent serving this node runs on the rebooted host: PID 1 there is systemd
    let text = run_ok(f, &n.name, "cat /proc/1/comm");
    assert!(text.contains(&format!("{}: systemd", n.name)), "{text}");
}

/// A copy of `deb` with its version raised to `VERSION+SUFFIX` (dpkg sorts it above), written
/// to `dir`: a newer build of the same package to upgrade to.
fn repack_newer(deb: &Path, dir: &Path, suffix: &str) -> std::path::PathBuf {
    let root = dir.join("repack");
    let out = Command::new("dpkg-deb")
        .arg("-R")
        .arg(deb)
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb -R: {}", stderr(&out));
    let control = root.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("Version in control")
        .to_owned();
    let newer = format!("{version}{suffix}");
    std::fs::write(
        &control,
        text.replace(
            &format!("Version: {version}\n"),
            &format!("Version: {newer}\n"),
        ),
    )
    .unwrap();
    let file = dir.join(format!("lab-agent_{newer}_amd64.deb"));
    let out = Command::new("dpkg-deb")
        .args(["-Zgzip", "-z1", "-b"]) // fast: the default xz takes seconds per MiB
        .arg(&root)
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb -b: {}", stderr(&out));
    file
}

fn installed_version(n: &Node, package: &str) -> String {
    n.host
        .sh(&format!("dpkg-query -W -f '${{Version}}' {package}"))
        .trim()
        .to_owned()
}

#[test]
fn upgrading_the_agent_package_restarts_it_and_keeps_the_node_identity() {
    let f = fleet();
    let n = &f.agents[1];
    let _lock = n.lock();
    let dir = tempfile::tempdir().unwrap();
    let newer = repack_newer(&package("lab-agent"), dir.path(), "+e2e1");
    let old_version = installed_version(n, "lab-agent");
    let before = f.node(&n.name).unwrap();
    let hash = identity_hash(n);
    let pid = n.unit_prop("lab-agent", "MainPID");

    install_deb(&n.host, &newer);
    assert_eq!(
        installed_version(n, "lab-agent"),
        format!("{old_version}+e2e1")
    );
    let new_pid = n.unit_prop("lab-agent", "MainPID");
    assert!(
        new_pid != pid && new_pid != "0",
        "the upgrade restarted the agent ({pid} → {new_pid})"
    );
    assert_eq!(n.unit_prop("lab-agent", "UnitFileState"), "enabled");
    assert_eq!(identity_hash(n), hash, "node.pem unchanged");
    f.wait_online(&n.name, Duration::from_secs(30));
    let after = f.node(&n.name).unwrap();
    assert_eq!(after["enrolled"], before["enrolled"], "{after}");
    assert_eq!(after["cert_expires"], before["cert_expires"], "{after}");
    run_ok(f, &n.name, "true");
}

/// Removes the agent package from the coordinator host, if there, with its state.
fn purge_agent(n: &Node) {
    n.host.sh(
        "if dpkg -s lab-agent >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get purge -y lab-agent; fi",
    );
}

#[test]
fn the_agent_unit_started_before_enrolling_stays_inactive() {
    let f = fleet();
    let n = &f.coord;
    let _lock = n.lock();
    purge_agent(n);
    let apt = install_package(&n.host, "lab-agent");
    assert!(
        apt.contains("lab-agent enroll"),
        "installing says what to do next: {apt}"
    );
    assert_eq!(n.unit_prop("lab-agent", "ActiveState"), "inactive");
    n.host.sh("systemctl start lab-agent");
    assert_eq!(n.unit_prop("lab-agent", "ActiveState"), "inactive");
    assert_eq!(n.unit_prop("lab-agent", "ConditionResult"), "no");
    assert_eq!(n.unit_prop("lab-agent", "NRestarts"), "0");
    let status =
        String::from_utf8_lossy(&n.host.exec("systemctl status lab-agent").stdout).into_owned();
    assert!(
        status.contains(
            "skipped because of an unmet condition check (ConditionPathExists=/var/lib/lab-agent/node.pem)"
        ),
        "systemctl status says why: {status}"
    );
    assert!(
        n.host.exec("pgrep -x lab-agent").status.code() == Some(1),
        "no agent process"
    );
}

#[test]
fn purging_the_agent_package_leaves_no_process_and_no_state() {
    let f = fleet();
    let n = &f.coord;
    let _lock = n.lock();
    purge_agent(n);
    install_package(&n.host, "lab-agent");
    let token = f.token();
    n.host.sh(&format!(
        "lab-agent enroll --coordinator {} --token {token} --name deb-c",
        f.addr
    ));
    n.host.sh("systemctl enable --now lab-agent");
    f.wait_online("deb-c", Duration::from_secs(30));
    run_ok(f, "deb-c", "true");
    let id = run_detached(f, "deb-c", "exec sleep 300");
    wait_until(
        || f.job(&id)["tasks"][0]["state"] == "running",
        Duration::from_secs(20),
        "task running",
    );

    let apt = n
        .host
        .sh("DEBIAN_FRONTEND=noninteractive apt purge -y lab-agent 2>&1");
    assert!(
        apt.contains("purge deletes /var/lib/lab-agent"),
        "purge says what it deletes: {apt}"
    );
    assert_eq!(
        n.host.exec("pgrep -a -x lab-agent").status.code(),
        Some(1),
        "no lab-agent process after purge: {}",
        n.host.sh("ps -eo pid,user,args")
    );
    assert_eq!(
        n.host.exec("pgrep -a -x sleep").status.code(),
        Some(1),
        "the running task's process is gone too: {}",
        n.host.sh("ps -eo pid,user,args")
    );
    assert_eq!(n.unit_prop("lab-agent", "LoadState"), "not-found");
    assert!(n.host.exec("test -e /var/lib/lab-agent").status.code() == Some(1));
    assert!(n.host.exec("test -e /usr/bin/lab-agent").status.code() == Some(1));
    wait_until(
        || f.node("deb-c").is_some_and(|n| n["online"] == false),
        Duration::from_secs(30),
        "deb-c offline after the purge",
    );
}

#[test]
fn the_coordinator_runs_as_its_own_user_with_a_private_state_dir() {
    let f = fleet();
    let n = &f.coord;
    assert_eq!(n.unit_prop("lab-coordinator", "ActiveState"), "active");
    assert_eq!(n.unit_prop("lab-coordinator", "Type"), "notify");
    let users = n.host.sh("ps -o user= -C lab-coordinator");
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["lab-coordinator"],
        "{}",
        n.host.sh("ps -eo pid,user,args")
    );
    assert_eq!(
        n.host.sh("stat -c '%a %U' /var/lib/lab-coordinator").trim(),
        "700 lab-coordinator"
    );
    let foreign = n
        .host
        .sh("find /var/lib/lab-coordinator ! -user lab-coordinator");
    assert!(
        foreign.is_empty(),
        "files not owned by lab-coordinator: {foreign}"
    );
}

#[test]
fn purging_the_coordinator_package_leaves_no_process_and_no_state() {
    // its own host: the shared coordinator serves the other tests
    let h = SystemdHost::boot("purge").unwrap();
    install_package(&h, "lab-coordinator");
    let addr = format!("127.0.0.1:{}", free_port());
    h.sh(&format!(
        "printf 'LAB_LISTEN={addr}\\nLAB_METRICS_LISTEN=off\\n' >> /etc/default/lab-coordinator"
    ));
    h.sh(&format!("lab-coordinator init --advertise {addr}"));
    h.sh("systemctl enable --now lab-coordinator");
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "serving on {addr}"
    );
    h.sh("pgrep -x lab-coordinator");

    let apt = h.sh("DEBIAN_FRONTEND=noninteractive apt purge -y lab-coordinator 2>&1");
    assert!(
        apt.contains("purge deletes /var/lib/lab-coordinator"),
        "purge says what it deletes: {apt}"
    );
    assert_eq!(
        h.exec("pgrep -a -x lab-coordinator").status.code(),
        Some(1),
        "no lab-coordinator process after purge: {}",
        h.sh("ps -eo pid,user,args")
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "nothing on {addr}"
    );
    assert!(h.exec("test -e /var/lib/lab-coordinator").status.code() == Some(1));
    assert_eq!(
        h.sh("systemctl show -p LoadState --value lab-coordinator")
            .trim(),
        "not-found"
    );
}
