//! `outbox stats|dead-letters|retry`: the local buffer of events waiting for central.

use std::process::ExitCode;

use super::OutboxAction;
use jarvis_config::Config;
use jarvis_store::Store;

pub fn run(cfg: &Config, action: OutboxAction) -> ExitCode {
    let mut store = match Store::open_existing(&cfg.storage.path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("jarvis-kiosk: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match action {
        OutboxAction::Stats => store.stats().map(|s| {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        }),
        OutboxAction::DeadLetters => store.dead_letters().map(|dead| {
            if dead.is_empty() {
                println!("no dead letters");
            }
            for d in dead {
                println!(
                    "seq {} {} {} (session {}) after {} attempts: {}",
                    d.seq,
                    d.kind,
                    d.event_id,
                    d.session_id.as_deref().unwrap_or("-"),
                    d.attempts,
                    d.error
                );
            }
        }),
        OutboxAction::Retry => store.retry_dead_letters().map(|n| {
            println!("{n} dead-lettered events put back in the queue");
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jarvis-kiosk: {e}");
            ExitCode::FAILURE
        }
    }
}
