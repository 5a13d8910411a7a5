//! SOPS secrets end to end (issue 17 item 2): a file encrypted to node n1's age recipient only
//! (by the test encryptor, data key by the real `age` CLI), referenced from a spec by
//! `contentFrom`/`envFrom`/`passwordFrom`. n1 writes it (0600) and runs with it; n2, not a
//! recipient, fails naming the file and its own recipient and writes nothing; the plaintext is
//! nowhere in the coordinator's store files, the agents' data dirs, any log, labctl's output or
//! the job's results. A tampered file is refused before anything is written; a key path that
//! does not exist makes labctl exit 2. Needs Debian's `age` (and `restic` for the backup case).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use lab_tests::{files_containing, stderr, wait_until, Cluster};

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The recipients `labctl secrets recipients` lists, by node, once both nodes reported one.
fn recipients(c: &Cluster) -> (String, String) {
    let mut got = Vec::new();
    wait_until(
        || {
            let out = c.labctl(&["secrets", "recipients"]);
            got = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            out.status.success() && got.len() == 2
        },
        Duration::from_secs(20),
        "both nodes' recipients listed",
    );
    (got[0].clone(), got[1].clone())
}

/// A spec directory with `secrets/app.yaml` = `sops_file`.
fn spec_dir(c: &Cluster, sops_file: &str) -> PathBuf {
    let dir = c.tmp.path().join(format!("spec-{}", nanos()));
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/app.yaml"), sops_file).unwrap();
    dir
}

/// Writes `spec` into `dir` and runs `labctl apply -f` on it.
fn apply(c: &Cluster, dir: &Path, spec: &str) -> Output {
    let path = dir.join(format!("job-{}.yaml", nanos()));
    std::fs::write(&path, spec).unwrap();
    c.labctl(&["apply", "-f", path.to_str().unwrap()])
}

/// A config job on `node`: the password into `target`, and a command that gets the token in
/// its environment, prints it and writes it to `token_file`.
fn config_spec(node: &str, target: &Path, token_file: &Path) -> String {
    format!(
        r#"apiVersion: labfleet/v1
kind: Job
metadata: {{name: app-{node}}}
spec:
  selector: "node={node}"
  task:
    config:
      resources:
        - file:
            path: {target}
            contentFrom: {{sops: {{file: secrets/app.yaml, key: '["db"]["password"]'}}}}
            mode: "0600"
        - command:
            argv: [sh, -c, 'echo "token=$TOKEN"; printf %s "$TOKEN" > {token}']
            envFrom:
              TOKEN: {{sops: {{file: secrets/app.yaml, key: '["api"]["token"]'}}}}
"#,
        target = target.display(),
        token = token_file.display(),
    )
}

