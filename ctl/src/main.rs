//! `labctl`: parse arguments, run, map the error to an exit code (see `failure`).

#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = labctl::cli::Cli::parse();
    // People read labctl's stderr: only warnings (dev mode) or errors unless LAB_LOG says more.
    let level = if matches!(cli.command, labctl::cli::Command::Dev { .. }) {
        "warn"
    } else {
        "error"
    };
    lab_proto::logging::init(level);
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        lab_proto::shutdown::wait_for_signal().await;
        on_signal.cancel();
    });
    match labctl::run(cli, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match labctl::failure::interrupted(&e) {
                _ if labctl::failure::closed_pipe(&e) => {}
                Some("") => {}
                // Messages may carry text from nodes (names, task errors).
                Some(message) => labctl::errln!("{}", labctl::output::escape_text(message)),
                None => labctl::errln!("error: {}", labctl::output::escape_text(&format!("{e:#}"))),
            }
            ExitCode::from(labctl::failure::exit_code(&e))
        }
    }
}
