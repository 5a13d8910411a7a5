//! `lab-loadgen`: argument parsing and the exit code; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use lab_loadgen::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match lab_loadgen::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
