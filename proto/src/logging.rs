//! The one way the binaries set up logging: tracing to stderr, level from `LAB_LOG` (an
//! EnvFilter, e.g. `debug` or `lab_coordinator=debug`), JSON lines when stderr is not a terminal
//! (journald and log shippers), human-readable text on a terminal.

use std::io::IsTerminal;

/// Installs the global subscriber; `default_level` applies when `LAB_LOG` is unset or invalid.
pub fn init(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}
