//! The `trailwatch` binary: Lambda mode when `AWS_LAMBDA_RUNTIME_API` is set (or
//! `trailwatch lambda`), otherwise the command line. The command line's types
//! (clap) live in [`cli`], compiled into the binary only; the library knows
//! nothing of them.

mod cli;

use std::process::ExitCode;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match cli.command {
        Some(Command::Lambda) => cli::lambda::run(),
        None if lambda => cli::lambda::run(),
        Some(Command::Scan(args)) => cli::commands::scan(args),
        Some(Command::Invoke(args)) => cli::commands::invoke(args),
        Some(Command::EventbridgePattern(args)) => cli::commands::eventbridge_pattern(args),
        Some(Command::Backfill(args)) => cli::history::backfill(args),
        Some(Command::Verify(args)) => cli::verify::run(args),
        Some(Command::Test { rules }) => cli::commands::rule_tests(&rules),
        None => {
            eprintln!("trailwatch: a command is needed (scan, invoke, eventbridge-pattern, backfill, verify, test, lambda); see trailwatch --help");
            ExitCode::from(2)
        }
    }
}
