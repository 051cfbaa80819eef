//! What the fleet's central services (`jarvis-broker`, `jarvis-dashboard`) share beyond the
//! central connection (`jarvis_sync::conn`, `jarvis_sync::shared`): their `[central]` and `[log]`
//! config, their log set-up and how a command runs.

use std::future::Future;
use std::process::ExitCode;

pub mod config;
pub mod telemetry;

/// Runs one command of `program` on a multi-threaded runtime: success is exit 0, an error is
/// one line on stderr naming the program and the whole cause chain, and exit 1.
pub fn block_on(program: &str, command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{program}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
