//! What every command writes to stderr besides its own report: log lines
//! (`RUST_LOG`, warnings by default) and the usage error, which exits 2. Kept
//! apart from the commands so that no command imports another for them.

use std::process::ExitCode;

/// Logs to stderr at `RUST_LOG`'s level (warnings and errors by default), so that
/// stdout carries only the command's output.
pub fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints `trailwatch: <message>` and returns exit code 2: the arguments or the
/// configuration cannot work, and nothing was read.
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("trailwatch: {message}");
    ExitCode::from(2)
}
