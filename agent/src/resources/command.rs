//! Command resources, for what no other resource covers: run `argv` (no shell) unless a guard
//! says it is not needed. `creates` (a path) that exists, or an `unless` command that exits 0,
//! makes the resource unchanged without running it. Otherwise it runs with its output streamed:
//! exit 0 is changed, anything else failed with the exit code and the end of its output.
//!
//! Check mode evaluates the guards (the `unless` command is run: it must be a read-only query)
//! and reports "would run" instead of running the command.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lab_proto::v1::CommandResource;

use super::process::{self, Cmd};
use super::{absolute_path, Cx, Report};

/// Longest default name ("command " + argv) shown in results.
const MAX_NAME: usize = 80;

/// A command resource, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program (looked up in PATH) and arguments.
    pub argv: Vec<String>,
    /// Not run when this path exists.
    pub creates: Option<PathBuf>,
    /// Not run when this command exits 0 (empty = no guard).
    pub unless: Vec<String>,
    /// Added to the agent's environment (of both commands).
    pub env: BTreeMap<String, String>,
    /// Working directory (of both commands); empty = `/`.
    pub cwd: String,
}

/// "command ARGV", cut to a readable length.
pub fn default_name(argv: &[String]) -> String {
    let name = format!("command {}", argv.join(" "));
    if name.chars().count() <= MAX_NAME {
        return name;
    }
    let cut: String = name.chars().take(MAX_NAME - 3).collect();
    format!("{cut}...")
}

fn check_argv(argv: &[String], what: &str) -> Result<(), String> {
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(format!("the {what} has no program (argv is empty)"));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(format!("the {what} has an argument with a NUL byte"));
    }
    Ok(())
}

impl TryFrom<CommandResource> for CommandSpec {
    type Error = String;
    fn try_from(c: CommandResource) -> Result<Self, String> {
        let CommandResource {
            argv,
            creates,
            unless,
            env,
            cwd,
            env_from,
        } = c;
        if !env_from.is_empty() {
            // crate::secrets::resolve puts the decrypted values into `env` before a task runs.
            return Err("envFrom was not decrypted before the command ran (an agent bug)".into());
        }
        check_argv(&argv, "command")?;
        if !unless.is_empty() {
            check_argv(&unless, "command's 'unless' guard")?;
        }
        if let Some(key) = env.keys().find(|k| k.is_empty() || k.contains(['=', '\0'])) {
            return Err(format!(
                "invalid environment variable name '{}'",
                key.escape_debug()
            ));
        }
        if env.values().any(|v| v.contains('\0')) {
            return Err("an environment variable's value contains a NUL byte".to_owned());
        }
        let creates = if creates.is_empty() {
            None
        } else {
            Some(absolute_path(&creates, "'creates' path")?)
        };
        if !cwd.is_empty() {
            absolute_path(&cwd, "working directory")?;
        }
        Ok(CommandSpec {
            argv,
            creates,
            unless,
            env: env.into_iter().collect(),
            cwd,
        })
    }
}

impl CommandSpec {
    fn cmd(&self, argv: &[String]) -> Cmd {
        Cmd {
            argv: argv.to_vec(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stream: false,
            timeout: None,
        }
    }
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &CommandSpec, cx: &mut Cx<'_>) -> Report {
    if let Some(path) = &spec.creates {
        let exists = tokio::fs::symlink_metadata(path).await.is_ok();
        if exists {
            return Report::unchanged(format!("not run: {} exists", path.display()));
        }
    }
    if !spec.unless.is_empty() {
        let guard = process::run(cx, spec.cmd(&spec.unless)).await;
        if guard.success() {
            return Report::unchanged("not run: the 'unless' command succeeded");
        }
        // A guard that cannot run at all (or was stopped) is an error, not "go ahead".
        if guard.exit_code < 0 {
            return Report::failed(format!("'unless' guard: {}", guard.failure()));
        }
    }
    let shown = spec.argv.join(" ");
    if cx.check {
        return Report::changed(format!("would run {shown}"), "would run");
    }
    let ran = process::run(cx, spec.cmd(&spec.argv).streamed()).await;
    if ran.success() {
        Report::changed(format!("ran {shown}"), "exit code 0")
    } else {
        Report::failed(ran.failure())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_names() {
        let ok = CommandResource {
            argv: vec!["touch".into(), "/tmp/x".into()],
            creates: "/tmp/x".into(),
            ..Default::default()
        };
        assert!(CommandSpec::try_from(ok.clone()).is_ok());
        for bad in [
            CommandResource {
                argv: vec![],
                ..ok.clone()
            },
            CommandResource {
                creates: "tmp/x".into(),
                ..ok.clone()
            },
            CommandResource {
                cwd: "relative".into(),
                ..ok.clone()
            },
            CommandResource {
                unless: vec!["".into()],
                ..ok.clone()
            },
            CommandResource {
                env: [("A=B".to_owned(), "x".to_owned())].into(),
                ..ok.clone()
            },
        ] {
            assert!(CommandSpec::try_from(bad.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(default_name(&ok.argv), "command touch /tmp/x");
        let long = default_name(&["x".repeat(200)]);
        assert!(long.ends_with("...") && long.chars().count() == MAX_NAME);
    }
}
