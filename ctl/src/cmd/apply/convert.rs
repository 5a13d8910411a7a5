//! From a parsed `kind: Job` document to the wire `JobSpec`: picks the one task kind, resource
//! kind and container action that serde cannot enforce, and maps the string enums. Pure.
//! Struct literals name every proto field, so a new field fails the build here until someone
//! decides how it is written in a spec file.

use lab_proto::v1::{
    container_task, resource, task_spec, CommandResource, ConfigTask, ContainerEnsure,
    ContainerLogs, ContainerRef, ContainerTask, ExecTask, FileResource, ImageRef, JobSpec,
    NixosHealthCheck, NixosRebuildResource, PackageResource, Resource, Rollout, ServiceResource,
    SopsValue, TaskSpec, ValueFrom,
};

use super::doc::{self, string_map, strings, JobSpecDoc};
use crate::cmd::jobs::spec::Batch;

/// Milliseconds of a duration, saturating; 0 when absent.
pub(super) fn millis(d: Option<std::time::Duration>) -> u64 {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The one value in `found` (key, value), or an error at `path` naming the `choices`.
pub(super) fn exactly_one<T>(
    path: &str,
    choices: &[&str],
    found: Vec<(&str, T)>,
) -> Result<T, String> {
    let choices = choices.join(", ");
    let keys: Vec<&str> = found.iter().map(|(k, _)| *k).collect();
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some((_, one)), None) => Ok(one),
        (None, _) => Err(format!("{path}: no kind given; give one of {choices}")),
        (Some(_), Some(_)) => Err(format!(
            "{path}: has {}; give exactly one of {choices}",
            keys.join(" and ")
        )),
    }
}

/// `spec.selector`: required, so a forgotten selector cannot silently target every node; `"*"`
/// says "every node" (the contract's empty selector).
pub(super) fn selector(selector: Option<String>) -> Result<String, String> {
    match selector.as_deref().map(str::trim) {
        None | Some("") => Err(
            "spec.selector: missing; say which nodes the job runs on, e.g. \
             selector: \"os=debian\", or selector: \"*\" for every node"
                .into(),
        ),
        Some("*") => Ok(String::new()),
        Some(s) => Ok(s.to_owned()),
    }
}

/// Converts `spec:` of a Job document. Errors name the path below the document.
pub fn job_spec(spec: JobSpecDoc) -> Result<JobSpec, String> {
    let (batch_size, batch_percent) = match spec.rollout.batch {
        None => (0, 0),
        Some(Batch::Size(n)) => (n, 0),
        Some(Batch::Percent(p)) => (0, p),
    };
    let task = task(spec.task)?;
    Ok(JobSpec {
        selector: selector(spec.selector)?,
        task: Some(task),
        rollout: Some(Rollout {
            batch_size,
            batch_percent,
            max_failures: spec.rollout.max_failures,
            canary: spec.rollout.canary,
        }),
        timeout_ms: millis(spec.timeout),
        deadline_ms: millis(spec.deadline),
        name: String::new(),
    })
}

fn task(t: doc::TaskDoc) -> Result<TaskSpec, String> {
    let doc::TaskDoc {
        exec,
        config,
        container,
        backup,
    } = t;
    let mut found = Vec::new();
    if let Some(e) = exec {
        let exec = ExecTask {
            argv: strings(&e.argv),
            env: string_map(&e.env),
            cwd: e.cwd,
            user: e.user,
            env_from: env_from("spec.task.exec.envFrom", e.env_from)?,
        };
        found.push(("exec", task_spec::Kind::Exec(exec)));
    }
    if let Some(c) = config {
        found.push(("config", task_spec::Kind::Config(config_task(c)?)));
    }
    if let Some(c) = container {
        found.push(("container", task_spec::Kind::Container(container_task(c)?)));
    }
    if let Some(b) = backup {
        let backup = super::convert_backup::backup_task(b)?;
        found.push(("backup", task_spec::Kind::Backup(backup)));
    }
    let kind = exactly_one(
        "spec.task",
        &["exec", "config", "container", "backup"],
        found,
    )?;
    Ok(TaskSpec { kind: Some(kind) })
}

/// A `contentFrom`/`envFrom.NAME`/`passwordFrom` at `path` as the wire `ValueFrom`, without the
/// file's content: `super::sops_files` reads the file and puts it in.
pub(super) fn value_from(path: &str, v: doc::ValueFromDoc) -> Result<ValueFrom, String> {
    let doc::ValueFromDoc { sops } = v;
    let Some(doc::SopsDoc { file, key }) = sops else {
        return Err(format!(
            "{path}: give the value's source, e.g. sops: {{file: secrets/db.yaml, key: '[\"db\"][\"password\"]'}}"
        ));
    };
    if file.trim().is_empty() {
        return Err(format!(
            "{path}.sops.file is empty; give the SOPS file, relative to the spec file"
        ));
    }
    Ok(ValueFrom {
        source: Some(lab_proto::v1::value_from::Source::Sops(SopsValue {
            file,
            document: String::new(),
            key,
        })),
    })
}

