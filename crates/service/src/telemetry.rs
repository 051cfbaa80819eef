//! Logs of a central service: journald under systemd (filed under the service's identifier),
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

/// Installs the global subscriber (`RUST_LOG` wins over `level`); journald files the lines under
/// `identifier` (`journalctl -t jarvis-broker`). Returns a note when journald was asked for but
/// is not there (then stderr is used).
pub fn init(format: LogFormat, level: &str, identifier: &str) -> Option<String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = std::env::var("JOURNAL_STREAM").is_ok_and(|s| !s.is_empty());
    let format = match format {
        LogFormat::Auto if journal => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Human,
        other => other,
    };
    let human = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier(identifier.into());
                let _ = registry.with(layer).try_init();
                None
            }
            Err(e) => {
                let _ = registry.with(human).try_init();
                Some(format!("journald unavailable ({e}); logging to stderr"))
            }
        },
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr);
            let _ = registry.with(json).try_init();
            None
        }
        LogFormat::Human | LogFormat::Auto => {
            let _ = registry.with(human).try_init();
            None
        }
    }
}
