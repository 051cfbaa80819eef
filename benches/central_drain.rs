//! Outbox drain benchmark: buffered events from the local SQLite outbox into a local Postgres
//! (central schema, trigger and RLS in place, logged in as a kiosk role), directly and through
//! PgBouncer in transaction pooling mode. Prints events/s; the budget is >= 20 000 events/s.
//!
//! `scripts/bench-drain.sh [EVENTS]` (release build; default 100 000 events), or
//! `cargo test --bench central_drain` for a quick debug-build run on 2 000 events.
//! Needs the local Postgres (DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres)
//! and the Debian `pgbouncer` package.

#[path = "../tests/central_support/mod.rs"]
mod central_support;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use central_support::{PgBouncer, TestDb, append, open_store, sessions, settings, wait_drained};
use jarvis_core::health::Health;
use jarvis_sync::conn::CentralTarget;
use jarvis_sync::run_with_target;
use tokio_util::sync::CancellationToken;

struct Row {
    path: &'static str,
    batch: usize,
    events: usize,
    secs: f64,
}

async fn drain(path: &'static str, batch: usize, events: usize) -> Row {
    let db = TestDb::migrated("bench");
    let k = db.add_kiosk("bench", "gym_bench");
    let bouncer = (path == "pgbouncer").then(|| PgBouncer::start(&[(&k.role, &k.password)]));
    let url = bouncer
        .as_ref()
        .map_or(k.url.clone(), |b| b.url_for(&k.url));
    let target = CentralTarget::new(&url, Some(&k.password), None, &k.kiosk_id).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    // 98 responses per session, plus its start and end: 100 events per session.
    append(&store, sessions(events.div_ceil(100), 98)).await;
    let mut s = settings(&k.kiosk_id, dir.path());
    s.batch.max_events = batch;
    s.batch.max_wait_ms = 0;
    s.statement_timeout = Duration::from_secs(60);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let worker = tokio::spawn(run_with_target(
        target,
        s,
        store.clone(),
        Health::new(&k.kiosk_id, 0),
        stop.clone(),
    ));
    let stats = wait_drained(&store, 600).await;
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    worker.await.unwrap();
    let central: u64 = db
        .psql("SELECT count(*) FROM kiosk_events WHERE kind <> 'heartbeat'")
        .parse()
        .unwrap();
    assert_eq!(stats.dead, 0);
    assert_eq!(
        central as usize,
        events.div_ceil(100) * 100,
        "every event landed once"
    );
    Row {
        path,
        batch,
        events: central as usize,
        secs,
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().all(|a| a != "--bench");
    let events = std::env::args()
        .filter_map(|a| a.parse::<usize>().ok())
        .next()
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let mut rows = Vec::new();
    for (path, batch) in [
        ("direct", 500),
        ("direct", 1000),
        ("pgbouncer", 500),
        ("pgbouncer", 1000),
    ] {
        rows.push(drain(path, batch, events).await);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!(
        "{events} events, {} CPUs, load average {} (numbers scale with what else runs)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| path      | batch | events  | seconds | events/s | budget 20 000/s |");
    println!("|-----------|-------|---------|---------|----------|-----------------|");
    for r in rows {
        let rate = r.events as f64 / r.secs;
        println!(
            "| {:<9} | {:>5} | {:>7} | {:>7.2} | {:>8.0} | {:<15} |",
            r.path,
            r.batch,
            r.events,
            r.secs,
            rate,
            if rate >= 20_000.0 { "ok" } else { "MISSED" }
        );
    }
}