/// `envFrom` at `path`.
fn env_from(
    path: &str,
    m: std::collections::BTreeMap<String, doc::ValueFromDoc>,
) -> Result<std::collections::HashMap<String, ValueFrom>, String> {
    m.into_iter()
        .map(|(k, v)| {
            let at = format!("{path}.{k}");
            value_from(&at, v).map(|v| (k, v))
        })
        .collect()
}

/// Names a converted job after its document's `metadata.name`: sets `JobSpec.name` and the
/// name of a backup task that has none (so `labctl backups` reports it under that name). A
/// name that cannot name a backup is refused here, in the terms the user wrote.
pub fn with_name(mut spec: JobSpec, name: &str) -> Result<JobSpec, String> {
    if name.is_empty() {
        return Ok(spec);
    }
    spec.name = name.to_owned();
    if let Some(task_spec::Kind::Backup(b)) = spec.task.as_mut().and_then(|t| t.kind.as_mut()) {
        if b.name.is_empty() {
            lab_coordinator::backups::check_name(name).map_err(|rule| {
                format!(
                    "metadata.name '{}' also names the backup (spec.task.backup.name is not set), but {}; set spec.task.backup.name or rename the job",
                    name.escape_debug(),
                    rule.trim_start_matches("backup.name: ")
                )
            })?;
            b.name = name.to_owned();
        }
    }
    Ok(spec)
}

fn config_task(c: doc::ConfigDoc) -> Result<ConfigTask, String> {
    let resources = c
        .resources
        .into_iter()
        .enumerate()
        .map(|(i, r)| resource(i, r))
        .collect::<Result<_, _>>()?;
    Ok(ConfigTask {
        resources,
        check: c.check,
    })
}

fn resource(index: usize, r: doc::ResourceDoc) -> Result<Resource, String> {
    let doc::ResourceDoc {
        name,
        continue_on_error,
        file,
        package,
        service,
        nixos_rebuild,
        command,
    } = r;
    let mut found = Vec::new();
    if let Some(f) = file {
        let file = FileResource {
            path: f.path,
            content: f.content,
            template: f.template,
            mode: f.mode,
            owner: f.owner,
            group: f.group,
            state: presence(f.state) as i32,
            secret: f.secret,
            follow_symlinks: f.follow_symlinks,
            allow_unsafe_parent: f.allow_unsafe_parent,
            content_from: f
                .content_from
                .map(|v| {
                    value_from(
                        &format!("spec.task.config.resources[{index}].file.contentFrom"),
                        v,
                    )
                })
                .transpose()?,
        };
        found.push(("file", resource::Kind::File(file)));
    }
    if let Some(p) = package {
        let package = PackageResource {
            name: p.name,
            state: package_state(p.state) as i32,
        };
        found.push(("package", resource::Kind::Package(package)));
    }
    if let Some(s) = service {
        let service = ServiceResource {
            unit: s.unit,
            state: service_state(s.state) as i32,
            enabled: s.enabled,
        };
        found.push(("service", resource::Kind::Service(service)));
    }
    if let Some(n) = nixos_rebuild {
        let rebuild = nixos_rebuild_resource(n)
            .map_err(|e| format!("spec.task.config.resources[{index}].nixosRebuild: {e}"))?;
        found.push(("nixosRebuild", resource::Kind::NixosRebuild(rebuild)));
    }
    if let Some(c) = command {
        let command = CommandResource {
            argv: strings(&c.argv),
            creates: c.creates,
            unless: strings(&c.unless),
            env: string_map(&c.env),
            cwd: c.cwd,
            env_from: env_from(
                &format!("spec.task.config.resources[{index}].command.envFrom"),
                c.env_from,
            )?,
        };
        found.push(("command", resource::Kind::Command(command)));
    }
    let kind = exactly_one(
        &format!("spec.task.config.resources[{index}]"),
        &["file", "package", "service", "nixosRebuild", "command"],
        found,
    )?;
    Ok(Resource {
        name,
        continue_on_error,
        kind: Some(kind),
    })
}

