//! `lab-loadgen`: argument parsing and the exit code; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use lab_loadgen::cli::{Cli, Command};

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Compare(args) => match lab_loadgen::compare::run(&args) {
            Ok(outcome) if outcome.failing > 0 && !args.no_fail => ExitCode::from(1),
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Run(scenario) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(lab_loadgen::run(scenario)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
