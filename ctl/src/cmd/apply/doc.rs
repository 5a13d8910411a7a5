//! The spec file format of `labctl apply -f FILE` (DESIGN §5a) as serde structs: camelCase
//! field names, unknown fields refused, enums as strings with their allowed values. Only the
//! shape is checked here; `convert` turns a document into a wire `JobSpec` and checks what
//! serde cannot (exactly one task kind, one resource kind, one container action).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::cmd::jobs::spec::{parse_batch, Batch};

/// The only `apiVersion` understood.
pub const API_VERSION: &str = "labfleet/v1";

/// `metadata:` of a document.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The job's name (`JobSpec.name`), shown in labctl's messages; a backup task's default name.
    pub name: Option<String>,
}

/// A `kind: Job` document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobDoc {
    /// `labfleet/v1`.
    pub api_version: String,
    /// `Job`.
    pub kind: String,
    /// Name for messages.
    #[serde(default)]
    pub metadata: Metadata,
    /// What to run where.
    pub spec: JobSpecDoc,
}

/// `spec:` of a Job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpecDoc {
    /// Target selector; required, `"*"` for every node (see `convert::selector`).
    #[serde(default)]
    pub selector: Option<String>,
    /// Batching, failure budget, canary.
    #[serde(default)]
    pub rollout: RolloutDoc,
    /// Per-task timeout (humantime, e.g. 30s, 2h).
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// How long tasks of offline nodes may wait (humantime).
    #[serde(default, deserialize_with = "duration")]
    pub deadline: Option<Duration>,
    /// Exactly one of exec, config, container, backup.
    pub task: TaskDoc,
}

/// `spec.rollout`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutDoc {
    /// `N` tasks or `"P%"` of them in flight at once; absent = all at once.
    #[serde(default, deserialize_with = "batch")]
    pub batch: Option<Batch>,
    /// Start no further task once this many failed; 0 = never stop.
    #[serde(default)]
    pub max_failures: u32,
    /// Run this many tasks first.
    #[serde(default)]
    pub canary: u32,
}

/// `spec.task`: one key naming the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskDoc {
    /// Run a program.
    pub exec: Option<ExecDoc>,
    /// Apply resources.
    pub config: Option<ConfigDoc>,
    /// Manage a container.
    pub container: Option<ContainerDoc>,
    /// A backup operation.
    pub backup: Option<super::doc_backup::BackupDoc>,
}

/// `task.exec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecDoc {
    /// Program and arguments (no shell).
    pub argv: Vec<Str>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Str>,
    /// More environment variables, decrypted on the node.
    #[serde(default)]
    pub env_from: BTreeMap<String, ValueFromDoc>,
    /// Working directory.
    #[serde(default)]
    pub cwd: String,
    /// Run as this user.
    #[serde(default)]
    pub user: String,
}

/// `task.config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigDoc {
    /// Applied in order.
    pub resources: Vec<ResourceDoc>,
    /// Report what would change, change nothing (`labctl apply --check` sets it too).
    #[serde(default)]
    pub check: bool,
}

/// One entry of `config.resources`: exactly one kind key, plus `name` and `continueOnError`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceDoc {
    /// Shown in results instead of "<kind> <target>".
    #[serde(default)]
    pub name: String,
    /// Keep going with the next resource if this one fails.
    #[serde(default)]
    pub continue_on_error: bool,
    /// A file.
    pub file: Option<FileDoc>,
    /// A distribution package.
    pub package: Option<PackageDoc>,
    /// A systemd unit.
    pub service: Option<ServiceDoc>,
    /// `nixos-rebuild`.
    pub nixos_rebuild: Option<NixosRebuildDoc>,
    /// A command.
    pub command: Option<CommandDoc>,
}

