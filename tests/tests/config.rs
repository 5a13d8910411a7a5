//! Config and container jobs end to end: `labctl apply -f` through the real coordinator to real
//! agents, with check mode, idempotence, templates, submit-time validation and the real Docker
//! engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use lab_tests::{stderr, Cluster};

fn apply(c: &Cluster, spec: &str, extra: &[&str]) -> std::process::Output {
    let path = c.tmp.path().join(format!("spec-{}.yaml", rand_suffix()));
    std::fs::write(&path, spec).unwrap();
    let mut args = vec!["apply", "-f", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    c.labctl(&args)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file_spec(path: &str, content: &str) -> String {
    format!(
        r#"apiVersion: labfleet/v1
kind: Job
metadata: {{name: e2e}}
spec:
  selector: "node=n1"
  task:
    config:
      resources:
        - file:
            path: {path}
            content: "{content}"
            template: true
            mode: "0640"
            owner: nobody
            group: nogroup
"#
    )
}

#[test]
fn file_resource_check_apply_reapply_and_template() {
    let c = Cluster::builder().agents(1).start();
    let target = c.tmp.path().join("motd");
    let spec = file_spec(target.to_str().unwrap(), "os {{ facts.platform.os }}\\n");

    let out = apply(&c, &spec, &["--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("+os debian"),
        "check mode shows the diff: {text}"
    );
    assert!(!target.exists(), "check mode changed nothing");

    let out = apply(&c, &spec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("changed"), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "os debian\n");
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    assert_eq!(
        meta.uid().to_string(),
        String::from_utf8_lossy(&nobody.stdout).trim()
    );

    let out = apply(&c, &spec, &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let statuses: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| {
            e["task"]["result"]["config"]["resources"][0]["status"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(statuses, ["unchanged"], "{}", stdout(&out));
}

#[test]
fn a_planted_symlink_is_refused_and_its_target_never_shown() {
    let c = Cluster::builder().agents(1).start();
    // Another user's symlink, in a directory everyone may write, to a file only root reads.
    let secret = c.tmp.path().join("secret");
    std::fs::write(&secret, "RT-E2E-SECRET\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let shared = c.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let link = shared.join("app.conf");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
    let spec = |extra: &str| {
        format!(
            r#"apiVersion: labfleet/v1
kind: Job
metadata: {{name: e2e-link}}
spec:
  selector: "node=n1"
  task:
    config:
      resources:
        - file: {{path: {}, content: "x=1\n", mode: "0644"{extra}}}
"#,
            link.display()
        )
    };
    for (extra, why) in [
        ("", "shared is writable by all users (mode 1777)"),
        (", allowUnsafeParent: true", "app.conf is a symlink"),
    ] {
        for check in [true, false] {
            let flags: &[&str] = if check {
                &["--check", "-o", "json"]
            } else {
                &["-o", "json"]
            };
            let out = apply(&c, &spec(extra), flags);
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            let text = stdout(&out);
            assert!(text.contains(why), "{text}");
            assert!(!text.contains("RT-E2E-SECRET"), "{text}");
        }
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "RT-E2E-SECRET\n");
    assert_eq!(std::fs::metadata(&secret).unwrap().mode() & 0o7777, 0o600);
    // Stored job results do not hold it either.
    let jobs = c.labctl(&["jobs", "-o", "json"]);
    assert!(!stdout(&jobs).contains("RT-E2E-SECRET"));
}

#[test]
fn wrong_specs_are_refused_before_any_node_is_touched() {
    use lab_proto::v1::{
        resource, task_spec, ConfigTask, FileResource, JobSpec, ListJobsRequest, Resource,
        SubmitJobRequest, TaskSpec,
    };

    let c = Cluster::builder().agents(1).start();
    // labctl: unknown resource kind, with the path of the problem.
    let bad = file_spec("/tmp/x", "x").replace("- file:", "- fiel:");
    let out = apply(&c, &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("resources[0]"), "{}", stderr(&out));

    // The coordinator refuses on its own too (a client that skips labctl's checks).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = c.coord.admin_client().await;
        let file = |path: &str, mode: &str| JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Config(ConfigTask {
                    resources: vec![Resource {
                        kind: Some(resource::Kind::File(FileResource {
                            path: path.into(),
                            mode: mode.into(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    check: false,
                })),
            }),
            ..Default::default()
        };
        let unknown_kind = JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Config(ConfigTask {
                    resources: vec![Resource::default()],
                    check: false,
                })),
            }),
            ..Default::default()
        };
        for (spec, why) in [
            (file("relative/path", "0644"), "must be absolute"),
            (file("/etc/x", "rwx"), "octal"),
            (file("", "0644"), "path is missing"),
            (unknown_kind, "no resource kind"),
        ] {
            let err = client
                .submit_job(SubmitJobRequest { spec: Some(spec) })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().contains(why), "{why}: {}", err.message());
        }
        let jobs = client
            .list_jobs(ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(jobs.jobs.is_empty(), "no job was created");
    });
}

/// Imports a busybox rootfs as an image (there is no registry) and returns its name.
fn busybox_image(dir: &std::path::Path) -> String {
    let busybox = std::path::Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: apt-get install busybox-static (.ci/run does)"
    );
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for tool in ["sh", "sleep", "echo", "httpd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(tool)).unwrap();
    }
    let image = "labfleet-e2e/busybox:latest".to_owned();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | docker import - {image} >/dev/null",
            root.display()
        ))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "docker import failed; is the Docker engine running?"
    );
    image
}

