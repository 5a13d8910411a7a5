//! `labctl completion SHELL` and the hidden `labctl man --out DIR`: shell completion scripts and
//! man pages generated from the clap definition in `cli`, so they cannot drift from the flags.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    lab_proto::clidocs::completion(Cli::command(), "labctl", shell)
}

/// `labctl completion SHELL`.
pub fn print_completion(shell: clap_complete::Shell) -> anyhow::Result<()> {
    crate::out!("{}", String::from_utf8_lossy(&completion(shell)))?;
    Ok(())
}

/// Writes `labctl.1` and `labctl-CMD.1` (`labctl-job-logs.1`, ...) for every visible command
/// into `dir`; returns the file names written.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<String>> {
    Ok(lab_proto::clidocs::write_man_pages(
        Cli::command(),
        "1",
        dir,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_scripts_know_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = String::from_utf8(completion(shell)).unwrap_or_default();
            for word in ["nodes", "apply", "schedule", "selector", "context"] {
                assert!(script.contains(word), "{shell:?} completion lacks {word}");
            }
        }
    }

    #[test]
    fn man_pages_for_every_command() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let written = write_man_pages(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        for page in [
            "labctl.1",
            "labctl-run.1",
            "labctl-job-logs.1",
            "labctl-schedule-create.1",
        ] {
            assert!(
                written.iter().any(|w| w == page),
                "{page} missing: {written:?}"
            );
        }
        assert!(!written.iter().any(|w| w.starts_with("labctl-man")));
        let run = std::fs::read_to_string(dir.path().join("labctl-run.1")).unwrap_or_default();
        assert!(
            run.contains(".TH") && run.contains("max\\-failures"),
            "{run}"
        );
    }

    #[test]
    fn help_lists_global_flags_apart_and_shows_examples() {
        let mut root = Cli::command();
        root.build();
        for name in ["run", "apply", "nodes", "jobs"] {
            let Some(sub) = root.find_subcommand_mut(name) else {
                panic!("no {name} command");
            };
            let help = sub.render_long_help().to_string();
            let (own, global) = help
                .split_once("Global options:")
                .unwrap_or_else(|| panic!("{name}: no global section:\n{help}"));
            assert!(
                global.contains("--config") && global.contains("--context"),
                "{help}"
            );
            assert!(
                !own.contains("--config"),
                "{name}: --config among its own flags:\n{help}"
            );
            assert!(
                help.contains("Examples:\n  labctl "),
                "{name}: no examples:\n{help}"
            );
        }
    }
}
