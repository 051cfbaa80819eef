//! Log setup: journald under systemd, human-readable on a terminal, JSON on request.
//!
//! Support finds a whole session with `journalctl -u jarvis-kiosk SESSION_ID=...`, so every
//! line logged inside a session carries `SESSION_ID` (a field of the `session` span) and every
//! line at all carries `KIOSK_ID`. Spawned tasks must be instrumented with the span of the
//! session they serve ([`tracing::Instrument`]); [`session_span`] builds it.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::Span;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when started by systemd (`JOURNAL_STREAM` set), human-readable otherwise.
    Auto,
    Human,
    Json,
    Journald,
}

/// The identifier journald files our lines under (`SYSLOG_IDENTIFIER`).
pub const SYSLOG_IDENTIFIER: &str = "jarvis-kiosk";

/// What [`init`] actually set up, so a fallback is visible to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Human,
    Json,
    Journald,
    /// journald was asked for but its socket did not answer; logging to stderr instead.
    HumanFallback(String),
}

/// Resolves `Auto` the way systemd expects: journald iff our stderr is its stream.
pub fn resolve(format: LogFormat, journal_stream: Option<&str>) -> LogFormat {
    match format {
        LogFormat::Auto if journal_stream.is_some_and(|s| !s.is_empty()) => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Human,
        other => other,
    }
}

/// The installed subscriber's filter, which `log.level` sets and a reload (SIGHUP) changes.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Changes the level of the installed subscriber (`log.level` syntax: `info`,
/// `info,jarvis_audio=debug`...). An error names what is wrong; the level stays as it was.
pub fn set_level(filter: &str) -> Result<(), String> {
    let new = EnvFilter::try_new(filter).map_err(|e| format!("log.level = {filter:?}: {e}"))?;
    let handle = LEVEL
        .get()
        .ok_or_else(|| "no log subscriber is installed".to_string())?;
    handle
        .reload(new)
        .map_err(|e| format!("log.level = {filter:?}: {e}"))
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat, filter: &str, kiosk_id: &str) -> Installed {
    let env_filter = || {
        let (layer, handle) = reload::Layer::new(
            EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")),
        );
        let _ = LEVEL.set(handle);
        layer
    };
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    match resolve(format, journal_stream.as_deref()) {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned())
                    .with_custom_fields([("KIOSK_ID", kiosk_id.as_bytes())]);
                let _ = tracing_subscriber::registry()
                    .with(env_filter())
                    .with(layer)
                    .try_init();
                Installed::Journald
            }
            Err(e) => {
                init_human(env_filter());
                Installed::HumanFallback(format!(
                    "journald socket /run/systemd/journal/socket unavailable ({e}); logging to stderr"
                ))
            }
        },
        LogFormat::Json => {
            let _ = tracing_subscriber::registry()
                .with(env_filter())
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_current_span(true)
                        .with_span_list(true)
                        .with_writer(std::io::stderr),
                )
                .try_init();
            Installed::Json
        }
        LogFormat::Human | LogFormat::Auto => {
            init_human(env_filter());
            Installed::Human
        }
    }
}

fn init_human(filter: reload::Layer<EnvFilter, Registry>) {
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .try_init();
}

/// The root span of the daemon. In journald mode `KIOSK_ID` is already on every entry, so
/// the span leaves it empty rather than sending it twice.
pub fn kiosk_span(kiosk_id: &str, installed: &Installed) -> Span {
    let span = tracing::info_span!("kiosk", kiosk_id = tracing::field::Empty);
    if *installed != Installed::Journald {
        span.record("kiosk_id", kiosk_id);
    }
    span
}

/// The span every line of one session is logged in: gives journald its `SESSION_ID` field.
pub fn session_span(session_id: &uuid::Uuid) -> Span {
    tracing::info_span!("session", session_id = %session_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_journal_stream() {
        assert_eq!(
            resolve(LogFormat::Auto, Some("8:1234")),
            LogFormat::Journald
        );
        assert_eq!(resolve(LogFormat::Auto, Some("")), LogFormat::Human);
        assert_eq!(resolve(LogFormat::Auto, None), LogFormat::Human);
        assert_eq!(resolve(LogFormat::Json, Some("8:1")), LogFormat::Json);
        assert_eq!(resolve(LogFormat::Journald, None), LogFormat::Journald);
    }
}
