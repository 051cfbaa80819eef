//! `status`: the running daemon's report through its socket; when no daemon answers, what
//! the local store knows.

use std::process::ExitCode;
use std::time::Duration;

use crate::health::report::{RECENT_SESSIONS, StatusReport};
use crate::health::socket::{self, QueryError};
use jarvis_config::Config;
use jarvis_core::health::{CurrentSession, HealthSnapshot};
use jarvis_store::{OutboxStats, SessionSummary, Store};

/// How long a running daemon may take to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// LSB's exit status for "program is not running" (as `systemctl status` uses it).
const NOT_RUNNING: u8 = 3;

pub fn run(cfg: &Config, json: bool) -> ExitCode {
    let answer = socket::query(&cfg.health.runtime_dir, ANSWER_WAIT);
    let view = match answer {
        Ok(report) => View::Running(Box::new(report)),
        Err(why) => View::Offline {
            why,
            local: read_store(cfg),
        },
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view.to_json(cfg)).unwrap_or_default()
        );
    } else {
        view.print(cfg);
    }
    match view {
        View::Running(_) => ExitCode::SUCCESS,
        View::Offline { .. } => ExitCode::from(NOT_RUNNING),
    }
}

/// What `status` learned.
enum View {
    Running(Box<StatusReport>),
    /// No report: why, and the store read directly instead.
    Offline {
        why: QueryError,
        local: Result<(Vec<SessionSummary>, OutboxStats), String>,
    },
}

impl View {
    fn to_json(&self, cfg: &Config) -> serde_json::Value {
        match self {
            View::Running(r) => serde_json::json!({
                "kiosk_id": cfg.kiosk.id,
                "daemon": "running",
                "generated_at_ms": r.generated_at_ms,
                "health": r.health,
                "current_session": r.health.current_session.as_ref().map(|s| serde_json::json!({
                    "session_id": s.session_id,
                    "first_name": s.first_name,
                    "started_at_ms": s.started_at_ms,
                    "duration_ms": r.current_session_ms(),
                    "cost_nusd": s.cost,
                    "cost_usd": s.cost.to_decimal_string(),
                    "billed_seconds": s.billed_seconds,
                })),
                "recent_sessions": r.recent_sessions,
                "outbox": r.outbox,
                "store_error": r.store_error,
            }),
            View::Offline { why, local } => {
                let (sessions, outbox, store_error) = match local {
                    Ok((s, o)) => (Some(s), Some(o), None),
                    Err(e) => (None, None, Some(e)),
                };
                let state = match why {
                    QueryError::NotRunning(_) => "not_running",
                    QueryError::NoAnswer { .. } => "not_responding",
                    _ => "unreachable",
                };
                serde_json::json!({
                    "kiosk_id": cfg.kiosk.id,
                    "daemon": state,
                    "why": why.to_string(),
                    "recent_sessions": sessions,
                    "outbox": outbox,
                    "store_error": store_error,
                })
            }
        }
    }

    fn print(&self, cfg: &Config) {
        println!("kiosk: {}", cfg.kiosk.id);
        match self {
            View::Running(r) => {
                print_health(&r.health, r.generated_at_ms);
                if let Some(s) = &r.health.current_session {
                    print_current(s, r.current_session_ms().unwrap_or(0));
                }
                match &r.outbox {
                    Some(o) => print_outbox(o, r.generated_at_ms),
                    None => println!(
                        "local store: {}",
                        r.store_error.as_deref().unwrap_or("no answer")
                    ),
                }
                print_sessions(&r.recent_sessions);
            }
            View::Offline { why, local } => {
                println!("daemon: {why}");
                match local {
                    Ok((sessions, outbox)) => {
                        print_outbox(outbox, jarvis_core::clock::wall_ms());
                        print_sessions(sessions);
                    }
                    Err(e) => println!("local store: {e}"),
                }
            }
        }
    }
}

fn read_store(cfg: &Config) -> Result<(Vec<SessionSummary>, OutboxStats), String> {
    let store = Store::open_existing(&cfg.storage.path).map_err(|e| e.to_string())?;
    let sessions = store
        .recent_sessions(RECENT_SESSIONS)
        .map_err(|e| e.to_string())?;
    let stats = store.stats().map_err(|e| e.to_string())?;
    Ok((sessions, stats))
}

fn print_health(s: &HealthSnapshot, now_ms: i64) {
    let up_s = (now_ms - s.started_at_ms).max(0) / 1000;
    println!(
        "daemon: running (pid {}, version {}, up {} s)",
        s.pid, s.version, up_s
    );
    println!("lifecycle: {}", s.lifecycle);
    println!("spent today ({}): {}", s.budget_time_zone, s.spent_today);
    if !s.adapters.is_empty() {
        println!("adapters:");
        for (name, state) in &s.adapters {
            println!("  {name:<10} {state}");
        }
    }
    for (name, value) in &s.gauges {
        println!("  {}", gauge_line(name, value, now_ms));
    }
    if !s.last_errors.is_empty() {
        println!("last errors:");
        for e in &s.last_errors {
            println!("  {e}");
        }
    }
}

