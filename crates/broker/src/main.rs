//! `jarvis-broker`: the fleet's session broker (see the crate docs and the README).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use jarvis_broker::config::{BrokerConfig, is_loopback_url};
use jarvis_broker::db::Central;
use jarvis_broker::server::{self, App};
use jarvis_broker::upstream::Upstream;
use jarvis_config::secrets::Secret;
use jarvis_service::telemetry::{self, LogFormat};

/// Exit status of a configuration error (sysexits EX_CONFIG), as the kiosk's.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "jarvis-broker",
    version,
    about = "Session broker for JARVIS kiosks"
)]
struct Cli {
    /// Configuration file (default /etc/jarvis-broker/config.toml; absent: embedded defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "auto")]
    log: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve kiosks.
    Run,
    /// Print the effective configuration, or every error in it (exit 78).
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Manage kiosk credentials and enablement in central (needs an admin connection).
    Kiosk {
        #[command(subcommand)]
        what: KioskCommand,
        /// Admin connection to central instead of `central.url` (e.g. the schema owner).
        #[arg(long, global = true)]
        database_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    Check,
}

#[derive(Subcommand)]
enum KioskCommand {
    /// Issue a first token (any earlier token ends now); printed once.
    Add {
        kiosk_id: String,
        /// Write the token to this file (mode 600) instead of printing it.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Issue a new token; the previous ones keep working for tokens.rotation_overlap_s.
    Rotate {
        kiosk_id: String,
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Refuse this kiosk every new session.
    Disable { kiosk_id: String },
    /// Serve this kiosk again.
    Enable { kiosk_id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match BrokerConfig::load(
        cli.config.as_deref(),
        &jarvis_config::process_env(jarvis_broker::config::ENV_PREFIX),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jarvis-broker: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Command::Config { .. } = cli.command {
        print!("{}", cfg.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Some(note) = telemetry::init(cli.log, &cfg.log.level, "jarvis-broker") {
        eprintln!("jarvis-broker: {note}");
    }
    jarvis_service::block_on("jarvis-broker", async {
        match cli.command {
            Command::Run => run(cfg).await,
            Command::Kiosk { what, database_url } => kiosk(cfg, what, database_url).await,
            Command::Config { .. } => Ok(()),
        }
    })
}

async fn run(cfg: BrokerConfig) -> anyhow::Result<()> {
    let key = match &cfg.openai.api_key_file {
        Some(file) => file.read("openai.api_key_file")?,
        None if is_loopback_url(&cfg.openai.base_url) => {
            tracing::warn!(
                base_url = %cfg.openai.base_url,
                "no openai.api_key_file: using a placeholder key (only for a local emulator)"
            );
            Secret::new("sk-local-emulator")
        }
        None => anyhow::bail!("openai.api_key_file: required (the organisation's OpenAI key)"),
    };
    let instance = cfg.instance();
    let central = Central::new(&cfg.central, &instance)?;
    let upstream = Upstream::new(&cfg.openai, key).map_err(anyhow::Error::msg)?;
    let listener = server::bind(cfg.broker.listen)
        .await
        .with_context(|| format!("broker.listen: cannot listen on {}", cfg.broker.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        instance,
        central = central.display(),
        upstream = %cfg.openai.base_url,
        "jarvis-broker listening"
    );
    if let Err(e) = central.ping(Duration::from_secs(5)).await {
        tracing::warn!(error = %e, "central not answering yet: kiosks are refused (503) until it does");
    }
    let app = Arc::new(App::new(cfg, central, upstream));
    server::serve(app, listener, shutdown_signal()).await?;
    tracing::info!("jarvis-broker stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn kiosk(
    mut cfg: BrokerConfig,
    what: KioskCommand,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    if let Some(url) = database_url {
        cfg.central.url = url;
        cfg.central.password_file = None;
    }
    cfg.central.pool_size = 1;
    let central = Central::new(&cfg.central, &cfg.instance())?;
    match what {
        KioskCommand::Add {
            kiosk_id,
            token_file,
        } => {
            let token = central.issue_token(&kiosk_id, None).await?;
            hand_out(&kiosk_id, &token, token_file.as_deref(), "added")
        }
        KioskCommand::Rotate {
            kiosk_id,
            token_file,
        } => {
            let overlap = Duration::from_secs(cfg.tokens.rotation_overlap_s);
            let token = central.issue_token(&kiosk_id, Some(overlap)).await?;
            eprintln!(
                "the previous token of {kiosk_id} keeps working for {} s (tokens.rotation_overlap_s)",
                overlap.as_secs()
            );
            hand_out(&kiosk_id, &token, token_file.as_deref(), "rotated")
        }
        KioskCommand::Disable { kiosk_id } => switch(&central, &kiosk_id, true).await,
        KioskCommand::Enable { kiosk_id } => switch(&central, &kiosk_id, false).await,
    }
}

async fn switch(central: &Central, kiosk_id: &str, disabled: bool) -> anyhow::Result<()> {
    if !central.set_disabled(kiosk_id, disabled).await? {
        anyhow::bail!("no kiosk `{kiosk_id}` in the kiosks table");
    }
    eprintln!(
        "kiosk {kiosk_id} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

/// Shows the token once: on stdout, or into `file` (mode 600, replaced atomically).
fn hand_out(kiosk_id: &str, token: &str, file: Option<&Path>, what: &str) -> anyhow::Result<()> {
    match file {
        None => {
            println!("{token}");
            eprintln!(
                "kiosk {kiosk_id}: token {what}; it is shown only once: put it in the kiosk's \
                 openai.token_credential_file (mode 600)"
            );
        }
        Some(path) => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = dir.join(format!(".jarvis-token.{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "kiosk {kiosk_id}: token {what}, written to {} (copy it to the kiosk's \
                 openai.token_credential_file)",
                path.display()
            );
        }
    }
    Ok(())
}
