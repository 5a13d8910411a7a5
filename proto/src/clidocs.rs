//! Man pages and shell completion scripts generated from a binary's clap definition, so the
//! packaged documentation cannot drift from the flags. The three binaries' hidden `man --out DIR`
//! and their `completion SHELL` commands call these; `deploy/build-packages` runs them.

use std::path::Path;

/// The completion script for `shell`, completing `bin` as described by `cmd`.
pub fn completion(cmd: clap::Command, bin: &str, shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = cmd;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut script);
    script
}

/// Writes `NAME.SECTION` for `cmd` and `NAME-SUB.SECTION` (`labctl-job-logs.1`, ...) for every
/// visible subcommand, recursively, into `dir` (created if missing); returns the file names
/// written. `help` and hidden commands get no page.
pub fn write_man_pages(
    cmd: clap::Command,
    section: &str,
    dir: &Path,
) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| with_path(e, "cannot create", dir))?;
    let mut root = cmd;
    root.build();
    let name = root.get_name().to_owned();
    let mut written = Vec::new();
    write_page(&root, &name, &name, section, dir, &mut written)?;
    Ok(written)
}

/// Writes the page `name` (`lab-agent-enroll`) of `cmd`, invoked as `bin` (`lab-agent enroll`).
fn write_page(
    cmd: &clap::Command,
    name: &str,
    bin: &str,
    section: &str,
    dir: &Path,
    written: &mut Vec<String>,
) -> std::io::Result<()> {
    let page = cmd.clone().name(name.to_owned()).bin_name(bin.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .section(section)
        .render(&mut text)?;
    let file = format!("{name}.{section}");
    let path = dir.join(&file);
    std::fs::write(&path, text).map_err(|e| with_path(e, "cannot write", &path))?;
    written.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_page(
            sub,
            &format!("{name}-{}", sub.get_name()),
            &format!("{bin} {}", sub.get_name()),
            section,
            dir,
            written,
        )?;
    }
    Ok(())
}

fn with_path(e: std::io::Error, what: &str, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("lab-thing")
            .about("a thing")
            .subcommand(
                clap::Command::new("serve")
                    .about("serve it")
                    .arg(clap::Arg::new("listen").long("listen")),
            )
            .subcommand(
                clap::Command::new("job").subcommand(clap::Command::new("logs").about("show logs")),
            )
            .subcommand(clap::Command::new("man").hide(true))
    }

    #[test]
    fn a_page_per_visible_command_in_the_section() {
        let dir = tempdir();
        let written = write_man_pages(cli(), "8", &dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            written,
            [
                "lab-thing.8",
                "lab-thing-serve.8",
                "lab-thing-job.8",
                "lab-thing-job-logs.8"
            ]
        );
        let serve = std::fs::read_to_string(dir.join("lab-thing-serve.8")).unwrap_or_default();
        assert!(serve.contains(".TH lab-thing-serve 8"), "{serve}");
        assert!(serve.contains("lab\\-thing serve"), "{serve}");
        assert!(serve.contains("\\-\\-listen"), "{serve}");
        let logs = std::fs::read_to_string(dir.join("lab-thing-job-logs.8")).unwrap_or_default();
        assert!(logs.contains("lab\\-thing job logs"), "{logs}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script =
                String::from_utf8(completion(cli(), "lab-thing", shell)).unwrap_or_default();
            assert!(
                script.contains("serve") && script.contains("logs"),
                "{shell:?}: {script}"
            );
        }
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let err = write_man_pages(cli(), "1", Path::new("/proc/version/man"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/proc/version/man"), "{err}");
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lab-proto-clidocs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
