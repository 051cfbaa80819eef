//! Command line: the subcommands technicians and support run.
//!
//! Every command loads the same configuration as the daemon, so `config check`, `doctor` and
//! `status` look at exactly what `run` would use.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigSource};
use crate::daemon::state_file::{self, Published};
use crate::health::{Check, HealthSnapshot, Level};
use crate::telemetry::LogFormat;

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
        Command::Run => run_daemon(cfg, cli.log, started),
        Command::Status { json } => status(&cfg, json),
        Command::Doctor { json, quiet } => doctor(&cfg, json, quiet),
        Command::Devices => devices(),
        Command::Outbox { action } => outbox(&cfg, action),
    }
}

fn run_daemon(cfg: Config, log: LogFormat, started: std::time::Instant) -> ExitCode {
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
    match runtime.block_on(crate::daemon::run(cfg, installed, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "daemon failed");
            eprintln!("jarvis-kiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn status(cfg: &Config, json: bool) -> ExitCode {
    let published = state_file::read(&cfg.health.runtime_dir);
    if json {
        let (state, snapshot, why) = match &published {
            Published::Running(s) => ("running", Some(s), None),
            Published::Stale { snapshot, why } => ("stale", Some(snapshot), Some(why.as_str())),
            Published::NotRunning => ("not_running", None, None),
        };
        let body = serde_json::json!({
            "kiosk_id": cfg.kiosk.id,
            "daemon": state,
            "why": why,
            "health": snapshot,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    println!("kiosk: {}", cfg.kiosk.id);
    match &published {
        Published::Running(s) => print_snapshot("running", s),
        Published::Stale { snapshot, why } => {
            print_snapshot(&format!("NOT RESPONDING ({why})"), snapshot)
        }
        Published::NotRunning => println!(
            "daemon: not running (no status in {})",
            cfg.health.runtime_dir.display()
        ),
    }
    ExitCode::SUCCESS
}

fn print_snapshot(state: &str, s: &HealthSnapshot) {
    let up_s = (crate::daemon::now_ms() - s.started_at_ms).max(0) / 1000;
    println!(
        "daemon: {state} (pid {}, version {}, up {} s)",
        s.pid, s.version, up_s
    );
    println!("lifecycle: {}", s.lifecycle);
    for (name, state) in &s.adapters {
        println!("  {name:<10} {state}");
    }
    for (name, value) in &s.gauges {
        println!("  {name}: {value}");
    }
    if !s.last_errors.is_empty() {
        println!("last errors:");
        for e in &s.last_errors {
            println!("  {e}");
        }
    }
}

/// The checks that need nothing beyond the configuration and the file system.
fn base_checks(cfg: &Config) -> Vec<Check> {
    let mut checks = vec![Check::ok("config", "configuration is valid")];
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret_keys = [
        ("openai.api_key_file", cfg.openai.api_key_file.as_ref()),
        (
            "openai.token_credential_file",
            cfg.openai.token_credential_file.as_ref(),
        ),
        ("central.password_file", cfg.central.password_file.as_ref()),
        ("badge.hash_key_file", cfg.badge.hash_key_file.as_ref()),
    ];
    for (key, path) in secret_keys {
        let Some(path) = path else { continue };
        let shown = path.resolve(creds.as_deref());
        match path.read_in(key, creds.as_deref()) {
            Ok(_) if path.too_open(creds.as_deref()) => checks.push(Check::warn(
                key,
                format!("{} is readable by group or others", shown.display()),
                format!("chmod 600 {}", shown.display()),
            )),
            Ok(_) => checks.push(Check::ok(key, format!("{} readable", shown.display()))),
            Err(e) => checks.push(Check::fail(
                key,
                e.to_string(),
                format!("create {} (mode 600)", shown.display()),
            )),
        }
    }
    if cfg.openai.api_key_file.is_none() && cfg.openai.token_url.is_none() {
        checks.push(Check::fail(
            "openai credentials",
            "neither openai.api_key_file nor openai.token_url is set",
            "set openai.api_key_file (a file holding the API key) or openai.token_url",
        ));
    }
    checks.push(clock_check());
    checks
}

fn clock_check() -> Check {
    // A kiosk whose RTC battery died boots in 1970; every timestamp and TLS check would be wrong.
    let year_2025_ms = 1_735_689_600_000;
    if crate::daemon::now_ms() < year_2025_ms {
        Check::fail(
            "clock",
            "system clock is before 2025",
            "enable NTP: timedatectl set-ntp true",
        )
    } else {
        Check::ok("clock", "system clock looks sane")
    }
}

fn doctor(cfg: &Config, json: bool, _quiet: bool) -> ExitCode {
    let checks = base_checks(cfg);
    print_checks(&checks, json);
    if checks.iter().any(|c| c.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_checks(checks: &[Check], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(checks).unwrap_or_default()
        );
        return;
    }
    for c in checks {
        let level = match c.level {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{level} {:<28} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("     {:<28} fix: {fix}", "");
        }
    }
}

fn devices() -> ExitCode {
    println!("device listing arrives with the badge and audio adapters");
    ExitCode::SUCCESS
}

fn outbox(_cfg: &Config, _action: OutboxAction) -> ExitCode {
    println!("outbox commands arrive with the local store");
    ExitCode::SUCCESS
}
