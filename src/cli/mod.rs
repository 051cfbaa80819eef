//! Command line: the subcommands technicians and support run.
//!
//! Every command loads the same configuration as the daemon, so `config check`, `doctor` and
//! `status` look at exactly what `run` would use.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;
use jarvis_config::{Config, ConfigSource};

mod doctor;
mod outbox;
mod status;

#[derive(Debug, Parser)]
#[command(name = "jarvis-kiosk", version, about = "JARVIS gym kiosk daemon")]
pub struct Cli {
    /// Configuration file [default: /etc/jarvis-kiosk/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log output: auto = journald under systemd, human-readable otherwise
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub log: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (what the systemd unit starts)
    Run,
    /// Show the daemon's state, recent sessions and their costs
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check configuration, credentials, devices, storage and network; non-zero exit on failure
    Doctor {
        #[arg(long)]
        json: bool,
        /// Do not play the test tone
        #[arg(long)]
        quiet: bool,
        /// Also place a real test call to openai.base_url: mint a key, exchange SDP, connect
        /// (UDP, or TCP 443 when UDP is blocked), open the data channel, wait for
        /// session.created and hang up without asking for a response. No model output is
        /// generated, so no tokens are billed; the call may count toward OpenAI's rate limits
        /// and concurrent-session limit for a few seconds.
        #[arg(long)]
        call: bool,
    },
    /// List serial ports, input devices and sound cards
    Devices,
    /// Inspect or act on the local outbox of events waiting for the central database
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Configuration commands
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Pending, synced, dead-lettered and dropped event counts
    Stats,
    /// Events the central database refused, with the reason
    DeadLetters,
    /// Put dead-lettered events back in the queue
    Retry,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration, or every error in it
    Check,
}

/// Exit status for "the configuration is unusable" (sysexits' EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

/// Runs the parsed command line and returns the process exit status.
pub fn main(cli: Cli) -> ExitCode {
    let started = std::time::Instant::now();
    let source = ConfigSource::from_process(cli.config.as_deref());
    let cfg = match Config::load(&source) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("jarvis-kiosk: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::Config {
            action: ConfigAction::Check,
        } => {
            println!(
                "# effective configuration from {} (+ JARVIS_KIOSK__* environment); secrets are files and never printed",
                source.path.display()
            );
            print!("{}", cfg.to_toml());
            ExitCode::SUCCESS
        }
        Command::Run => run_daemon(cfg, source, cli.log, started),
        Command::Status { json } => status::run(&cfg, json),
        Command::Doctor { json, quiet, call } => doctor::run(&cfg, json, quiet, call),
        Command::Devices => doctor::devices(),
        Command::Outbox { action } => outbox::run(&cfg, action),
    }
}

fn run_daemon(
    cfg: Config,
    source: ConfigSource,
    log: LogFormat,
    started: std::time::Instant,
) -> ExitCode {
    let installed = crate::telemetry::init(log, &cfg.log.level, &cfg.kiosk.id);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jarvis-kiosk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::daemon::run(cfg, source, installed, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "daemon failed");
            eprintln!("jarvis-kiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}