fn container_task(c: doc::ContainerDoc) -> Result<ContainerTask, String> {
    let doc::ContainerDoc {
        socket,
        ensure,
        stop,
        remove,
        pull,
        restart,
        logs,
    } = c;
    use container_task::Action;
    let reference = |r: doc::ContainerRefDoc| ContainerRef { name: r.name };
    let mut found = Vec::new();
    if let Some(e) = ensure {
        let ensure = ContainerEnsure {
            name: e.name,
            image: e.image,
            command: strings(&e.command),
            env: string_map(&e.env),
            ports: strings(&e.ports),
            volumes: e.volumes,
            restart: restart_policy(e.restart) as i32,
            labels: string_map(&e.labels),
        };
        found.push(("ensure", Action::Ensure(ensure)));
    }
    if let Some(r) = stop {
        found.push(("stop", Action::Stop(reference(r))));
    }
    if let Some(r) = remove {
        found.push(("remove", Action::Remove(reference(r))));
    }
    if let Some(p) = pull {
        found.push(("pull", Action::Pull(ImageRef { image: p.image })));
    }
    if let Some(r) = restart {
        found.push(("restart", Action::Restart(reference(r))));
    }
    if let Some(l) = logs {
        let logs = ContainerLogs {
            name: l.name,
            tail: l.tail,
        };
        found.push(("logs", Action::Logs(logs)));
    }
    let action = exactly_one(
        "spec.task.container",
        &["ensure", "stop", "remove", "pull", "restart", "logs"],
        found,
    )?;
    Ok(ContainerTask {
        socket,
        action: Some(action),
    })
}

fn presence(p: Option<doc::Presence>) -> lab_proto::v1::Presence {
    use lab_proto::v1::Presence as P;
    match p {
        None => P::Unspecified,
        Some(doc::Presence::Present) => P::Present,
        Some(doc::Presence::Absent) => P::Absent,
    }
}

fn package_state(s: Option<doc::PackageState>) -> lab_proto::v1::PackageState {
    use lab_proto::v1::PackageState as P;
    match s {
        None => P::Unspecified,
        Some(doc::PackageState::Installed) => P::Installed,
        Some(doc::PackageState::Absent) => P::Absent,
        Some(doc::PackageState::Latest) => P::Latest,
    }
}

fn service_state(s: Option<doc::ServiceState>) -> lab_proto::v1::ServiceState {
    use lab_proto::v1::ServiceState as S;
    match s {
        None => S::Unspecified,
        Some(doc::ServiceState::Running) => S::Running,
        Some(doc::ServiceState::Stopped) => S::Stopped,
        Some(doc::ServiceState::Restarted) => S::Restarted,
        Some(doc::ServiceState::Reloaded) => S::Reloaded,
    }
}

/// Pause between health attempts when the spec names none.
const DEFAULT_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A `nixosRebuild:` resource, checked as the coordinator and the agent check it.
pub(crate) fn nixos_rebuild_resource(
    n: doc::NixosRebuildDoc,
) -> Result<NixosRebuildResource, String> {
    let doc::NixosRebuildDoc {
        flake,
        action,
        upgrade,
        health,
        generation,
    } = n;
    if flake.as_deref() == Some("") {
        return Err(
            "flake is empty; give a flake reference, or omit flake for the channel configuration"
                .into(),
        );
    }
    let rebuild = NixosRebuildResource {
        flake: flake.unwrap_or_default(),
        action: nixos_action(action) as i32,
        health: health.map(|h| NixosHealthCheck {
            argv: strings(&h.argv),
            timeout_ms: millis(h.timeout),
            retries: h.retries,
            interval_ms: millis(Some(h.interval.unwrap_or(DEFAULT_HEALTH_INTERVAL))),
        }),
        generation: generation.unwrap_or(0),
        upgrade,
    };
    lab_proto::nixos::validate(&rebuild)?;
    Ok(rebuild)
}

fn nixos_action(a: Option<doc::NixosAction>) -> lab_proto::v1::NixosAction {
    use lab_proto::v1::NixosAction as A;
    match a {
        None => A::Unspecified,
        Some(doc::NixosAction::Switch) => A::Switch,
        Some(doc::NixosAction::Boot) => A::Boot,
        Some(doc::NixosAction::Test) => A::Test,
        Some(doc::NixosAction::DryActivate) => A::DryActivate,
        Some(doc::NixosAction::Rollback) => A::Rollback,
    }
}

fn restart_policy(r: Option<doc::RestartPolicy>) -> lab_proto::v1::RestartPolicy {
    use lab_proto::v1::RestartPolicy as R;
    match r {
        None => R::Unspecified,
        Some(doc::RestartPolicy::No) => R::No,
        Some(doc::RestartPolicy::Always) => R::Always,
        Some(doc::RestartPolicy::UnlessStopped) => R::UnlessStopped,
        Some(doc::RestartPolicy::OnFailure) => R::OnFailure,
    }
}
