//! `jarvis-dashboard`: the fleet dashboard and its notifications (see the crate docs and the
//! README).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use jarvis_dashboard::auth;
use jarvis_dashboard::config::DashboardConfig;
use jarvis_dashboard::db::Central;
use jarvis_dashboard::notify::Notifier;
use jarvis_dashboard::server::{self, App};
use jarvis_service::telemetry::{self, LogFormat};

/// Exit status of a configuration error (sysexits EX_CONFIG), as the kiosk's.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "jarvis-dashboard",
    version,
    about = "Fleet dashboard for JARVIS kiosks"
)]
struct Cli {
    /// Configuration file (default /etc/jarvis-dashboard/config.toml; absent: embedded defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value = "auto")]
    log: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the page and send notifications.
    Run,
    /// Print the effective configuration, or every error in it (exit 78).
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Manage operator accounts in central (needs an admin_service connection).
    Operator {
        #[command(subcommand)]
        what: OperatorCommand,
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
enum OperatorCommand {
    /// Create an operator, or reset its password and gyms.
    Add {
        name: String,
        /// Limit the operator to these gyms (repeat or comma-separate); default: every gym.
        #[arg(long, value_delimiter = ',')]
        gym: Vec<String>,
        /// Read the password from this file (first line); default: the first line of stdin.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Refuse this operator's logins and end its sessions.
    Disable { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match DashboardConfig::load(
        cli.config.as_deref(),
        &jarvis_config::process_env(jarvis_dashboard::config::ENV_PREFIX),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jarvis-dashboard: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Command::Config { .. } = cli.command {
        print!("{}", cfg.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Some(note) = telemetry::init(cli.log, &cfg.log.level, "jarvis-dashboard") {
        eprintln!("jarvis-dashboard: {note}");
    }
    jarvis_service::block_on("jarvis-dashboard", async {
        match cli.command {
            Command::Run => run(cfg).await,
            Command::Operator { what, database_url } => operator(cfg, what, database_url).await,
            Command::Config { .. } => Ok(()),
        }
    })
}

async fn run(cfg: DashboardConfig) -> anyhow::Result<()> {
    let instance = cfg.instance();
    let notifier = Notifier::new(&cfg, &instance)?;
    let listener = server::bind(cfg.dashboard.listen).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        db: Central::new(&cfg.central, &instance)?,
        cfg,
        instance: instance.clone(),
    });
    tracing::info!(%addr, instance, central = app.db.display(), "jarvis-dashboard listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let notify_app = app.clone();
    let mut notify_stop = stop_rx.clone();
    let notifications = tokio::spawn(async move {
        notifier
            .run(&notify_app.db, async move {
                let _ = notify_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    let served = server::serve(app, listener, async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    })
    .await;
    drop(stop_rx);
    let _ = notifications.await;
    served?;
    tracing::info!("jarvis-dashboard stopped");
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

async fn operator(
    mut cfg: DashboardConfig,
    what: OperatorCommand,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    if let Some(url) = database_url {
        cfg.central.url = url;
        cfg.central.password_file = None;
    }
    cfg.central.pool_size = 1;
    let central = Central::new(&cfg.central, &cfg.instance())?;
    let client = central.dedicated().await?;
    match what {
        OperatorCommand::Add {
            name,
            gym,
            password_file,
        } => {
            let line = match password_file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                None => std::io::stdin()
                    .lock()
                    .lines()
                    .next()
                    .transpose()?
                    .unwrap_or_default(),
            };
            let gyms = (!gym.is_empty()).then_some(gym.as_slice());
            auth::upsert_operator(&client, &name, &line, gyms).await?;
            eprintln!(
                "operator {name} saved ({})",
                gyms.map_or("every gym".to_owned(), |g| format!("gyms {}", g.join(", ")))
            );
        }
        OperatorCommand::Disable { name } => {
            let n = client
                .execute(
                    "UPDATE dashboard_operators SET disabled_at = now() WHERE operator = $1",
                    &[&name],
                )
                .await?;
            if n == 0 {
                anyhow::bail!("no operator `{name}` in dashboard_operators");
            }
            client
                .execute(
                    "DELETE FROM dashboard_sessions WHERE operator = $1",
                    &[&name],
                )
                .await?;
            eprintln!("operator {name} disabled");
        }
    }
    Ok(())
}
