//! `status`: the daemon's published health plus what the local store knows, whether or not
//! the daemon is running.

use std::process::ExitCode;

use crate::config::Config;
use crate::daemon::state_file::{self, Published};
use crate::health::HealthSnapshot;
use crate::store::{OutboxStats, SessionSummary, Store};

/// Sessions shown by `status`.
const RECENT: usize = 5;

pub fn run(cfg: &Config, json: bool) -> ExitCode {
    let published = state_file::read(&cfg.health.runtime_dir);
    let local = read_store(cfg);
    if json {
        let (state, snapshot, why) = match &published {
            Published::Running(s) => ("running", Some(s), None),
            Published::Stale { snapshot, why } => ("stale", Some(snapshot), Some(why.as_str())),
            Published::NotRunning => ("not_running", None, None),
        };
        let (sessions, outbox, store_error) = match &local {
            Ok((s, o)) => (Some(s), Some(o), None),
            Err(e) => (None, None, Some(e.as_str())),
        };
        let body = serde_json::json!({
            "kiosk_id": cfg.kiosk.id,
            "daemon": state,
            "why": why,
            "health": snapshot,
            "recent_sessions": sessions,
            "outbox": outbox,
            "store_error": store_error,
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
    match &local {
        Ok((sessions, outbox)) => {
            print_outbox(outbox);
            print_sessions(sessions);
        }
        Err(e) => println!("local store: {e}"),
    }
    ExitCode::SUCCESS
}

fn read_store(cfg: &Config) -> Result<(Vec<SessionSummary>, OutboxStats), String> {
    let store = Store::open_existing(&cfg.storage.path).map_err(|e| e.to_string())?;
    let sessions = store.recent_sessions(RECENT).map_err(|e| e.to_string())?;
    let stats = store.stats().map_err(|e| e.to_string())?;
    Ok((sessions, stats))
}

fn print_snapshot(state: &str, s: &HealthSnapshot) {
    let up_s = (crate::daemon::now_ms() - s.started_at_ms).max(0) / 1000;
    println!(
        "daemon: {state} (pid {}, version {}, up {} s)",
        s.pid, s.version, up_s
    );
    println!("lifecycle: {}", s.lifecycle);
    if !s.adapters.is_empty() {
        println!("adapters:");
        for (name, state) in &s.adapters {
            println!("  {name:<10} {state}");
        }
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

fn print_outbox(o: &OutboxStats) {
    let behind = o
        .oldest_pending_ms
        .map(|t| {
            format!(
                ", oldest {} s old",
                (crate::daemon::now_ms() - t).max(0) / 1000
            )
        })
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
        println!(
            "  {} {when}  {end}  {} responses  {}",
            s.session_id,
            s.responses,
            s.cost.total()
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