/// Below this a `…_ms` gauge is a duration (a burst, a lead), above it a wall-clock time
/// (2001-09-09 onwards).
const WALL_CLOCK_MS: i64 = 1_000_000_000_000;

/// One gauge as a person reads it: times as dates with their age, durations in ms, words
/// without quotes, the breaker in words.
fn gauge_line(name: &str, value: &serde_json::Value, now_ms: i64) -> String {
    if let Some(ms) = value.as_i64().filter(|_| name.ends_with("_ms")) {
        let label = name.trim_end_matches("_ms").replace('_', " ");
        if ms < WALL_CLOCK_MS {
            return format!("{label}: {ms} ms");
        }
        let ago = (now_ms - ms).max(0) / 1000;
        return format!("{label}: {} ({ago} s ago)", format_ms(ms));
    }
    if let Some(text) = value.as_str() {
        return format!("{}: {text}", name.replace('_', " "));
    }
    if name == "breaker"
        && let Some(state) = value.get("state").and_then(|s| s.as_str())
    {
        let mut line = format!("breaker: {}", state.replace('_', "-"));
        if let Some(n) = value.get("consecutive_failures").and_then(|n| n.as_u64())
            && n > 0
        {
            line.push_str(&format!(", {n} consecutive failures"));
        }
        if let Some(ms) = value.get("retry_in_ms").and_then(|n| n.as_u64()) {
            line.push_str(&format!(", next try in {} s", ms.div_ceil(1000)));
        }
        if let Some(why) = value.get("last_failure").and_then(|s| s.as_str()) {
            line.push_str(&format!(" (last failure: {why})"));
        }
        return line;
    }
    format!("{}: {value}", name.replace('_', " "))
}

fn print_current(s: &CurrentSession, duration_ms: u64) {
    let billed = s
        .billed_seconds
        .map(|b| format!(" (GPT-Live, {b} s billed)"))
        .unwrap_or_default();
    println!(
        "current session: {} with {}, {:.1} s, {} so far{billed}",
        s.session_id,
        s.first_name.as_deref().unwrap_or("a guest"),
        duration_ms as f64 / 1000.0,
        s.cost
    );
}

fn print_outbox(o: &OutboxStats, now_ms: i64) {
    let behind = o
        .oldest_pending_ms
        .map(|t| format!(", oldest {} s old", (now_ms - t).max(0) / 1000))
        .unwrap_or_default();
    println!(
        "outbox: {} pending{behind}, {} synced, {} dead-lettered, {} dropped",
        o.pending, o.synced, o.dead, o.dropped
    );
}

fn print_sessions(sessions: &[SessionSummary]) {
    if sessions.is_empty() {
        println!("recent sessions: none");
        return;
    }
    println!("recent sessions:");
    for s in sessions {
        let when = s.started_at_ms.map(format_ms).unwrap_or_else(|| "?".into());
        let end = match (&s.end_reason, s.duration_ms) {
            (Some(r), Some(d)) => format!("{r} after {:.1} s", d as f64 / 1000.0),
            _ => "live".into(),
        };
        let usage = match &s.live {
            Some(l) => format!(
                "GPT-Live {} s billed{}, {} delegated",
                l.billed_seconds,
                if l.estimated { " (estimate)" } else { "" },
                l.delegations
            ),
            None => format!("{} responses", s.responses),
        };
        println!(
            "  {} {when}  {end}  {usage}  {}",
            s.session_id, s.total_nusd
        );
    }
}

/// `2026-11-21 10:42:07Z` from Unix milliseconds.
pub fn format_ms(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_251_995_000;

    #[test]
    fn gauges_read_as_words_and_dates() {
        assert_eq!(
            gauge_line("scanner_last_scan_ms", &json!(1_795_251_982_478i64), NOW),
            "scanner last scan: 2026-11-21 09:06:22Z (12 s ago)"
        );
        assert_eq!(
            gauge_line(
                "breaker",
                &json!({"state": "closed", "consecutive_failures": 0, "retry_in_ms": null, "last_failure": null}),
                NOW
            ),
            "breaker: closed"
        );
        assert_eq!(
            gauge_line(
                "breaker",
                &json!({"state": "open", "consecutive_failures": 3, "until_ms": 9, "retry_in_ms": 29_500, "last_failure": "HTTP 429"}),
                NOW
            ),
            "breaker: open, 3 consecutive failures, next try in 30 s (last failure: HTTP 429)"
        );
        assert_eq!(
            gauge_line("outbox_backlog", &json!(4), NOW),
            "outbox backlog: 4"
        );
        assert_eq!(
            gauge_line("audio_device_burst_ms", &json!(100), NOW),
            "audio device burst: 100 ms"
        );
        assert_eq!(
            gauge_line("openai_api", &json!("live"), NOW),
            "openai api: live"
        );
    }
}
