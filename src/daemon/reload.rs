//! SIGHUP: re-read the config file and apply what can change safely while the kiosk serves —
//! session limits and budget (`session.*`), the badge rate limits, prices (`pricing`), the
//! instructions and goodbye phrases, the log level (`log.level`). Any other key that changed is named in the log as
//! needing a restart; an invalid file changes nothing.

use std::sync::Arc;

use jarvis_config::{Config, ConfigSource};
use jarvis_core::health::Health;

use super::driver;

/// What a successful reload produced.
pub struct Reloaded {
    /// The configuration now in effect (the old one with the reloadable keys replaced).
    pub config: Config,
    pub driver: driver::Reload,
}

/// Reads `source` again and returns what to apply, or `None` (logged) if nothing can be.
pub fn reload(
    running: &Config,
    source: &ConfigSource,
    health: &Health,
    playback: Arc<jarvis_audio::Playback>,
) -> Option<Reloaded> {
    let new = match Config::load(source) {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the config file is invalid; nothing reloaded");
            health.record_error(format!("reload refused: {e}"));
            return None;
        }
    };
    let merged = reloadable_from(running, &new);
    let restart = changed_keys(&merged, &new);
    if !restart.is_empty() {
        tracing::warn!(
            keys = restart.join(", "),
            "SIGHUP: these changes need a restart (systemctl restart jarvis-kiosk)"
        );
    }
    let settings = match merged.session_settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: nothing reloaded");
            health.record_error(format!("reload refused: {e}"));
            return None;
        }
    };
    let realtime = match super::realtime_deps(&merged, health, playback) {
        Ok(deps) => Arc::new(deps),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "SIGHUP: nothing reloaded");
            health.record_error(format!("reload refused: {e:#}"));
            return None;
        }
    };
    if merged.log.level != running.log.level
        && let Err(e) = crate::telemetry::set_level(&merged.log.level)
    {
        tracing::error!(error = %e, "SIGHUP: the log level was not changed");
        health.record_error(format!("reload: {e}"));
    }
    tracing::info!(
        changed = changed_keys(running, &merged).join(", "),
        "SIGHUP: reloading"
    );
    Some(Reloaded {
        driver: driver::Reload { settings, realtime },
        config: merged,
    })
}

/// `running` with the keys that can change safely taken from `new`.
fn reloadable_from(running: &Config, new: &Config) -> Config {
    let mut out = running.clone();
    out.session = new.session.clone();
    out.pricing = new.pricing.clone();
    out.openai.instructions_file = new.openai.instructions_file.clone();
    out.openai.goodbye_phrases = new.openai.goodbye_phrases.clone();
    out.badge.debounce_s = new.badge.debounce_s;
    out.badge.max_sessions_per_hour = new.badge.max_sessions_per_hour;
    out.badge.on_scan_during_session = new.badge.on_scan_during_session;
    out.badge.unknown_member = new.badge.unknown_member;
    out.log.level = new.log.level.clone();
    out
}

/// The dotted keys whose values differ between two configurations.
fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return vec!["(the configuration could not be compared)".into()];
    };
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn diff(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff(&path, va, vb, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(prefix.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloadable_keys_are_taken_and_the_others_named() {
        let running = Config::default();
        let mut new = Config::default();
        new.session.idle_timeout_s = 7;
        new.badge.max_sessions_per_hour = 3;
        new.storage.retention_days = 2;
        new.audio.output_device = "plughw:1".into();
        let merged = reloadable_from(&running, &new);
        assert_eq!(merged.session.idle_timeout_s, 7);
        assert_eq!(merged.badge.max_sessions_per_hour, 3);
        assert_eq!(
            merged.storage.retention_days,
            running.storage.retention_days
        );
        assert_eq!(
            changed_keys(&merged, &new),
            ["audio.output_device", "storage.retention_days"]
        );
        assert_eq!(
            changed_keys(&running, &merged),
            ["badge.max_sessions_per_hour", "session.idle_timeout_s"]
        );
    }
}
