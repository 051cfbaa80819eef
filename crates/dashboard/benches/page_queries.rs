//! The page's queries at fleet scale: 2,000 kiosks (200 gyms) with a day of heartbeats at one a
//! minute (2.88 M rows) and 30 days of them in the daily rollup, 30 days of sessions (10 per
//! kiosk and day: 600,000, inserted in time order as kiosks sync them, the rollup trigger
//! keeping `session_days`), 20,000 alerts, in a fresh central database migrated by the real
//! script. Each statement of the page runs as the dashboard would (all gyms, and one gym),
//! warm, 7 times; the median must be under 100 ms. The plan of each (`EXPLAIN ANALYZE`) is
//! printed with the indexes it uses.
//!
//! `cargo bench -p jarvis-dashboard --bench page_queries` (DATABASE_URL: a superuser URL of a
//! Postgres server; trust auth by default).

use std::process::Command;
use std::time::{Duration, Instant};

use jarvis_dashboard::queries::{
    ALERTS_SQL, CONNECT_P95_SQL, COST_PER_DAY_SQL, END_REASONS_SQL, KIOSKS_SQL,
    SESSIONS_PER_HOUR_SQL, SLA_SQL, UPTIME_SQL,
};
use tokio_postgres::types::ToSql;

const BUDGET: Duration = Duration::from_millis(100);

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn db_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.split('?').next().unwrap_or(&admin);
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}")
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const FLEET_SQL: &str = "
INSERT INTO kiosks (kiosk_id, gym_id, created_at)
SELECT format('k%s', i), format('gym-%s', i % 200), now() - interval '90 days'
FROM generate_series(1, 2000) i;

-- The last 24 hours at one heartbeat a minute; the two oldest of the fleet's kiosks are silent.
INSERT INTO kiosk_heartbeats (event_id, kiosk_id, occurred_at, received_at, version, uptime_s,
                              outbox_backlog, outbox_oldest_age_s, health)
SELECT gen_random_uuid(), format('k%s', k), t, t, '0.1.0', 3600, (k % 7), (k % 7) * 3,
       '{}'::jsonb
FROM generate_series(3, 2000) k,
     generate_series(now() - interval '24 hours', now(), interval '1 minute') t
ORDER BY t;
-- The 29 days before, as the rollup trigger keeps them (a kiosk down now and then).
INSERT INTO kiosk_heartbeat_days (kiosk_id, day, beats)
SELECT format('k%s', k), d::date, CASE WHEN (k + extract(day FROM d)::int) % 23 = 0 THEN 1300 ELSE 1440 END
FROM generate_series(1, 2000) k,
     generate_series((now() AT TIME ZONE 'UTC')::date - 29, (now() AT TIME ZONE 'UTC')::date - 2, interval '1 day') d
ON CONFLICT (kiosk_id, day) DO NOTHING;

-- 30 days of sessions, 10 per kiosk and day between 06:00 and 22:00, in the order they
-- happen (as kiosks sync them); 50 live now.
INSERT INTO openai_realtime_sessions (session_id, kiosk_id, gym_id, session_started_at,
    connected_at, connect_ms, ended_at, end_reason, duration_ms, model,
    input_audio_tokens_cost_usd, output_audio_tokens_cost_usd, first_event_at, last_event_at)
SELECT gen_random_uuid(), format('k%s', k), format('gym-%s', k % 200), st,
       st + interval '400 ms', 300 + (k * n) % 500,
       st + interval '3 minutes', (ARRAY['goodbye', 'idle_timeout', 'max_duration', 'error'])[1 + (k + n) % 4],
       180000, 'gpt-realtime', 0.01 * (1 + n % 5), 0.02 * (1 + k % 3), st, st + interval '3 minutes'
FROM generate_series(1, 2000) k, generate_series(0, 29) d, generate_series(1, 10) n,
     LATERAL (SELECT date_trunc('day', now()) - make_interval(days => d) + interval '6 hours'
                     + make_interval(mins => ((k * 7 + n * 97) % 960)) AS st) s
WHERE st < now()
ORDER BY st;
INSERT INTO openai_realtime_sessions (session_id, kiosk_id, gym_id, session_started_at, connected_at, connect_ms, model)
SELECT gen_random_uuid(), format('k%s', k), format('gym-%s', k % 200), now() - interval '1 minute',
       now() - interval '59 seconds', 350, 'gpt-realtime'
FROM generate_series(100, 149) k;

INSERT INTO kiosk_alerts (event_id, kiosk_id, code, severity, message, occurred_at, received_at)
SELECT gen_random_uuid(), format('k%s', 1 + i % 2000), 'buffer_pressure', 'warning', 'outbox 80% full',
       now() - make_interval(mins => i * 2), now() - make_interval(mins => i * 2)
FROM generate_series(1, 20000) i;
ANALYZE;
";

struct Query {
    name: &'static str,
    sql: &'static str,
    days: bool,
}

/// Drops the bench database on the way out, panics included.
struct DropDb(String);