/// `file:` resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileDoc {
    /// Absolute path.
    pub path: String,
    /// Content (a template when `template` is set).
    #[serde(default)]
    pub content: String,
    /// Content decrypted on the node (instead of `content`).
    pub content_from: Option<ValueFromDoc>,
    /// Render `content` with the node's facts.
    #[serde(default)]
    pub template: bool,
    /// Octal mode, "0644" (an unquoted 644 is read as the same digits).
    #[serde(default, deserialize_with = "mode")]
    pub mode: String,
    /// Owner (user name).
    #[serde(default)]
    pub owner: String,
    /// Group name.
    #[serde(default)]
    pub group: String,
    /// present (default) or absent.
    pub state: Option<Presence>,
    /// Never show the content in diffs or logs.
    #[serde(default)]
    pub secret: bool,
    /// Follow a symlink at `path` and manage its target (refused by default).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Write even where users other than root can write a directory on the path.
    #[serde(default)]
    pub allow_unsafe_parent: bool,
}

/// `file.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Presence {
    /// The file exists with this content.
    Present,
    /// The file does not exist.
    Absent,
}

/// `package:` resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageDoc {
    /// Package name.
    pub name: String,
    /// installed (default), absent or latest.
    pub state: Option<PackageState>,
}

/// `package.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PackageState {
    /// Any version installed.
    Installed,
    /// Not installed.
    Absent,
    /// The newest version installed.
    Latest,
}

/// `service:` resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceDoc {
    /// systemd unit.
    pub unit: String,
    /// running, stopped, restarted or reloaded; absent = leave alone.
    pub state: Option<ServiceState>,
    /// Enabled at boot; absent = leave alone.
    pub enabled: Option<bool>,
}

/// `service.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceState {
    /// Active.
    Running,
    /// Inactive.
    Stopped,
    /// Restarted on every apply.
    Restarted,
    /// Reloaded on every apply.
    Reloaded,
}

/// `nixosRebuild:` resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NixosRebuildDoc {
    /// Flake reference; absent = the channel configuration.
    pub flake: Option<String>,
    /// switch (default), boot, test, dryActivate or rollback.
    pub action: Option<NixosAction>,
    /// Channel configuration: update the channels first (`--upgrade`).
    #[serde(default)]
    pub upgrade: bool,
    /// After a switch: the check that keeps the new generation or rolls it back.
    pub health: Option<NixosHealthDoc>,
    /// Rollback: the generation to go to; absent = the previous one.
    #[serde(default, deserialize_with = "generation")]
    pub generation: Option<u64>,
}

/// `nixosRebuild.health:` the health gate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NixosHealthDoc {
    /// The check (no shell).
    pub argv: Vec<Str>,
    /// How long one attempt may run (required).
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// Further attempts after a failed one.
    #[serde(default)]
    pub retries: u32,
    /// Pause between attempts (default 5s).
    #[serde(default, deserialize_with = "duration")]
    pub interval: Option<Duration>,
}

/// `generation`: a positive whole number.
fn generation<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a generation number such as 41")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            if v == 0 || i64::try_from(v).is_err() {
                return Err(E::custom(format!(
                    "generation {v} is not a generation number; give one of the node's \
                     nixos.generations (they start at 1), or omit it for the previous one"
                )));
            }
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "generation {v} is negative; give one of the node's nixos.generations, \
                     or omit it for the previous one"
                ))),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// `nixosRebuild.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NixosAction {
    /// `nixos-rebuild switch`.
    Switch,
    /// `nixos-rebuild boot`.
    Boot,
    /// `nixos-rebuild test`.
    Test,
    /// `nixos-rebuild dry-activate`.
    DryActivate,
    /// Back to `generation`, or the previous one.
    Rollback,
}

/// `command:` resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandDoc {
    /// Program and arguments.
    pub argv: Vec<Str>,
    /// Skip when this path exists.
    #[serde(default)]
    pub creates: String,
    /// Skip when this command exits 0.
    #[serde(default)]
    pub unless: Vec<Str>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Str>,
    /// More environment variables, decrypted on the node.
    #[serde(default)]
    pub env_from: BTreeMap<String, ValueFromDoc>,
    /// Working directory.
    #[serde(default)]
    pub cwd: String,
}

