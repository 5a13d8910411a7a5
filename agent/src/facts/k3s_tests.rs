//! Unit tests of the k3s collector: fixture trees shaped like an installer-made agent and
//! server, a NixOS server, and broken configs; `k3s --version` from a stand-in program.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::facts::testutil::{symlink, write};
use crate::facts::CollectorError;

/// The server's password; the agent joined with the full server token.
const PASSWORD: &str = "0b7f2c4e9a1d3f5e7c9b1a3d5f7e9c1b";
const CA_HASH: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

fn full_token() -> String {
    format!("K10{CA_HASH}::server:{PASSWORD}")
}

/// What `get.k3s.io` writes for `K3S_URL=... K3S_TOKEN=... sh -s - --node-name worker-1`.
fn installer_agent(root: &Path) {
    write(root, "usr/local/bin/k3s", "");
    write(root, "etc/hostname", "Worker1\n");
    write(
        root,
        "etc/systemd/system/k3s-agent.service",
        "[Unit]\nDescription=Lightweight Kubernetes\nDocumentation=https://k3s.io\n\
         Wants=network-online.target\nAfter=network-online.target\n\n\
         [Install]\nWantedBy=multi-user.target\n\n\
         [Service]\nType=exec\nEnvironmentFile=-/etc/default/%N\n\
         EnvironmentFile=-/etc/sysconfig/%N\n\
         EnvironmentFile=-/etc/systemd/system/k3s-agent.service.env\n\
         KillMode=process\nDelegate=yes\n\
         ExecStartPre=-/sbin/modprobe br_netfilter\n\
         ExecStart=/usr/local/bin/k3s \\\n    agent \\\n\t'--node-name' \\\n\t'worker-1' \\\n\n",
    );
    write(
        root,
        "etc/systemd/system/k3s-agent.service.env",
        &format!(
            "K3S_TOKEN=\"{}\"\nK3S_URL=\"https://10.0.0.10:6443\"\n",
            full_token()
        ),
    );
}

/// A first server set up with a config file, as the k3s docs show it.
fn installer_server(root: &Path) {
    write(root, "usr/local/bin/k3s", "");
    write(root, "etc/hostname", "cp1.lab.example\n");
    write(
        root,
        "etc/systemd/system/k3s.service",
        "[Service]\nType=notify\nEnvironmentFile=-/etc/systemd/system/k3s.service.env\n\
         ExecStart=/usr/local/bin/k3s \\\n    server \\\n",
    );
    write(root, "etc/systemd/system/k3s.service.env", "");
    write(
        root,
        "etc/rancher/k3s/config.yaml",
        "write-kubeconfig-mode: \"0644\"\ncluster-init: true\ntls-san:\n  - cp.lab.example\n\
         node-label:\n  - \"role=cp\"\n",
    );
    write(
        root,
        "etc/rancher/k3s/config.yaml.d/10-name.yaml",
        "node-name: cp-1\n",
    );
    write(root, SERVER_TOKEN, &format!("{}\n", full_token()));
}

