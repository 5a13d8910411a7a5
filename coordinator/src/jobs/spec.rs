//! Validation of a submitted job, before any node is touched.

use lab_proto::selector::Selector;
use lab_proto::v1::{task_spec, JobSpec};

use crate::error::ApiError;

/// Most arguments of an exec task.
const MAX_ARGS: usize = 4096;

/// Checks `spec`; returns its parsed selector.
pub fn validate(spec: &JobSpec) -> Result<Selector, ApiError> {
    let bad = |m: String| Err(ApiError::InvalidArgument(m));
    let selector: Selector = spec.selector.parse().map_err(ApiError::from)?;
    let Some(task) = &spec.task else {
        return bad("job has no task; give one task kind (exec, ...)".into());
    };
    match &task.kind {
        None => return bad("task has no kind; give one task kind (exec, ...)".into()),
        Some(task_spec::Kind::Exec(exec)) => {
            if exec.argv.is_empty() || exec.argv[0].is_empty() {
                return bad("exec task needs a command: argv is empty".into());
            }
            if exec.argv.len() > MAX_ARGS {
                return bad(format!(
                    "exec task has {} arguments; at most {MAX_ARGS}",
                    exec.argv.len()
                ));
            }
            if exec.argv.iter().any(|a| a.contains('\0')) {
                return bad("exec task arguments must not contain NUL bytes".into());
            }
            for key in exec.env.keys() {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    return bad(format!("invalid environment variable name '{key}'"));
                }
            }
            super::spec_secrets::env_from("exec.envFrom", &exec.env, &exec.env_from)?;
            if !exec.cwd.is_empty() && !exec.cwd.starts_with('/') {
                return bad(format!("cwd '{}' must be an absolute path", exec.cwd));
            }
        }
        Some(task_spec::Kind::Config(config)) => super::spec_config::validate_config(config)?,
        Some(task_spec::Kind::Container(c)) => super::spec_config::validate_container(c)?,
        Some(task_spec::Kind::Backup(b)) => super::spec_backup::validate_backup(b)?,
    }
    if let Some(r) = &spec.rollout {
        if r.batch_percent > 100 {
            return bad(format!("batch percent {} is over 100", r.batch_percent));
        }
    }
    super::assign::check_fits(spec)?;
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{ExecTask, Rollout, TaskSpec};

    fn exec(argv: &[&str]) -> JobSpec {
        JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask {
                    argv: argv.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn good_and_bad_specs() {
        assert!(validate(&exec(&["true"])).is_ok());
        assert!(validate(&exec(&[])).is_err());
        assert!(validate(&exec(&[""])).is_err());
        assert!(validate(&JobSpec::default()).is_err());
        let mut s = exec(&["true"]);
        s.selector = "role in (".into();
        assert!(validate(&s).is_err());
        let mut s = exec(&["true"]);
        s.rollout = Some(Rollout {
            batch_percent: 150,
            ..Default::default()
        });
        assert!(validate(&s).is_err());
        let mut s = exec(&["pwd"]);
        if let Some(TaskSpec {
            kind: Some(task_spec::Kind::Exec(e)),
        }) = &mut s.task
        {
            e.cwd = "relative".into();
        }
        assert!(validate(&s).is_err());
    }
}
