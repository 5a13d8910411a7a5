//! Spec-file parsing and conversion tests of `labctl apply` (jobs, config, containers, schedules).

use std::collections::HashMap;

use clap::Parser;
use lab_proto::v1::{
    container_task, resource, task_spec, CommandResource, ConfigTask, ContainerEnsure,
    ContainerLogs, ContainerRef, ContainerTask, ExecTask, FileResource, ImageRef, JobSpec,
    NixosAction, NixosRebuildResource, PackageResource, PackageState, Presence, Resource,
    RestartPolicy, Rollout, ServiceResource, ServiceState, TaskSpec,
};

use super::*;
use crate::cli::{Cli, Command};

/// The example of the brief / DESIGN §5a with every resource kind.
const EXAMPLE: &str = r#"
apiVersion: labfleet/v1
kind: Job
metadata: {name: motd}
spec:
  selector: "os=debian"
  rollout: {batch: 2, maxFailures: 1, canary: 1}
  timeout: 2h
  deadline: 12h
  task:
    config:
      resources:
        - file: {path: /etc/motd, content: "hi {{ facts.platform.hostname }}\n", template: true, mode: "0644", owner: root, group: root, state: present, secret: false, followSymlinks: true, allowUnsafeParent: true}
          continueOnError: false
          name: motd
        - package: {name: htop, state: installed}
        - service: {unit: nginx.service, state: running, enabled: true}
        - nixosRebuild: {flake: "/etc/nixos#nas", action: switch}
        - command: {argv: [sh, -c, "touch /var/lib/x"], creates: /var/lib/x, unless: [test, -e, /x], env: {}, cwd: /}
"#;