fn collect_at(probe: &Probe) -> (Option<K3s>, Vec<CollectorError>) {
    let mut problems = Problems::default();
    let binary = exists(probe.root(), "usr/local/bin/k3s");
    let k3s = collect(probe, binary, &mut problems);
    (k3s, problems.list().to_vec())
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[test]
fn installer_agent_joins_its_server() {
    let dir = tempfile::tempdir().unwrap();
    installer_agent(dir.path());
    let (k3s, problems) = collect_at(&Probe::new(dir.path()));
    assert_eq!(problems, vec![]);
    let k3s = k3s.unwrap();
    assert_eq!(
        k3s,
        K3s {
            binary: true,
            version: None,
            role: Some(K3sRole::Agent),
            server_url: Some("https://10.0.0.10:6443".into()),
            node_name: Some("worker-1".into()),
            cluster_init: false,
            token_sha256: Some(sha(PASSWORD)),
            token_ca_hash: Some(CA_HASH.into()),
        }
    );
    let json = serde_json::to_string(&k3s).unwrap();
    assert!(!json.contains(PASSWORD), "the token leaked: {json}");
}

#[test]
fn first_server_from_its_config_and_token_file() {
    let dir = tempfile::tempdir().unwrap();
    installer_server(dir.path());
    let (k3s, problems) = collect_at(&Probe::new(dir.path()));
    assert_eq!(problems, vec![]);
    let k3s = k3s.unwrap();
    assert_eq!(k3s.role, Some(K3sRole::Server));
    assert_eq!(k3s.server_url, None, "the first server joins no one");
    assert_eq!(k3s.node_name.as_deref(), Some("cp-1"), "the drop-in wins");
    assert!(k3s.cluster_init);
    // the same cluster as the agent above, which joined with the full token
    assert_eq!(k3s.token_sha256, Some(sha(PASSWORD)));
    assert_eq!(k3s.token_ca_hash.as_deref(), Some(CA_HASH));
}

#[test]
fn an_agent_with_the_short_token_is_in_the_same_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    installer_agent(root);
    write(
        root,
        "etc/systemd/system/k3s-agent.service.env",
        &format!("K3S_TOKEN='{PASSWORD}'\nK3S_URL='https://cp.lab.example:6443'\n"),
    );
    let (k3s, _) = collect_at(&Probe::new(root));
    let k3s = k3s.unwrap();
    assert_eq!(k3s.token_sha256, Some(sha(PASSWORD)));
    assert_eq!(k3s.token_ca_hash, None);
    assert_eq!(
        k3s.server_url.as_deref(),
        Some("https://cp.lab.example:6443")
    );
}

/// NixOS: the unit is a link into the store, flags carry everything, the token is a file.
#[test]
fn nixos_server_joining_an_ha_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/hostname", "cp2\n");
    write(
        root,
        "nix/store/abc-unit-k3s.service/k3s.service",
        "[Service]\nEnvironment=\"PATH=/nix/store/x-coreutils/bin\"\n\
         ExecStart=/nix/store/def-k3s-1.30.2+k3s1/bin/k3s server --server \
         https://cp1.lab.example:6443 --token-file /run/secrets/k3s-token --node-name=cp-2\n",
    );
    symlink(root, "etc/static", "/nix/store");
    symlink(
        root,
        "etc/systemd/system/k3s.service",
        "/etc/static/abc-unit-k3s.service/k3s.service",
    );
    write(root, "run/secrets/k3s-token", &format!("{PASSWORD}\n"));
    let (k3s, problems) = collect_at(&Probe::new(root));
    assert_eq!(problems, vec![]);
    let k3s = k3s.unwrap();
    assert!(!k3s.binary, "not in a FHS bin directory");
    assert_eq!(k3s.role, Some(K3sRole::Server));
    assert_eq!(
        k3s.server_url.as_deref(),
        Some("https://cp1.lab.example:6443")
    );
    assert_eq!(k3s.node_name.as_deref(), Some("cp-2"));
    assert_eq!(k3s.token_sha256, Some(sha(PASSWORD)));
}

#[test]
fn malformed_config_and_missing_token_file_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    installer_agent(root);
    write(root, "etc/rancher/k3s/config.yaml", "server: [unclosed\n");
    write(
        root,
        "etc/rancher/k3s/config.yaml.d/20-x.yaml",
        "- a list\n",
    );
    write(
        root,
        "etc/systemd/system/k3s-agent.service.env",
        "K3S_URL=https://10.0.0.10:6443\nK3S_TOKEN_FILE=/etc/k3s-token\n",
    );
    let (k3s, problems) = collect_at(&Probe::new(root));
    let k3s = k3s.unwrap();
    assert_eq!(k3s.role, Some(K3sRole::Agent), "the rest still arrives");
    assert_eq!(k3s.server_url.as_deref(), Some("https://10.0.0.10:6443"));
    assert_eq!(k3s.token_sha256, None);
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(problems.len(), 3, "{messages:?}");
    assert!(problems.iter().all(|p| p.collector == "k3s"));
    assert!(
        messages[0]
            .starts_with("/etc/rancher/k3s/config.yaml is not a k3s config file (not valid YAML"),
        "{}",
        messages[0]
    );
    assert_eq!(
        messages[1],
        "/etc/rancher/k3s/config.yaml.d/20-x.yaml is not a k3s config file (not a mapping of settings); k3s will not start with it either"
    );
    assert!(messages[2].starts_with("the token file /etc/k3s-token (token-file) is missing"));
}