/// `task.container`: the engine socket and exactly one action key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerDoc {
    /// Engine API socket; absent = auto-detect.
    #[serde(default)]
    pub socket: String,
    /// Create/recreate/start as needed.
    pub ensure: Option<EnsureDoc>,
    /// Stop a container.
    pub stop: Option<ContainerRefDoc>,
    /// Remove a container.
    pub remove: Option<ContainerRefDoc>,
    /// Pull an image.
    pub pull: Option<ImageRefDoc>,
    /// Restart a container.
    pub restart: Option<ContainerRefDoc>,
    /// Print a container's logs.
    pub logs: Option<LogsDoc>,
}

/// `container.ensure`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnsureDoc {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Command (overrides the image's).
    #[serde(default)]
    pub command: Vec<Str>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, Str>,
    /// "HOST:CONTAINER[/udp]".
    #[serde(default)]
    pub ports: Vec<Str>,
    /// "/host:/container[:ro]" or "volume:/container".
    #[serde(default)]
    pub volumes: Vec<String>,
    /// no (default), always, unlessStopped or onFailure.
    pub restart: Option<RestartPolicy>,
    /// Container labels.
    #[serde(default)]
    pub labels: BTreeMap<String, Str>,
}

/// `ensure.restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Always restart.
    Always,
    /// Restart unless stopped by hand.
    UnlessStopped,
    /// Restart when it exits non-zero.
    OnFailure,
}

/// `{name: ...}` of stop, remove, restart.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerRefDoc {
    /// Container name.
    pub name: String,
}

/// `pull: {image: ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageRefDoc {
    /// Image reference.
    pub image: String,
}

/// `logs: {name, tail}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogsDoc {
    /// Container name.
    pub name: String,
    /// Last N lines; absent or 0 = all.
    #[serde(default)]
    pub tail: u32,
}

/// `contentFrom`, `envFrom.NAME`, `passwordFrom`: where a value comes from (one key).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValueFromDoc {
    /// A value of a SOPS-encrypted file.
    pub sops: Option<SopsDoc>,
}

/// `sops:` of a [`ValueFromDoc`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SopsDoc {
    /// The SOPS file, relative to the spec file (or absolute).
    pub file: String,
    /// Key path in `sops --extract` syntax: `'["db"]["password"]'`.
    pub key: String,
}

/// A string that YAML may have written as a number or boolean (`argv: [sleep, 5]`,
/// `env: {DEBUG: 1}`); the scalar is taken as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor("a string")).map(Str)
    }
}

/// Takes any scalar as its text; refuses sequences and maps.
struct ScalarVisitor(&'static str);

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Vectors of [`Str`] as plain strings.
pub fn strings(v: &[Str]) -> Vec<String> {
    v.iter().map(|s| s.0.clone()).collect()
}

/// Maps of [`Str`] values as plain strings.
pub fn string_map<C: FromIterator<(String, String)>>(m: &BTreeMap<String, Str>) -> C {
    m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// `mode`: a string of octal digits, or an unquoted number read as the same digits.
fn mode<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarVisitor("an octal mode like \"0644\""))
}

/// `timeout`, `deadline`, `maxAge`: humantime text ("90s", "2h 30m").
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<Duration>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration with a unit, e.g. 30s, 10m or 2h")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            humantime::parse_duration(v.trim()).map(Some).map_err(|e| {
                E::custom(format!(
                    "'{v}' is not a duration ({e}); write e.g. 30s, 10m or 2h"
                ))
            })
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "{v} has no unit; write e.g. {v}s or {v}m"
            )))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(E::custom(format!(
                "{v} is not a duration; write e.g. 30s, 10m or 2h"
            )))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// `rollout.batch`: a count (`2`) or a percentage (`"25%"`).
fn batch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Batch>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<Batch>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a node count (e.g. 2) or a percentage (e.g. \"25%\")")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            parse_batch(v).map(Some).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}
