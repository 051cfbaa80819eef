//! Load: 500 simulated kiosks minting against one broker, with a loopback upstream that
//! answers at once, and a migrated Postgres holding 500 kiosks, 50 gyms and 20 sessions per
//! kiosk today. Prints a table: the latency a kiosk sees through the broker against the same
//! upstream asked directly (the difference is what the broker adds), at a paced 200 mints/s
//! and with all 500 kiosks minting as fast as they can; then the plans of the two queries a
//! mint runs.
//!
//! `cargo bench -p jarvis-broker --bench mint_load` (needs the local Postgres, DATABASE_URL).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use serde_json::json;

use support::{Broker, TestDb, config};

const KIOSKS: usize = 500;
const GYMS: usize = 50;
const PACED_RATE: u32 = 200;
const PACED_FOR: Duration = Duration::from_secs(10);
const FLOOD_FOR: Duration = Duration::from_secs(10);

/// A stand-in for OpenAI that answers a client secret at once.
async fn loopback_upstream() -> String {
    let app = Router::new().route(
        "/v1/realtime/client_secrets",
        post(|| async {
            axum::Json(json!({"value": "ek_bench", "expires_at": 1,
                              "session": {"id": "sess_bench", "model": "gpt-realtime"}}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Run {
    label: String,
    ok: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn row(&mut self) -> String {
        self.latencies.sort();
        format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            self.label,
            self.ok,
            self.failed,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            percentile(&self.latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1e3,
            self.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
        )
    }
}

async fn one(client: &reqwest::Client, url: &str, token: Option<&str>) -> (bool, Duration) {
    let started = Instant::now();
    let mut req = client
        .post(url)
        .json(&json!({"session": {"type": "realtime"}}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let ok = match req.send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    };
    (ok, started.elapsed())
}

/// `rate` requests a second for `period`, kiosks taken in turn (open loop).
async fn paced(
    label: &str,
    url: &str,
    tokens: &Arc<Vec<String>>,
    use_tokens: bool,
    rate: u32,
    period: Duration,
) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(KIOSKS)
        .build()
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < period {
        tick.tick().await;
        let (client, url, tokens) = (client.clone(), url.to_owned(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let token = use_tokens.then(|| tokens[n % tokens.len()].as_str());
            one(&client, &url, token).await
        }));
        n += 1;
    }
    collect(label, started, tasks).await
}

/// Every kiosk minting in a loop for `period` (closed loop): the throughput ceiling.
async fn flood(label: &str, url: &str, tokens: &Arc<Vec<String>>, period: Duration) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(KIOSKS)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..KIOSKS {
        let (client, url, tokens) = (client.clone(), url.to_owned(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while started.elapsed() < period {
                out.push(one(&client, &url, Some(&tokens[k])).await);
            }
            out
        }));
    }
    let mut run = Run {
        label: label.into(),
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for t in tasks {
        for (ok, d) in t.await.unwrap() {
            if ok {
                run.ok += 1;
                run.latencies.push(d);
            } else {
                run.failed += 1;
            }
        }
    }
    run.elapsed = started.elapsed();
    run
}

async fn collect(
    label: &str,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<(bool, Duration)>>,
) -> Run {
    let mut run = Run {
        label: label.into(),
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (ok, d) = t.await.unwrap();
        if ok {
            run.ok += 1;
            run.latencies.push(d);
        } else {
            run.failed += 1;
        }
    }
    run.elapsed = started.elapsed();
    run
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = TestDb::migrated("bench");
        db.psql(&format!(
            "INSERT INTO kiosks (kiosk_id, gym_id) SELECT 'k' || i, 'g' || (i % {GYMS}) \
             FROM generate_series(1, {KIOSKS}) i"
        ));
        db.psql(
            "INSERT INTO openai_realtime_sessions (session_id, session_started_at, kiosk_id, gym_id, \
             output_audio_tokens_cost_usd) SELECT gen_random_uuid(), now() - (j || ' minutes')::interval / 100, \
             k.kiosk_id, k.gym_id, 0.01 FROM kiosks k, generate_series(1, 20) j",
        );
        db.psql("ANALYZE");
        let upstream = loopback_upstream().await;
        let mut cfg = config(&db, &upstream);
        cfg.central.pool_size = 8;
        cfg.limits.sessions_per_minute = 1_000_000;
        cfg.limits.kiosk_daily_budget_usd = jarvis_core::money::UsdAmount("1000".parse().unwrap());
        cfg.limits.gym_daily_budget_usd = jarvis_core::money::UsdAmount("100000".parse().unwrap());
        cfg.audit.retention_days = 0;
        let broker = Broker::start(cfg).await;
        let mut tokens = Vec::new();
        for k in 1..=KIOSKS {
            tokens.push(broker.token(&format!("k{k}")).await);
        }
        let tokens = Arc::new(tokens);
        let direct = format!("{upstream}/realtime/client_secrets");
        let through = broker.token_url();
        // Warm the connection pools of both paths.
        paced("warm-up", &through, &tokens, true, 100, Duration::from_secs(2)).await;

        let mut runs = vec![
            paced(
                &format!("upstream directly, {PACED_RATE}/s"),
                &direct,
                &tokens,
                false,
                PACED_RATE,
                PACED_FOR,
            )
            .await,
            paced(
                &format!("through the broker, {PACED_RATE}/s, {KIOSKS} kiosks in turn"),
                &through,
                &tokens,
                true,
                PACED_RATE,
                PACED_FOR,
            )
            .await,
            flood(
                &format!("through the broker, {KIOSKS} kiosks minting at once"),
                &through,
                &tokens,
                FLOOD_FOR,
            )
            .await,
        ];
        println!("\n| run | ok | failed | mints/s | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|---|---|");
        for r in &mut runs {
            println!("{}", r.row());
        }
        let (d50, d99) = (
            percentile(&runs[0].latencies, 0.5),
            percentile(&runs[0].latencies, 0.99),
        );
        let (b50, b99) = (
            percentile(&runs[1].latencies, 0.5),
            percentile(&runs[1].latencies, 0.99),
        );
        println!(
            "\nadded by the broker at {PACED_RATE}/s: p50 {:.2} ms, p99 {:.2} ms (target p99 <= 20 ms)",
            b50.saturating_sub(d50).as_secs_f64() * 1e3,
            b99.saturating_sub(d99).as_secs_f64() * 1e3
        );
        let audited = db.psql("SELECT count(*) FROM broker_audit");
        println!("audit rows written: {audited}");

        println!("\nEXPLAIN ANALYZE of the standing query (one per mint):");
        let hash = db.psql("SELECT encode(token_hash, 'hex') FROM broker_kiosk_tokens LIMIT 1");
        let standing = jarvis_broker::db::STANDING_SQL
            .replace("$1", &format!("'\\x{hash}'::bytea"))
            .replace("$2", "'UTC'");
        println!(
            "{}",
            db.psql(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {standing}"))
        );
        println!("\nEXPLAIN of the audit insert (the other query per mint):");
        let insert = jarvis_broker::db::AUDIT_SQL
            .replace("$10", "NULL")
            .replace("$11", "'sess_x'")
            .replace("$1,", "'bench',")
            .replace("$2,", "'k1',")
            .replace("$3,", "'g1',")
            .replace("$4,", "'mint',")
            .replace("$5,", "'ok',")
            .replace("$6,", "NULL,")
            .replace("$7,", "200,")
            .replace("$8,", "1,")
            .replace("$9,", "1,");
        println!(
            "{}",
            db.psql(&format!("EXPLAIN (COSTS OFF) {insert}"))
        );
    });
}