fn one(text: &str) -> SpecJob {
    let mut jobs = parse::parse("spec.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

fn error(text: &str) -> String {
    match parse::parse("spec.yaml", text) {
        Ok(jobs) => panic!("accepted: {jobs:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

/// A Job document around `task:` (indented by four spaces).
fn job(task: &str) -> String {
    format!(
        "apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: t}}\nspec:\n  selector: \"*\"\n  task:\n{task}"
    )
}

fn task_of(job: &SpecJob) -> task_spec::Kind {
    job.spec
        .task
        .clone()
        .and_then(|t| t.kind)
        .expect("task kind")
}

#[test]
fn example_becomes_the_expected_job_spec() {
    let job = one(EXAMPLE);
    assert_eq!(job.name.as_deref(), Some("motd"));
    assert_eq!(job.origin, "spec.yaml: document 1");
    let resources = vec![
        Resource {
            name: "motd".into(),
            continue_on_error: false,
            kind: Some(resource::Kind::File(FileResource {
                path: "/etc/motd".into(),
                content: "hi {{ facts.platform.hostname }}\n".into(),
                template: true,
                mode: "0644".into(),
                owner: "root".into(),
                group: "root".into(),
                state: Presence::Present as i32,
                secret: false,
                follow_symlinks: true,
                allow_unsafe_parent: true,
                content_from: None,
            })),
        },
        Resource {
            name: String::new(),
            continue_on_error: false,
            kind: Some(resource::Kind::Package(PackageResource {
                name: "htop".into(),
                state: PackageState::Installed as i32,
            })),
        },
        Resource {
            name: String::new(),
            continue_on_error: false,
            kind: Some(resource::Kind::Service(ServiceResource {
                unit: "nginx.service".into(),
                state: ServiceState::Running as i32,
                enabled: Some(true),
            })),
        },
        Resource {
            name: String::new(),
            continue_on_error: false,
            kind: Some(resource::Kind::NixosRebuild(NixosRebuildResource {
                flake: "/etc/nixos#nas".into(),
                action: NixosAction::Switch as i32,
                ..Default::default()
            })),
        },
        Resource {
            name: String::new(),
            continue_on_error: false,
            kind: Some(resource::Kind::Command(CommandResource {
                argv: vec!["sh".into(), "-c".into(), "touch /var/lib/x".into()],
                creates: "/var/lib/x".into(),
                unless: vec!["test".into(), "-e".into(), "/x".into()],
                env: HashMap::new(),
                cwd: "/".into(),
                env_from: HashMap::new(),
            })),
        },
    ];
    let expected = JobSpec {
        selector: "os=debian".into(),
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Config(ConfigTask {
                resources,
                check: false,
            })),
        }),
        rollout: Some(Rollout {
            batch_size: 2,
            batch_percent: 0,
            max_failures: 1,
            canary: 1,
        }),
        timeout_ms: 2 * 3_600_000,
        deadline_ms: 12 * 3_600_000,
        name: "motd".into(),
    };
    assert_eq!(job.spec, expected);
    // The coordinator's checks accept it.
    preflight(&job).unwrap();
}

#[test]
fn defaults_are_the_proto_defaults() {
    let job = one(&job(
        "    config:\n      resources:\n        - package: {name: htop}\n        - service: {unit: a.service, enabled: false}\n",
    ));
    assert_eq!(job.spec.selector, "");
    assert_eq!((job.spec.timeout_ms, job.spec.deadline_ms), (0, 0));
    assert_eq!(job.spec.rollout, Some(Rollout::default()));
    let task_spec::Kind::Config(config) = task_of(&job) else {
        panic!("not config");
    };
    let Some(resource::Kind::Package(p)) = &config.resources[0].kind else {
        panic!("not a package");
    };
    assert_eq!(p.state, PackageState::Unspecified as i32);
    let Some(resource::Kind::Service(s)) = &config.resources[1].kind else {
        panic!("not a service");
    };
    assert_eq!(
        (s.state, s.enabled),
        (ServiceState::Unspecified as i32, Some(false))
    );
}

#[test]
fn exec_task() {
    let job = one(&job(
        "    exec: {argv: [sleep, 5], env: {DEBUG: 1, LANG: C}, cwd: /tmp, user: root}\n",
    ));
    let expected = ExecTask {
        argv: vec!["sleep".into(), "5".into()],
        env: [("DEBUG", "1"), ("LANG", "C")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        cwd: "/tmp".into(),
        user: "root".into(),
        env_from: Default::default(),
    };
    assert_eq!(task_of(&job), task_spec::Kind::Exec(expected));
}

#[test]
fn container_tasks() {
    let parsed = one(&job(r#"    container:
      socket: /run/docker.sock
      ensure: {name: web, image: "busybox:lab", command: [httpd, -f, -p, 8080], env: {A: "1"}, ports: ["8080:8080"], volumes: ["/srv:/data:ro"], restart: unlessStopped, labels: {tier: web}}
"#));
    let expected = ContainerTask {
        socket: "/run/docker.sock".into(),
        action: Some(container_task::Action::Ensure(ContainerEnsure {
            name: "web".into(),
            image: "busybox:lab".into(),
            command: ["httpd", "-f", "-p", "8080"].map(String::from).into(),
            env: [("A".to_owned(), "1".to_owned())].into(),
            ports: vec!["8080:8080".into()],
            volumes: vec!["/srv:/data:ro".into()],
            restart: RestartPolicy::UnlessStopped as i32,
            labels: [("tier".to_owned(), "web".to_owned())].into(),
        })),
    };
    assert_eq!(task_of(&parsed), task_spec::Kind::Container(expected));

    let web = || ContainerRef { name: "web".into() };
    let cases = [
        ("stop: {name: web}", container_task::Action::Stop(web())),
        ("remove: {name: web}", container_task::Action::Remove(web())),
        (
            "restart: {name: web}",
            container_task::Action::Restart(web()),
        ),
        (
            "pull: {image: x}",
            container_task::Action::Pull(ImageRef { image: "x".into() }),
        ),
        (
            "logs: {name: web, tail: 100}",
            container_task::Action::Logs(ContainerLogs {
                name: "web".into(),
                tail: 100,
            }),
        ),
    ];
    for (yaml, action) in cases {
        let parsed = one(&job(&format!("    container: {{{yaml}}}\n")));
        let expected = ContainerTask {
            socket: String::new(),
            action: Some(action),
        };
        assert_eq!(
            task_of(&parsed),
            task_spec::Kind::Container(expected),
            "{yaml}"
        );
    }
}

#[test]
fn unknown_fields_name_their_path() {
    let e = error(&EXAMPLE.replace("{path: /etc/motd", "{pth: /etc/motd"));
    assert!(
        e.starts_with("spec.yaml: document 1: spec.task.config.resources[0].file.pth: unknown field 'pth', expected one of path, content, contentFrom, template, mode, owner, group, state, secret, followSymlinks, allowUnsafeParent"),
        "{e}"
    );
    assert!(e.ends_with(" at line 13 column 18"), "{e}");
    let e = error(&EXAMPLE.replace("metadata:", "metdata:"));
    assert!(e.starts_with("spec.yaml: document 1: metdata: unknown field 'metdata', expected one of apiVersion, kind, metadata, spec"), "{e}");
    let e = error(&EXAMPLE.replace("maxFailures", "max_failures"));
    assert!(
        e.contains("spec.rollout.max_failures: unknown field 'max_failures'"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("continueOnError", "continue"));
    assert!(e.contains("spec.task.config.resources[0].continue: unknown field 'continue', expected one of name, continueOnError, file, package, service, nixosRebuild, command"), "{e}");
    let e = error(&job("    container: {ensure: {name: web, imag: x}}\n"));
    assert!(
        e.contains("spec.task.container.ensure.imag: unknown field 'imag'"),
        "{e}"
    );
    let e = error(&job("    shell: {argv: [x]}\n"));
    assert!(
        e.contains(
            "spec.task.shell: unknown field 'shell', expected one of exec, config, container"
        ),
        "{e}"
    );
}

#[test]
fn missing_and_mistyped_fields() {
    let e = error(&job(
        "    config:\n      resources:\n        - file: {content: x}\n",
    ));
    assert!(
        e.contains("spec.task.config.resources[0].file: missing field 'path'"),
        "{e}"
    );
    let e = error(&job("    exec: {argv: uname}\n"));
    assert!(
        e.contains("spec.task.exec.argv: invalid type: string \"uname\", expected a sequence"),
        "{e}"
    );
    let e = error("apiVersion: labfleet/v1\nkind: Job\n");
    assert!(e.contains("document 1: missing field 'spec'"), "{e}");
}

#[test]
fn resource_needs_exactly_one_kind() {
    let two = job("    config:\n      resources:\n        - package: {name: a}\n        - {file: {path: /x}, package: {name: htop}}\n");
    assert_eq!(
        error(&two),
        "spec.yaml: document 1: spec.task.config.resources[1]: has file and package; give exactly one of file, package, service, nixosRebuild, command"
    );
    let none = job("    config:\n      resources:\n        - name: nothing\n");
    assert_eq!(
        error(&none),
        "spec.yaml: document 1: spec.task.config.resources[0]: no kind given; give one of file, package, service, nixosRebuild, command"
    );
    let e = error(&job("    exec: {argv: [a]}\n    config: {resources: []}\n"));
    assert!(
        e.ends_with(
            "spec.task: has exec and config; give exactly one of exec, config, container, backup"
        ),
        "{e}"
    );
    let e = error(&job("    container: {socket: /s}\n"));
    assert!(e.ends_with("spec.task.container: no kind given; give one of ensure, stop, remove, pull, restart, logs"), "{e}");
}

#[test]
fn bad_enum_values_list_the_allowed_ones() {
    let e = error(&EXAMPLE.replace("state: installed", "state: present"));
    assert!(
        e.contains("spec.task.config.resources[1].package.state: unknown variant 'present', expected one of installed, absent, latest"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("action: switch", "action: dry-activate"));
    assert!(
        e.contains("expected one of switch, boot, test, dryActivate"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("state: running", "state: up"));
    assert!(
        e.contains("expected one of running, stopped, restarted, reloaded"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("state: present", "state: here"));
    assert!(
        e.contains("file.state: unknown variant 'here', expected present or absent"),
        "{e}"
    );
    let e = error(&job(
        "    container: {ensure: {name: w, image: i, restart: sometimes}}\n",
    ));
    assert!(
        e.contains("expected one of no, always, unlessStopped, onFailure"),
        "{e}"
    );
}

#[test]
fn batch_count_or_percent_and_durations() {
    let rollout = |text: &str| {
        one(&EXAMPLE.replace("batch: 2,", text))
            .spec
            .rollout
            .unwrap()
    };
    let r = rollout("batch: \"25%\",");
    assert_eq!((r.batch_size, r.batch_percent), (0, 25));
    let r = rollout("batch: 3,");
    assert_eq!((r.batch_size, r.batch_percent), (3, 0));
    let r = rollout("batch: 25%,");
    assert_eq!((r.batch_size, r.batch_percent), (0, 25));
    let e = error(&EXAMPLE.replace("batch: 2,", "batch: 0,"));
    assert!(
        e.contains("spec.rollout.batch: batch size must be at least 1") && !e.contains("--batch"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("batch: 2,", "batch: \"150%\","));
    assert!(
        e.contains("spec.rollout.batch: expected a percentage from 1% to 100%"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("timeout: 2h", "timeout: 30"));
    assert!(
        e.contains("spec.timeout: 30 has no unit; write e.g. 30s or 30m"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("deadline: 12h", "deadline: soon"));
    assert!(e.contains("spec.deadline: 'soon' is not a duration"), "{e}");
    let job = one(&EXAMPLE.replace("timeout: 2h", "timeout: 1m 30s"));
    assert_eq!(job.spec.timeout_ms, 90_000);
}

#[test]
fn unquoted_mode_keeps_its_digits() {
    let job = one(&EXAMPLE.replace("mode: \"0644\"", "mode: 0644"));
    let task_spec::Kind::Config(c) = task_of(&job) else {
        panic!("not config");
    };
    let Some(resource::Kind::File(f)) = &c.resources[0].kind else {
        panic!("not a file");
    };
    assert_eq!(f.mode, "0644");
    let job = one(&EXAMPLE.replace("mode: \"0644\"", "mode: 755"));
    let task_spec::Kind::Config(c) = task_of(&job) else {
        panic!("not config");
    };
    let Some(resource::Kind::File(f)) = &c.resources[0].kind else {
        panic!("not a file");
    };
    assert_eq!(f.mode, "755");
}

#[test]
fn check_mode_explains_what_other_tasks_would_run() {
    let mut jobs = vec![one(EXAMPLE)];
    assert!(set_check(&mut jobs).is_empty());
    let task_spec::Kind::Config(c) = task_of(&jobs[0]) else {
        panic!("not config");
    };
    assert!(c.check);
    assert!(crate::cmd::jobs::view::is_check(&jobs[0].spec));

    // Exec and container tasks are explained, not submitted; config jobs around them stay.
    let mut jobs = vec![
        one(&job("    exec: {argv: [uname, -a]}\n")),
        one(EXAMPLE),
        one(&job("    container: {stop: {name: web}}\n")),
    ];
    let explained = set_check(&mut jobs);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].name.as_deref(), Some("motd"));
    assert_eq!(
        explained,
        [
            "t (spec.yaml: document 1): check mode: would run exec task 'uname -a' on every node; not submitted (only config tasks can report without changing anything)",
            "t (spec.yaml: document 1): check mode: would run container task 'container stop web' on every node; not submitted (only config tasks can report without changing anything)",
        ]
    );
}

#[test]
fn multi_document_files() {
    let text = format!(
        "---\n{EXAMPLE}\n---\n# only a comment\n---\n{}---\n",
        job("    exec: {argv: [uname, -a]}\n").replace("name: t", "name: second")
    );
    let jobs = parse::parse("multi.yaml", &text).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].label(), "motd (multi.yaml: document 1)");
    assert_eq!(jobs[1].origin, "multi.yaml: document 3");
    assert_eq!(jobs[1].name.as_deref(), Some("second"));
    assert!(matches!(task_of(&jobs[1]), task_spec::Kind::Exec(_)));

    // A bad later document refuses the whole file.
    let bad = format!("{EXAMPLE}\n---\n{}", job("    exec: {argv: [a], cdw: /}\n"));
    let e = error(&bad);
    assert!(
        e.starts_with("spec.yaml: document 2: spec.task.exec.cdw: unknown field 'cdw'"),
        "{e}"
    );
}

#[test]
fn document_kinds_and_versions() {
    let schedule = format!(
        "{EXAMPLE}\n---\napiVersion: labfleet/v1\nkind: Schedule\nmetadata: {{name: nightly}}\nspec: {{cron: '0 3 * * *'}}\n"
    );
    // A Schedule needs its job (schedule documents: apply/schedule.rs).
    let e = error(&schedule);
    assert!(
        e.starts_with("spec.yaml: document 2: spec: missing field 'job'"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("kind: Job", "kind: Deployment"));
    assert!(
        e.ends_with("kind 'Deployment' is unknown; expected Job or Schedule"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("kind: Job", ""));
    assert!(
        e.ends_with("kind is missing; add kind: Job or kind: Schedule"),
        "{e}"
    );
    let e = error(&EXAMPLE.replace("labfleet/v1", "labfleet/v2"));
    assert!(
        e.ends_with("apiVersion 'labfleet/v2' is not supported; use apiVersion: labfleet/v1"),
        "{e}"
    );
    let e = error("- a\n- b\n");
    assert!(
        e.ends_with("expected a mapping with apiVersion, kind, metadata and spec, found a list"),
        "{e}"
    );
    let e = error("");
    assert!(e.starts_with("spec.yaml: no documents"), "{e}");
    let e = error("---\n---\n");
    assert!(e.starts_with("spec.yaml: no documents"), "{e}");
    let e = error("apiVersion: labfleet/v1\nkind: [Job\n");
    assert!(e.starts_with("spec.yaml: document 1: "), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn load_reads_files_checks_and_preflights() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, EXAMPLE).unwrap();
    let relative = dir.path().join("relative.yaml");
    std::fs::write(
        &relative,
        EXAMPLE.replace("{path: /etc/motd", "{path: etc/motd"),
    )
    .unwrap();
    let args = |files: &[&std::path::Path], check: bool| ApplyArgs {
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        check,
        detach: false,
        output: crate::cmd::jobs::RunFormat::Text,
        selector: String::new(),
    };
    let jobs = load(&args(&[&good, &good], true)).unwrap().jobs;
    assert_eq!(jobs[0].spec.selector, "os=debian");
    // -l narrows every document's selector; a bad one is a usage error naming it.
    let narrowed = ApplyArgs {
        selector: "site=attic".into(),
        ..args(&[&good], false)
    };
    assert_eq!(
        load(&narrowed).unwrap().jobs[0].spec.selector,
        "os=debian,site=attic"
    );
    let typo = ApplyArgs {
        selector: "site in (".into(),
        ..args(&[&good], false)
    };
    let e = load(&typo).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("selector \"site in (\""), "{e}");
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .all(|j| crate::cmd::jobs::view::is_check(&j.spec)));
    // The coordinator's own checks run before anything is submitted.
    let e = load(&args(&[&good, &relative], false)).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let e = e.to_string();
    assert!(
        e.contains("relative.yaml: document 1: ") && e.contains("must be absolute"),
        "{e}"
    );
    let e = load(&args(&[&dir.path().join("missing.yaml")], false)).unwrap_err();
    assert!(e.to_string().starts_with("cannot read spec file "), "{e}");
}

#[test]
fn the_shipped_example_is_valid() {
    let text = include_str!("../../../../deploy/examples/motd.yaml");
    let job = one(text);
    preflight(&job).unwrap();
    let task_spec::Kind::Config(c) = task_of(&job) else {
        panic!("not config");
    };
    assert_eq!(c.resources.len(), 2);
    assert!(matches!(&c.resources[0].kind, Some(resource::Kind::File(f)) if f.template));
    assert_eq!(c.resources[1].name, "motd stamp");
}

#[test]
fn cli_flags() {
    let cli = Cli::try_parse_from([
        "labctl",
        "apply",
        "-f",
        "a.yaml",
        "--filename",
        "b.yaml",
        "--check",
        "--detach",
        "-o",
        "json",
    ])
    .unwrap();
    let Command::Apply(args) = cli.command else {
        panic!("not apply");
    };
    assert_eq!(args.files.len(), 2);
    assert!(args.check && args.detach);
    assert_eq!(args.output, crate::cmd::jobs::RunFormat::Json);
    let err = Cli::try_parse_from(["labctl", "apply"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn a_job_without_selector_is_refused_and_star_means_every_node() {
    let every = one(&job("    exec: {argv: [uptime]}\n"));
    assert_eq!(
        every.spec.selector, "",
        "\"*\" is the contract's every node"
    );
    let bare = "apiVersion: labfleet/v1\nkind: Job\nspec:\n  task:\n    exec: {argv: [uptime]}\n";
    let empty = bare.replace("spec:\n", "spec:\n  selector: \"\"\n");
    for text in [bare, empty.as_str()] {
        assert_eq!(
            error(text),
            "spec.yaml: document 1: spec.selector: missing; say which nodes the job runs on, e.g. selector: \"os=debian\", or selector: \"*\" for every node"
        );
    }
}

#[test]
fn errors_never_show_internal_type_names() {
    let text = job("    exec: uname\n");
    let e = error(&text);
    assert!(!e.contains("ExecDoc") && !e.contains("struct"), "{e}");
    assert!(
        e.contains(
            "spec.task.exec: invalid type: string \"uname\", expected a mapping (key: value)"
        ),
        "{e}"
    );
    let e = error("apiVersion: labfleet/v1\nkind: Job\nspec: 3\n");
    assert!(
        e.contains("spec: invalid type: integer '3', expected a mapping (key: value)"),
        "{e}"
    );
}

#[test]
fn narrowing_reaches_the_jobs_of_schedules_and_keeps_star() {
    let text = "apiVersion: labfleet/v1\nkind: Schedule\nmetadata: {name: n}\nspec:\n  cron: \"0 3 * * *\"\n  job:\n    selector: \"*\"\n    task:\n      exec: {argv: [true]}\n";
    let mut loaded = Loaded::default();
    for doc in parse::parse_documents("s.yaml", text).unwrap() {
        match doc {
            Document::Schedule(s) => loaded.schedules.push(s),
            Document::Job(j) => loaded.jobs.push(j),
        }
    }
    narrow_selectors(&mut loaded, "role=nas");
    assert_eq!(
        loaded.schedules[0].spec.job.as_ref().unwrap().selector,
        "role=nas"
    );
}