#[test]
fn absent_without_binary_config_or_unit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "etc/hostname", "plain\n");
    assert_eq!(collect_at(&Probe::new(dir.path())), (None, vec![]));
}

fn stand_in(dir: &Path, name: &str, script: &str) -> PathBuf {
    let bin = dir.join("stand-ins");
    write(dir, &format!("stand-ins/{name}"), script);
    std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn version_from_the_program_and_a_broken_program_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    installer_agent(&root);
    let bin = stand_in(
        dir.path(),
        "k3s",
        "#!/bin/sh\necho 'k3s version v1.30.2+k3s1 (faa4d3d1)'\necho 'go version go1.22.4'\n",
    );
    let (k3s, problems) = collect_at(&Probe::with_programs(&root, vec![bin.clone()]));
    assert_eq!(problems, vec![]);
    assert_eq!(k3s.unwrap().version.as_deref(), Some("v1.30.2+k3s1"));

    stand_in(
        dir.path(),
        "k3s",
        "#!/bin/sh\necho 'segfault' >&2\nexit 2\n",
    );
    let (k3s, problems) = collect_at(&Probe::with_programs(&root, vec![bin.clone()]));
    assert_eq!(k3s.unwrap().version, None);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .message
            .ends_with("--version' failed (exit code 2): segfault"),
        "{problems:?}"
    );

    stand_in(dir.path(), "k3s", "#!/bin/sh\necho 'hello'\n");
    let (_, problems) = collect_at(&Probe::with_programs(&root, vec![bin]));
    assert!(problems[0]
        .message
        .contains("printed no 'k3s version vX.Y.Z' line: hello"));
}

#[test]
fn token_forms() {
    assert_eq!(token_parts("secret"), (None, "secret"));
    assert_eq!(
        token_parts("K10abc::server:secret"),
        (Some("abc".to_owned()), "secret")
    );
    assert_eq!(
        token_parts("K10abc::abcdef.0123456789abcdef"),
        (Some("abc".to_owned()), "abcdef.0123456789abcdef")
    );
}

#[test]
fn words_flags_and_env_files() {
    assert_eq!(
        split_words("/bin/k3s  agent '--node-name' \"a b\" x\\ y"),
        vec!["/bin/k3s", "agent", "--node-name", "a b", "x y"]
    );
    let args: Vec<String> = [
        "--disable",
        "traefik",
        "-s",
        "https://a:6443",
        "--cluster-init",
        "-t",
        "tok",
    ]
    .map(str::to_owned)
    .to_vec();
    let flags = parse_flags(&args);
    assert_eq!(
        flags.get("server").map(String::as_str),
        Some("https://a:6443")
    );
    assert_eq!(flags.get("cluster-init").map(String::as_str), Some("true"));
    assert_eq!(flags.get("token").map(String::as_str), Some("tok"));
    assert_eq!(
        parse_env_file("# c\nK3S_URL='https://a:6443'\nexport K3S_TOKEN=\"t\"\nbad line\n"),
        vec![
            ("K3S_URL".to_owned(), "https://a:6443".to_owned()),
            ("K3S_TOKEN".to_owned(), "t".to_owned())
        ]
    );
    assert_eq!(
        parse_version("k3s version v1.29.0+k3s1 (3190a5fa)\n"),
        Some("v1.29.0+k3s1".into())
    );
    assert_eq!(parse_version("nope"), None);
}