impl Drop for DropDb {
    fn drop(&mut self) {
        psql(
            &admin_url(),
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0),
        );
        psql(
            &admin_url(),
            &format!("DROP ROLE IF EXISTS \"{}_role\"", self.0),
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let name = format!("dash_bench_{}", std::process::id());
    psql(&admin_url(), &format!("CREATE DATABASE \"{name}\""));
    let guard = DropDb(name.clone());
    let outcome = run(&name).await;
    drop(guard);
    if let Err(failures) = outcome {
        eprintln!("over {} ms: {}", BUDGET.as_millis(), failures.join(", "));
        std::process::exit(1);
    }
}

async fn run(name: &str) -> Result<(), Vec<String>> {
    let url = &db_url(name);
    let out = Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/central-migrate.sh"),
    )
    .arg(format!("{url}?sslmode=disable"))
    .output()
    .expect("central-migrate.sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    psql(url, FLEET_SQL);
    println!("fleet generated in {:.1} s", t.elapsed().as_secs_f64());

    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // The dashboard's own role: plans and timings with its privileges and row-level security.
    client
        .batch_execute(
            &format!("CREATE ROLE \"{name}_role\" NOLOGIN IN ROLE dashboard_service; SET ROLE \"{name}_role\""),
        )
        .await
        .expect("role");
    for (label, n) in [
        ("kiosks", "kiosks"),
        ("heartbeats", "kiosk_heartbeats"),
        ("heartbeat days", "kiosk_heartbeat_days"),
        ("sessions", "openai_realtime_sessions"),
        ("alerts", "kiosk_alerts"),
    ] {
        let row = client
            .query_one(&format!("SELECT count(*) FROM {n}"), &[])
            .await
            .expect("count");
        println!("{label}: {}", row.get::<_, i64>(0));
    }

    let queries = [
        Query {
            name: "kiosks",
            sql: KIOSKS_SQL,
            days: false,
        },
        Query {
            name: "alerts",
            sql: ALERTS_SQL,
            days: false,
        },
        Query {
            name: "sla",
            sql: SLA_SQL,
            days: true,
        },
        Query {
            name: "connect_p95",
            sql: CONNECT_P95_SQL,
            days: false,
        },
        Query {
            name: "end_reasons",
            sql: END_REASONS_SQL,
            days: true,
        },
        Query {
            name: "uptime",
            sql: UPTIME_SQL,
            days: true,
        },
        Query {
            name: "cost_per_day",
            sql: COST_PER_DAY_SQL,
            days: true,
        },
        Query {
            name: "sessions_per_hour",
            sql: SESSIONS_PER_HOUR_SQL,
            days: false,
        },
    ];
    let tz = "UTC".to_owned();
    let beats: i32 = 1440;
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for gyms in [None, Some(vec!["gym-7".to_owned()])] {
        let scope = if gyms.is_some() {
            "one gym"
        } else {
            "all gyms"
        };
        for q in &queries {
            let periods: &[i32] = if q.days { &[1, 7, 30] } else { &[0] };
            for &days in periods {
                let params: Vec<&(dyn ToSql + Sync)> = match q.name {
                    "kiosks" => vec![&gyms, &tz],
                    "alerts" | "sessions_per_hour" | "connect_p95" => vec![&gyms],
                    "uptime" => vec![&gyms, &days, &beats],
                    _ => vec![&gyms, &days],
                };
                // Unnamed statements, as the dashboard sends them: planned with the values.
                client.query(q.sql, &params).await.expect("warm-up");
                let mut times = Vec::new();
                for _ in 0..7 {
                    let t = Instant::now();
                    client.query(q.sql, &params).await.expect("query");
                    times.push(t.elapsed());
                }
                times.sort();
                let median = times[times.len() / 2];
                let label = if q.days {
                    format!("{} ({scope}, {days} d)", q.name)
                } else {
                    format!("{} ({scope})", q.name)
                };
                table.push(format!(
                    "{label:<36} median {:>6.1} ms  max {:>6.1} ms",
                    median.as_secs_f64() * 1e3,
                    times[times.len() - 1].as_secs_f64() * 1e3
                ));
                if median > BUDGET {
                    failures.push(label.clone());
                }
                if gyms.is_none() && (days == 0 || days == 30) {
                    let plan = client
                        .query(
                            &format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", q.sql),
                            &params,
                        )
                        .await
                        .expect("explain");
                    let lines: Vec<String> = plan.iter().map(|r| r.get::<_, String>(0)).collect();
                    let mut indexes: Vec<&str> = lines
                        .iter()
                        .filter_map(|l| l.split(" using ").nth(1))
                        .filter_map(|rest| rest.split_whitespace().next())
                        .collect();
                    indexes.sort_unstable();
                    indexes.dedup();
                    println!("\n=== {label}: indexes {indexes:?}\n{}", lines.join("\n"));
                }
            }
        }
    }
    println!("\n{}", table.join("\n"));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