/// `labctl job show ID -o json` of the newest job.
fn newest_job(c: &Cluster) -> serde_json::Value {
    let out = c.labctl(&["jobs", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    let out = c.labctl(&["job", "show", &id, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_sops_secret_reaches_its_recipient_node_only_and_nothing_else() {
    let c = Cluster::builder().agents(2).start();
    let (r1, r2) = recipients(&c);
    let n = nanos();
    let password = format!("sops-password-{n:x}");
    let token = format!("sops-token-{n:x}");
    let plain = format!(
        "db:\n  user: app\n  password: {password}\napi:\n  token: {token}\nnote_unencrypted: visible\n"
    );
    let encrypted = lab_tests::sops::encrypt(&plain, &[&r1]);
    assert!(!encrypted.contains(&password) && !encrypted.contains(&token));
    let dir = spec_dir(&c, &encrypted);

    // n1, a recipient: the file is written (0600), the command gets the token, its output
    // shows *** in its place.
    let target = c.tmp.path().join("db-password-n1");
    let token_file = c.tmp.path().join("token-n1");
    let out = apply(&c, &dir, &config_spec("n1", &target, &token_file));
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{shown}\n{}", c.logs());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), password);
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let job_n1 = newest_job(&c).to_string();
    // An exec task gets it in its environment too; its output shows *** in its place.
    let exec = r#"apiVersion: labfleet/v1
kind: Job
spec:
  selector: "node=n1"
  task:
    exec:
      argv: [sh, -c, 'echo "token=$TOKEN"']
      envFrom: {TOKEN: {sops: {file: secrets/app.yaml, key: '["api"]["token"]'}}}
"#;
    let out = apply(&c, &dir, exec);
    let shown_exec = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{shown_exec}");
    assert!(shown_exec.contains("n1: token=***"), "{shown_exec}");
    let logs = c.labctl(&[
        "job",
        "logs",
        newest_job(&c)["id"].as_str().unwrap_or_default(),
    ]);
    let shown_logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(shown_logs.contains("token=***"), "{shown_logs}");

    // n2, not a recipient: fails naming the file and its own recipient, writes nothing.
    let target2 = c.tmp.path().join("db-password-n2");
    let token2 = c.tmp.path().join("token-n2");
    let out2 = apply(&c, &dir, &config_spec("n2", &target2, &token2));
    let shown2 = format!("{}{}", String::from_utf8_lossy(&out2.stdout), stderr(&out2));
    assert_eq!(out2.status.code(), Some(1), "{shown2}");
    let job_n2 = newest_job(&c);
    let error = job_n2["tasks"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("secrets/app.yaml is not encrypted to this node") && error.contains(&r2),
        "{error}"
    );
    assert!(!target2.exists() && !token2.exists());

    // The plaintext is nowhere: store, data dirs, logs, labctl's output, results. The store
    // does hold the ciphertext (what labctl sent).
    for secret in [&password, &token] {
        for dir in [&c.coord.dir, &c.agents[0].dir, &c.agents[1].dir] {
            let leaked = files_containing(dir, secret.as_bytes());
            assert!(leaked.is_empty(), "plaintext in {leaked:?}");
        }
        for log in ["coordinator", "agent-n1", "agent-n2"] {
            let text = std::fs::read_to_string(c.tmp.path().join(format!("{log}.log"))).unwrap();
            assert!(!text.contains(secret.as_str()), "plaintext in {log}.log");
        }
        for text in [
            &shown,
            &shown2,
            &shown_exec,
            &shown_logs,
            &job_n1,
            &job_n2.to_string(),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "plaintext in labctl output: {text}"
            );
        }
    }
    let mac = encrypted
        .lines()
        .find_map(|l| l.trim().strip_prefix("mac: ENC[AES256_GCM,data:"))
        .unwrap()[..40]
        .to_owned();
    assert!(
        !files_containing(&c.coord.dir, mac.as_bytes()).is_empty(),
        "the coordinator's store does not hold the SOPS file"
    );
}

#[test]
fn a_tampered_file_is_refused_before_anything_is_written() {
    let c = Cluster::builder().agents(1).start();
    let out = c.labctl(&["secrets", "recipients"]);
    let r1 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let plain = "db:\n  password: tamper-test-password\napi:\n  token: tamper-test-token\nnote_unencrypted: visible\n";
    let encrypted = lab_tests::sops::encrypt(plain, &[&r1]);
    // A value in clear changed: only SOPS's MAC can tell.
    let tampered = encrypted.replace("note_unencrypted: visible", "note_unencrypted: changed");
    assert_ne!(tampered, encrypted);
    let dir = spec_dir(&c, &tampered);
    let target = c.tmp.path().join("never-written");
    let token_file = c.tmp.path().join("never-run");
    let out = apply(&c, &dir, &config_spec("n1", &target, &token_file));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error = newest_job(&c)["tasks"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("MAC mismatch"), "{error}");
    assert!(!target.exists() && !token_file.exists());
}

#[test]
fn a_missing_key_path_or_a_file_that_is_not_sops_is_exit_2_before_dialling() {
    let dir = tempfile::tempdir().unwrap();
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::copy(
        examples.join("secrets/db.yaml"),
        dir.path().join("secrets/app.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("secrets/plain.yaml"), "db: {password: x}\n").unwrap();
    let spec = |file: &str, key: &str| {
        format!(
            "apiVersion: labfleet/v1\nkind: Job\nspec:\n  selector: \"*\"\n  task:\n    config:\n      resources:\n        - file: {{path: /etc/x, contentFrom: {{sops: {{file: {file}, key: '{key}'}}}}}}\n"
        )
    };
    // No coordinator and no config: labctl refuses the spec before it reads either.
    let config = dir.path().join("no-config.toml");
    for (file, key, says) in [
        (
            "secrets/app.yaml",
            r#"["db"]["pasword"]"#,
            r#"["db"] has no key "pasword" (its keys: user, password)"#,
        ),
        ("secrets/app.yaml", "db.password", "not a SOPS key path"),
        (
            "secrets/plain.yaml",
            r#"["db"]["password"]"#,
            "not encrypted with SOPS",
        ),
        ("secrets/missing.yaml", r#"["db"]"#, "cannot read it"),
    ] {
        let path = dir.path().join("job.yaml");
        std::fs::write(&path, spec(file, key)).unwrap();
        let out = lab_tests::labctl(&config, &["apply", "-f", path.to_str().unwrap()]);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file} {key}: {e}");
        assert!(
            e.contains("spec.task.config.resources[0].file.contentFrom")
                && e.contains(file)
                && e.contains(says),
            "{file} {key}: {e}"
        );
    }
}

#[test]
fn a_backup_password_from_a_sops_file_opens_the_repository_and_is_removed_after() {
    let c = Cluster::builder().agents(1).start();
    let out = c.labctl(&["secrets", "recipients"]);
    let r1 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let work = c.tmp.path().join("backup");
    std::fs::create_dir_all(work.join("data")).unwrap();
    std::fs::write(work.join("data/file"), "backed up").unwrap();
    let repo = backup_util::Repo::init(&work);
    let password = std::fs::read_to_string(&repo.password_file).unwrap();
    let encrypted = lab_tests::sops::encrypt(
        &format!("restic:\n  password: {}\n", password.trim()),
        &[&r1],
    );
    let dir = spec_dir(&c, &encrypted);
    let spec = backup_util::job(
        "sops-backup",
        &format!(
            "    backup:\n      restic: {{repository: {}, passwordFrom: {{sops: {{file: secrets/app.yaml, key: '[\"restic\"][\"password\"]'}}}}, paths: [{}]}}\n",
            repo.path.display(),
            work.join("data").display()
        ),
    );
    let out = apply(&c, &dir, &spec);
    assert!(out.status.success(), "{}\n{}", stderr(&out), c.logs());
    assert_eq!(repo.snapshots().len(), 1);
    // The password file the agent wrote for restic is gone, and no file of its data dir holds
    // the password.
    let private = c.agents[0].dir.join("secrets");
    let left: Vec<_> = std::fs::read_dir(&private)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(files_containing(&c.agents[0].dir, password.trim().as_bytes()).is_empty());
    assert!(files_containing(&c.coord.dir, password.trim().as_bytes()).is_empty());
}