struct RemoveContainer(String);
impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn container_spec(name: &str, image: &str, env: &str) -> String {
    format!(
        r#"apiVersion: labfleet/v1
kind: Job
metadata: {{name: web}}
spec:
  selector: "node=n1"
  task:
    container:
      ensure: {{name: {name}, image: "{image}", command: [sleep, "3600"], env: {{A: "{env}"}}, restart: unlessStopped}}
"#
    )
}

fn container_id(name: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.Id}} {{.State.Running}}", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn container_ensure_is_idempotent_and_recreates_on_change() {
    let c = Cluster::builder().agents(1).start();
    let image = busybox_image(c.tmp.path());
    let name = format!("labfleet-e2e-{}", std::process::id());
    let _cleanup = RemoveContainer(name.clone());

    let out = apply(&c, &container_spec(&name, &image, "1"), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let first = container_id(&name);
    assert!(first.ends_with("true"), "running: {first}");

    let out = apply(&c, &container_spec(&name, &image, "1"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    assert_eq!(container_id(&name), first);

    let out = apply(&c, &container_spec(&name, &image, "2"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("recreated"), "{}", stdout(&out));
    assert_ne!(container_id(&name), first);

    let missing = container_spec(&name, "labfleet-e2e/nonexistent:1", "1");
    let out = apply(&c, &missing, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        format!("{}{}", stdout(&out), stderr(&out)).contains("not found locally"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// A local apt repository holding one tiny package the test builds; removed on drop.
struct LocalRepo {
    list: std::path::PathBuf,
    package: String,
}

impl LocalRepo {
    fn new(dir: &std::path::Path, package: &str) -> LocalRepo {
        let build = dir.join("pkg");
        std::fs::create_dir_all(build.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(build.join("usr/share/doc").join(package)).unwrap();
        std::fs::write(
            build.join("DEBIAN/control"),
            format!(
                "Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: labfleet tests <tests@example.invalid>\nDescription: labfleet end-to-end test package\n"
            ),
        )
        .unwrap();
        std::fs::write(
            build.join("usr/share/doc").join(package).join("README"),
            "test\n",
        )
        .unwrap();
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let deb = repo.join(format!("{package}_1.0_all.deb"));
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&build)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(out.status.success(), "dpkg-deb: {}", stderr(&out));
        let bytes = std::fs::read(&deb).unwrap();
        let sum = Command::new("sha256sum").arg(&deb).output().unwrap();
        let sha = String::from_utf8_lossy(&sum.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        let control = std::fs::read_to_string(build.join("DEBIAN/control")).unwrap();
        let stanza = format!(
            "{}Filename: ./{}\nSize: {}\nSHA256: {sha}\n\n",
            control,
            deb.file_name().unwrap().to_string_lossy(),
            bytes.len()
        );
        std::fs::write(repo.join("Packages"), stanza).unwrap();
        let list = std::path::PathBuf::from(format!("/etc/apt/sources.list.d/{package}.list"));
        std::fs::write(
            &list,
            format!("deb [trusted=yes] file:{} ./\n", repo.display()),
        )
        .unwrap();
        let out = Command::new("apt-get")
            .args(["update", "-qq", "-o"])
            .arg(format!("Dir::Etc::sourcelist={}", list.display()))
            .args([
                "-o",
                "Dir::Etc::sourceparts=-",
                "-o",
                "APT::Get::List-Cleanup=0",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apt-get update of the local repo: {}",
            stderr(&out)
        );
        LocalRepo {
            list,
            package: package.to_owned(),
        }
    }
}

impl Drop for LocalRepo {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", &self.package])
            .output();
        let _ = std::fs::remove_file(&self.list);
    }
}

fn package_spec(name: &str, state: &str) -> String {
    format!(
        r#"apiVersion: labfleet/v1
kind: Job
metadata: {{name: pkg}}
spec:
  selector: "node=n1"
  task:
    config:
      resources:
        - package: {{name: {name}, state: {state}}}
"#
    )
}

fn installed(package: &str) -> bool {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout) == "install ok installed"
}

#[test]
fn package_resource_installs_and_removes_from_a_local_repository() {
    let c = Cluster::builder().agents(1).start();
    let package = format!("labfleet-e2e-pkg-{}", std::process::id());
    let _repo = LocalRepo::new(c.tmp.path(), &package);
    assert!(!installed(&package));

    let out = apply(&c, &package_spec(&package, "installed"), &["--check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!installed(&package), "check mode installed it");

    let out = apply(&c, &package_spec(&package, "installed"), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(installed(&package));
    let out = apply(&c, &package_spec(&package, "installed"), &[]);
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));

    let out = apply(&c, &package_spec(&package, "absent"), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!installed(&package));
}

#[test]
fn huge_or_deeply_nested_spec_files_are_refused_locally_and_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    // No coordinator: labctl must refuse the file before it reads its config or dials.
    let config = tmp.path().join("no-such-labctl.toml");
    let run = |name: &str, content: &[u8]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, content).unwrap();
        let started = std::time::Instant::now();
        let out = lab_tests::labctl(&config, &["apply", "-f", path.to_str().unwrap()]);
        (out, started.elapsed())
    };

    // 100 MB (sparse: only the first 4 MiB and a byte are ever read).
    let big = tmp.path().join("big.yaml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 * 1024 * 1024)
        .unwrap();
    let out = lab_tests::labctl(&config, &["apply", "-f", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 4 MiB, the most the coordinator accepts"),
        "{}",
        stderr(&out)
    );

    let deep = format!(
        "apiVersion: labfleet/v1\nkind: Job\nspec: {}1{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (out, took) = run("deep.yaml", deep.as_bytes());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nesting is deeper than 100 levels at line 3"),
        "{}",
        stderr(&out)
    );
    // The YAML parser alone took 40 s of CPU on this file; the pre-scan takes milliseconds.
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}
