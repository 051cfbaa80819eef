//! Quick store benchmark (no criterion): prints a table of append, batch append and local drain
//! throughput with `synchronous=FULL`, and the cost of `quick_check` vs `integrity_check` at open.
//!
//! `cargo bench --bench store -- [DIR] [CHECK_DB_MIB]` (release), or `cargo test --bench store`
//! for a quick debug-build run. DIR defaults to the system temp dir: run it on the kiosk's real
//! storage to measure its fsync.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jarvis_core::events::{CostBreakdown, EventPayload, KioskEvent, TokenCounts};
use jarvis_core::money::NanoUsd;
use jarvis_store::{IntegrityCheck, Store, StoreOptions};
use uuid::Uuid;

fn usage_event(sid: Uuid, i: i64) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        i,
        EventPayload::ResponseUsage {
            response_id: format!("resp_{i:012}"),
            model: "gpt-realtime".into(),
            tokens: TokenCounts {
                input_text: 120,
                input_audio: 900,
                cached_audio: 300,
                output_text: 60,
                output_audio: 1_400,
                ..Default::default()
            },
            cost: CostBreakdown {
                input_audio_nusd: NanoUsd(25_200_000),
                output_audio_nusd: NanoUsd(89_600_000),
                input_text_nusd: NanoUsd(480_000),
                output_text_nusd: NanoUsd(960_000),
                transcription_nusd: NanoUsd::ZERO,
            },
            raw_usage: serde_json::json!({
                "total_tokens": 2480, "input_tokens": 1020, "output_tokens": 1460,
                "input_token_details": {"text_tokens": 120, "audio_tokens": 900,
                    "cached_tokens": 300, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 300}},
                "output_token_details": {"text_tokens": 60, "audio_tokens": 1400}
            }),
        },
    )
}

fn options(path: PathBuf) -> StoreOptions {
    StoreOptions {
        path,
        max_bytes: u64::MAX / 2,
        check: IntegrityCheck::Skip,
        busy_timeout: Duration::from_secs(5),
        pressure_alert_interval_ms: 600_000,
        clock: jarvis_core::clock::wall_ms,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` adds `--bench`; only positional arguments are ours.
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let base = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let check_mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let dir = tempfile::tempdir_in(&base)?;
    let sid = Uuid::now_v7();
    println!(
        "store benchmark in {} (synchronous=FULL, WAL)",
        base.display()
    );
    println!(
        "{:<44} {:>12} {:>10} {:>10}",
        "case", "events/s", "p50", "p99"
    );

    let mut store = Store::open_with(options(dir.path().join("append.db")))?.0;
    let n = 1_000;
    let mut lat = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let s = Instant::now();
        store.append(&usage_event(sid, i as i64))?;
        lat.push(s.elapsed());
    }
    let total = t.elapsed();
    lat.sort();
    println!(
        "{:<44} {:>12.0} {:>10.2?} {:>10.2?}",
        "append, 1 event per commit",
        n as f64 / total.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );

    for batch in [10usize, 100] {
        let batches = 20_000 / batch;
        let t = Instant::now();
        for b in 0..batches {
            let evs: Vec<_> = (0..batch)
                .map(|i| usage_event(sid, (b * batch + i) as i64))
                .collect();
            store.append_batch(&evs)?;
        }
        let total = t.elapsed();
        println!(
            "{:<44} {:>12.0} {:>10} {:>10}",
            format!("append_batch, {batch} events per commit"),
            (batches * batch) as f64 / total.as_secs_f64(),
            "-",
            "-"
        );
    }

    let t = Instant::now();
    let mut drained = 0;
    loop {
        let page = store.pending(500)?;
        if page.is_empty() {
            break;
        }
        let seqs: Vec<i64> = page.iter().map(|e| e.seq).collect();
        drained += store.mark_synced(&seqs)?;
    }
    println!(
        "{:<44} {:>12.0} {:>10} {:>10}",
        "drain: pending(500) + mark_synced (local side)",
        drained as f64 / t.elapsed().as_secs_f64(),
        "-",
        "-"
    );
    drop(store);

    let path = dir.path().join("check.db");
    let mut store = Store::open_with(options(path.clone()))?.0;
    let mut i = 0i64;
    while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("check.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
        < check_mib * 1024 * 1024
    {
        let evs: Vec<_> = (0..1_000).map(|k| usage_event(sid, i + k)).collect();
        store.append_batch(&evs)?;
        i += 1_000;
    }
    drop(store);
    let size = std::fs::metadata(&path)?.len();
    println!();
    println!(
        "open-time check on a {:.0} MiB store ({i} events):",
        size as f64 / 1048576.0
    );
    for check in [IntegrityCheck::Quick, IntegrityCheck::Full] {
        let mut opts = options(path.clone());
        opts.check = check;
        let t = Instant::now();
        let (_store, report) = Store::open_with(opts)?;
        println!(
            "  {:<10} check {:>6} ms, whole open {:>6} ms",
            format!("{check:?}"),
            report.check_ms,
            t.elapsed().as_millis()
        );
    }
    Ok(())
}
