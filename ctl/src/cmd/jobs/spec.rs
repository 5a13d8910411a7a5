//! Turning `labctl run` arguments into a wire `JobSpec`: the `--batch` and `--env` value
//! parsers and the spec builder. Pure; it sends nothing.

use std::time::Duration;

use lab_proto::v1::{task_spec, ExecTask, JobSpec, Rollout, TaskSpec};

use crate::cli::RunArgs;
use crate::failure::Failure;

/// `--batch`: a count of nodes or a percentage of the matched ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// At most this many tasks in flight (at least 1).
    Size(u32),
    /// At most this percentage (1-100) of the job's tasks in flight.
    Percent(u32),
}

/// Parses `--batch` values: `N` (N >= 1) or `P%` (1-100).
pub fn parse_batch(text: &str) -> Result<Batch, String> {
    let text = text.trim();
    if let Some(p) = text.strip_suffix('%') {
        match p.trim().parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(Batch::Percent(p)),
            _ => Err("expected a percentage from 1% to 100%, e.g. 25%".into()),
        }
    } else {
        match text.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Batch::Size(n)),
            Ok(_) => {
                Err("batch size must be at least 1; without a batch, all tasks run at once".into())
            }
            Err(_) => Err("expected a node count (e.g. 2) or a percentage (e.g. 25%)".into()),
        }
    }
}

/// Parses one `--env K=V` value; the key must be non-empty and contain no '='.
pub fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err("expected KEY=VALUE with a non-empty KEY, e.g. LANG=C".into()),
    }
}

/// Milliseconds of a duration, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Builds the job spec of `labctl run`; an empty command is a usage error.
pub fn build(args: &RunArgs, selector: String) -> Result<JobSpec, Failure> {
    if args.command.first().is_none_or(|c| c.is_empty()) {
        return Err(Failure::Usage(
            "empty command: give one after '--', e.g. labctl run -- uptime".into(),
        ));
    }
    let (batch_size, batch_percent) = match args.batch {
        None => (0, 0),
        Some(Batch::Size(n)) => (n, 0),
        Some(Batch::Percent(p)) => (0, p),
    };
    Ok(JobSpec {
        selector,
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Exec(ExecTask {
                argv: args.command.clone(),
                env: args.env.iter().cloned().collect(),
                cwd: args.cwd.clone().unwrap_or_default(),
                user: args.user.clone().unwrap_or_default(),
                // `labctl run` takes no secrets; spec files do (envFrom).
                env_from: Default::default(),
            })),
        }),
        rollout: Some(Rollout {
            batch_size,
            batch_percent,
            max_failures: args.max_failures,
            canary: args.canary,
        }),
        timeout_ms: args.timeout.map(millis).unwrap_or(0),
        deadline_ms: args.deadline.map(millis).unwrap_or(0),
        name: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let argv = ["labctl", "run"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(run) => Ok(run),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn batch_values() {
        assert_eq!(parse_batch("3"), Ok(Batch::Size(3)));
        assert_eq!(parse_batch("25%"), Ok(Batch::Percent(25)));
        assert_eq!(parse_batch("100%"), Ok(Batch::Percent(100)));
        for bad in ["0", "0%", "101%", "-1", "x", "%", "2.5", ""] {
            assert!(parse_batch(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn env_values() {
        assert_eq!(parse_env("A=1"), Ok(("A".into(), "1".into())));
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("A="), Ok(("A".into(), String::new())));
        assert!(parse_env("=1").is_err());
        assert!(parse_env("A").is_err());
    }

    #[test]
    fn full_spec() {
        let args = parse(&[
            "-l",
            "role=web",
            "--batch",
            "50%",
            "--max-failures",
            "1",
            "--canary",
            "1",
            "--timeout",
            "30s",
            "--deadline",
            "2h",
            "--env",
            "A=1",
            "--cwd",
            "/tmp",
            "--user",
            "nobody",
            "--detach",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            "echo hi",
        ])
        .unwrap();
        assert!(args.detach);
        assert_eq!(args.output, crate::cmd::jobs::RunFormat::Json);
        let spec = build(&args, args.selector.clone()).unwrap();
        assert_eq!(spec.selector, "role=web");
        assert_eq!(spec.timeout_ms, 30_000);
        assert_eq!(spec.deadline_ms, 7_200_000);
        let rollout = spec.rollout.unwrap();
        assert_eq!(
            (
                rollout.batch_size,
                rollout.batch_percent,
                rollout.max_failures,
                rollout.canary
            ),
            (0, 50, 1, 1)
        );
        let Some(task_spec::Kind::Exec(exec)) = spec.task.unwrap().kind else {
            panic!("not exec");
        };
        assert_eq!(exec.argv, ["sh", "-c", "echo hi"]);
        assert_eq!(exec.env.get("A").map(String::as_str), Some("1"));
        assert_eq!((exec.cwd.as_str(), exec.user.as_str()), ("/tmp", "nobody"));
    }

    #[test]
    fn defaults_and_command_forms() {
        let args = parse(&["uname", "-a"]).unwrap();
        assert_eq!(args.command, ["uname", "-a"]);
        let spec = build(&args, String::new()).unwrap();
        assert_eq!((spec.timeout_ms, spec.deadline_ms), (0, 0));
        assert_eq!(spec.rollout.unwrap().batch_size, 0);
        // Flags after the command belong to the command.
        let args = parse(&["--batch", "2", "--", "ls", "--detach"]).unwrap();
        assert!(!args.detach);
        assert_eq!(args.batch, Some(Batch::Size(2)));
        assert_eq!(args.command, ["ls", "--detach"]);
    }

    #[test]
    fn usage_errors() {
        let err = parse(&["--batch", "0x", "--", "true"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--batch"), "{err}");
        let err = parse(&["--timeout", "soon", "--", "true"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--timeout"), "{err}");
        let err = parse(&["--env", "NOEQ", "--", "true"]).unwrap_err();
        assert!(err.to_string().contains("--env"), "{err}");
        assert_eq!(parse(&[]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--"]).unwrap_err().exit_code(), 2);
        let args = parse(&["--", ""]).unwrap();
        assert_eq!(build(&args, String::new()).unwrap_err().exit_code(), 2);
    }
}
