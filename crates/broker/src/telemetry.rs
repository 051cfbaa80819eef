//! Logs: journald under systemd (every request line has `KIOSK_ID` and `SESSION_ID` fields, so
//! `journalctl -u jarvis-broker SESSION_ID=…` finds a kiosk's session on the broker too),
//! human-readable on a terminal, JSON on request.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when started by systemd (`JOURNAL_STREAM` set), human-readable otherwise.
    Auto,
    Human,
    Json,
    Journald,
}

/// Installs the global subscriber (`RUST_LOG` wins over `level`). Returns a note when
/// journald was asked for but is not there (then stderr is used).
pub fn init(format: LogFormat, level: &str) -> Option<String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = std::env::var("JOURNAL_STREAM").is_ok_and(|s| !s.is_empty());
    let format = match format {
        LogFormat::Auto if journal => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Human,
        other => other,
    };
    let human = || {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    };
    match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("jarvis-broker".into());
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .try_init();
                None
            }
            Err(e) => {
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(human())
                    .try_init();
                Some(format!("journald unavailable ({e}); logging to stderr"))
            }
        },
        LogFormat::Json => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stderr),
                )
                .try_init();
            None
        }
        LogFormat::Human | LogFormat::Auto => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(human())
                .try_init();
            None
        }
    }
}
