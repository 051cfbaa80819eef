//! The central schema against the real server: migrations, the kiosk script, and the
//! derived rows in any arrival order.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::central_support::{TestDb, repo, sqlstate};
use jarvis_core::events::{
    CostBreakdown, EndReason, EventPayload, KioskEvent, MembershipStatus, Severity, TokenCounts,
};
use jarvis_core::money::NanoUsd;
use jarvis_sync::writer::{Writer, encode_batch};
use uuid::Uuid;

#[test]
fn migrations_apply_once_and_every_file_is_idempotent() {
    let db = TestDb::empty("mig");
    let first = db.migrate(&[]);
    assert!(first.lines().all(|l| l.ends_with(": applied")), "{first}");
    let second = db.migrate(&[]);
    assert!(
        second.lines().all(|l| l.ends_with(": already applied")),
        "{second}"
    );
    let files = std::fs::read_dir(repo().join("sql/central"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    assert_eq!(
        db.psql("SELECT count(*) FROM schema_migrations"),
        files.to_string()
    );
    // Re-running any file by hand changes nothing and fails nothing.
    let mut paths: Vec<_> = std::fs::read_dir(repo().join("sql/central"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    for p in paths {
        let out = Command::new("psql")
            .args([db.url.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn migrate_until_stops_and_a_later_run_completes() {
    let db = TestDb::empty("mig_until");
    let out = db.migrate(&["--until", "0002"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(db.psql("SELECT to_regclass('kiosk_events') IS NULL"), "t");
    db.migrate(&[]);
    assert_eq!(db.psql("SELECT to_regclass('kiosk_events') IS NULL"), "f");
}

#[test]
fn a_failing_migration_leaves_nothing_applied() {
    let db = TestDb::empty("mig_fail");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_ok.sql"), "CREATE TABLE t1 (x int);").unwrap();
    std::fs::write(
        dir.path().join("0002_bad.sql"),
        "CREATE TABLE t2 (x int); SELECT no_such_column FROM t1;",
    )
    .unwrap();
    let out = Command::new(repo().join("scripts/central-migrate.sh"))
        .env("CENTRAL_SQL_DIR", dir.path())
        .arg(&db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0002_bad.sql failed"));
    assert_eq!(
        db.psql("SELECT string_agg(version, ',') FROM schema_migrations"),
        "0001"
    );
    assert_eq!(db.psql("SELECT to_regclass('t2') IS NULL"), "t");
}

#[test]
fn add_kiosk_writes_a_private_password_and_prints_the_url_last() {
    let db = TestDb::migrated("addk");
    let k = db.add_kiosk("Lyon.01", "gym_lyon");
    let mode = std::fs::metadata(&k.password_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(k.password.len() >= 32);
    assert!(
        k.url.starts_with(&format!("postgres://{}@", k.role)),
        "{}",
        k.url
    );
    assert!(!k.url.contains(&k.password));
    assert!(k.url.contains(&format!("/{}", db.name)));
    // Re-running keeps the password (an installed kiosk keeps working) and the gym.
    let again = db.add_kiosk_id(&k.kiosk_id, "", &[]);
    assert_eq!(again.password, k.password);
    assert_eq!(again.role, k.role);
    assert_eq!(
        db.psql(&format!(
            "SELECT gym_id FROM kiosks WHERE kiosk_id = '{}'",
            k.kiosk_id
        )),
        "gym_lyon"
    );
    // --rotate replaces it.
    let rotated = db.add_kiosk_id(&k.kiosk_id, "", &["--rotate"]);
    assert_ne!(rotated.password, k.password);
}

#[test]
fn add_kiosk_refuses_bad_input_with_a_reason() {
    let db = TestDb::migrated("addk_bad");
    let run = |args: &[&str]| {
        let out = Command::new(repo().join("scripts/central-add-kiosk.sh"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let pw = db.dir.path().join("pw");
    let pw = pw.to_str().unwrap();
    let (ok, err) = run(&["--password-file", pw, &db.url, "new-kiosk"]);
    assert!(!ok && err.contains("GYM_ID is required"), "{err}");
    let (ok, err) = run(&["--password-file", pw, &db.url, "bad id!", "g"]);
    assert!(!ok && err.contains("invalid KIOSK_ID"), "{err}");
    let (ok, err) = run(&[&db.url, "k", "g"]);
    assert!(!ok && err.contains("usage"), "{err}");
    let empty = TestDb::empty("addk_nomig");
    let (ok, err) = run(&["--password-file", pw, &empty.url, "k1", "g"]);
    assert!(!ok && err.contains("central-migrate.sh"), "{err}");
    assert!(
        !std::path::Path::new(pw).exists(),
        "no password file left behind"
    );
}

fn usage(session: Uuid, at: i64, n: u64) -> KioskEvent {
    KioskEvent::new(
        Some(session),
        at,
        EventPayload::ResponseUsage {
            response_id: format!("resp_{n}"),
            model: "gpt-realtime".into(),
            tokens: TokenCounts {
                input_text: 10 * n,
                input_audio: 100 * n,
                cached_audio: 20 * n,
                output_text: 5 * n,
                output_audio: 50 * n,
                ..Default::default()
            },
            cost: CostBreakdown {
                input_audio_nusd: NanoUsd(3_200_001 * n),
                output_audio_nusd: NanoUsd(3_200_000 * n),
                input_text_nusd: NanoUsd(40_000 * n),
                output_text_nusd: NanoUsd(80_000 * n + 1),
                transcription_nusd: NanoUsd(0),
            },
            raw_usage: serde_json::json!({"total_tokens": 165 * n}),
        },
    )
}

/// A whole session: start, connect, three responses, one transcription, end.
fn session_events(session: Uuid) -> Vec<KioskEvent> {
    let t = 1_763_700_000_000;
    let transcription = KioskEvent::new(
        Some(session),
        t + 4_000,
        EventPayload::TranscriptionUsage {
            item_id: "item_1".into(),
            model: "gpt-4o-mini-transcribe".into(),
            cost: CostBreakdown {
                transcription_nusd: NanoUsd(7),
                ..Default::default()
            },
            raw_usage: serde_json::json!({}),
        },
    );
    let ended = KioskEvent::new(
        Some(session),
        t + 65_000,
        EventPayload::SessionEnded {
            reason: EndReason::Goodbye,
            duration_ms: 65_000,
            tokens: TokenCounts::default(),
            cost: CostBreakdown {
                input_audio_nusd: NanoUsd(19_200_006),
                output_audio_nusd: NanoUsd(19_200_000),
                input_text_nusd: NanoUsd(240_000),
                output_text_nusd: NanoUsd(480_003),
                transcription_nusd: NanoUsd(7),
            },
            detail: None,
            live: None,
        },
    );
    vec![
        KioskEvent::new(
            Some(session),
            t,
            EventPayload::SessionStarted {
                member_id: Some("m1".into()),
                badge_hash: None,
                membership: MembershipStatus::Active,
                model: "gpt-realtime".into(),
            },
        ),
        KioskEvent::new(
            Some(session),
            t + 800,
            EventPayload::SessionConnected { connect_ms: 800 },
        ),
        usage(session, t + 2_000, 1),
        usage(session, t + 3_000, 2),
        transcription,
        usage(session, t + 5_000, 3),
        ended,
    ]
}

const SESSION_COLUMNS: &str = "kiosk_id, gym_id, member_id, model, session_started_at, \
    connect_ms, ended_at, end_reason, duration_ms, input_text_tokens, input_audio_tokens, \
    cached_audio_tokens, output_text_tokens, output_audio_tokens, input_audio_tokens_cost_usd, \
    output_audio_tokens_cost_usd, input_text_tokens_cost_usd, output_text_tokens_cost_usd, \
    transcription_cost_usd, total_cost_usd, reported_total_cost_usd, response_count, event_count";

#[tokio::test]
async fn session_row_is_the_same_in_any_arrival_order_and_never_double_counts() {
    let db = TestDb::migrated("derive");
    let k = db.add_kiosk("kd", "gym_d");
    let w = Writer::connect(&db.target(&k)).await.unwrap();
    // Orders: as recorded, reversed, usage first, end first, and one event per statement
    // in a shuffled order; each followed by a full duplicate replay.
    let orders: Vec<Vec<Vec<usize>>> = vec![
        vec![(0..7).collect()],
        vec![(0..7).rev().collect()],
        vec![vec![2, 3, 5], vec![4], vec![0, 1, 6]],
        vec![vec![6], vec![5, 4], vec![3, 2, 1, 0]],
        vec![
            vec![3],
            vec![6],
            vec![0],
            vec![5],
            vec![1],
            vec![4],
            vec![2],
        ],
    ];
    let mut rows = Vec::new();
    for order in orders {
        let session = Uuid::now_v7();
        let events = session_events(session);
        let seq_of = |i: usize| i as i64 + 1;
        for part in &order {
            let json =
                encode_batch(&k.kiosk_id, part.iter().map(|&i| (seq_of(i), &events[i]))).unwrap();
            assert_eq!(w.insert(&json).await.unwrap(), part.len() as u64);
        }
        let all = encode_batch(
            &k.kiosk_id,
            events.iter().enumerate().map(|(i, e)| (seq_of(i), e)),
        )
        .unwrap();
        assert_eq!(w.insert(&all).await.unwrap(), 0, "replay inserts nothing");
        rows.push(db.psql(&format!(
            "SELECT concat_ws('|', {SESSION_COLUMNS}) FROM openai_realtime_sessions WHERE session_id = '{session}'"
        )));
    }
    for r in &rows[1..] {
        assert_eq!(r, &rows[0]);
    }
    let fields: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(fields[1], "gym_d");
    assert_eq!(fields[2], "m1");
    assert_eq!(fields[3], "gpt-realtime");
    assert_eq!(fields[5], "800");
    assert_eq!(fields[7], "goodbye");
    assert_eq!(fields[8], "65000");
    assert_eq!(&fields[9..14], ["60", "600", "120", "30", "300"]);
    // Exact sums of the integer nano-USD fields: 3_200_001 * 6 = 19_200_006 n$, etc.
    assert_eq!(
        &fields[14..21],
        [
            "0.019200006",
            "0.019200000",
            "0.000240000",
            "0.000480003",
            "0.000000007",
            "0.039120016",
            "0.039120016"
        ]
    );
    assert_eq!(&fields[21..], ["3", "7"]);
    assert_eq!(db.psql("SELECT count(*) FROM kiosk_events"), "35");
}

#[tokio::test]
async fn malformed_money_is_refused_not_mispriced() {
    let db = TestDb::migrated("derive_bad");
    let k = db.add_kiosk("kx", "gym_x");
    let w = Writer::connect(&db.target(&k)).await.unwrap();
    let session = Uuid::now_v7();
    // Fractional and overflowing nano-dollars are data errors (22xxx).
    let mut ev = usage(session, 1, 1);
    if let EventPayload::ResponseUsage { cost, .. } = &mut ev.payload {
        cost.output_audio_nusd = NanoUsd(u64::MAX);
    }
    let err = w
        .insert(&encode_batch(&k.kiosk_id, [(1, &ev)]).unwrap())
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22003"), "{err}");
    let c = db.admin_client().await;
    let err = c
        .simple_query(&format!(
            "INSERT INTO kiosk_events (event_id, kiosk_id, session_id, seq, kind, occurred_at, payload)
             VALUES (gen_random_uuid(), '{}', '{session}', 2, 'response_usage', now(),
                     '{{\"kind\":\"response_usage\",\"cost\":{{\"input_audio_nusd\":1.5}}}}')",
            k.kiosk_id
        ))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22P02"), "{err}");
    assert_eq!(
        db.psql("SELECT count(*) FROM openai_realtime_sessions"),
        "0"
    );
}

#[tokio::test]
async fn another_kiosks_events_cannot_touch_a_session() {
    let db = TestDb::migrated("derive_steal");
    let a = db.add_kiosk("ka", "gym_a");
    let b = db.add_kiosk("kb", "gym_b");
    let session = Uuid::now_v7();
    let events = session_events(session);
    let wa = Writer::connect(&db.target(&a)).await.unwrap();
    wa.insert(&encode_batch(&a.kiosk_id, [(1, &events[0]), (2, &events[2])]).unwrap())
        .await
        .unwrap();
    let before = db.psql(&format!(
        "SELECT total_cost_usd FROM openai_realtime_sessions WHERE session_id = '{session}'"
    ));
    let wb = Writer::connect(&db.target(&b)).await.unwrap();
    wb.insert(&encode_batch(&b.kiosk_id, [(1, &events[3])]).unwrap())
        .await
        .unwrap();
    let after = db.psql(&format!(
        "SELECT total_cost_usd || '|' || kiosk_id FROM openai_realtime_sessions WHERE session_id = '{session}'"
    ));
    assert_eq!(after, format!("{before}|{}", a.kiosk_id));
}

#[tokio::test]
async fn heartbeats_alerts_and_dashboards() {
    let db = TestDb::migrated("views");
    let k = db.add_kiosk("kv", "gym_v");
    let silent = db.add_kiosk("ks", "gym_v");
    let w = Writer::connect(&db.target(&k)).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let live = Uuid::now_v7();
    let done = Uuid::now_v7();
    let mut events = vec![
        KioskEvent::new(
            None,
            now,
            EventPayload::Heartbeat {
                health: serde_json::json!({"version": "0.1.0", "uptime_s": 42, "outbox_backlog": 3,
                    "outbox_oldest_age_s": 7, "free_disk_bytes": 1_000_000, "breaker": "closed"}),
            },
        ),
        KioskEvent::new(
            None,
            now,
            EventPayload::Alert {
                code: "sync_dead_letter".into(),
                severity: Severity::Warning,
                message: "event refused".into(),
            },
        ),
    ];
    let mut live_events = session_events(live);
    live_events.truncate(3);
    for e in &mut live_events {
        e.occurred_at_ms = now;
    }
    events.extend(live_events);
    events.extend(session_events(done));
    let json = encode_batch(
        &k.kiosk_id,
        events.iter().enumerate().map(|(i, e)| (i as i64 + 1, e)),
    )
    .unwrap();
    w.insert(&json).await.unwrap();

    assert_eq!(
        db.psql("SELECT version || uptime_s || '/' || outbox_backlog || '/' || breaker FROM kiosk_heartbeats"),
        "0.1.042/3/closed"
    );
    assert_eq!(
        db.psql("SELECT code || '/' || severity || '/' || kiosk_id FROM dashboard_open_alerts"),
        format!("sync_dead_letter/warning/{}", k.kiosk_id)
    );
    assert_eq!(
        db.psql(&format!(
            "SELECT active_sessions FROM dashboard_active_sessions WHERE kiosk_id = '{}'",
            k.kiosk_id
        )),
        "1"
    );
    assert_eq!(
        db.psql("SELECT sessions || '/' || total_cost_usd FROM dashboard_cost_per_gym_day WHERE gym_id = 'gym_v' AND day = '2025-11-21'"),
        "1/0.039120016"
    );
    assert_eq!(
        db.psql("SELECT ended_sessions || '/' || mean_duration_s FROM dashboard_mean_duration WHERE gym_id = 'gym_v'"),
        "1/65.0"
    );
    assert_eq!(
        db.psql("SELECT string_agg(kiosk_id, ',') FROM dashboard_kiosks_not_seen"),
        silent.kiosk_id
    );
    // Acknowledged alerts leave the open list.
    db.psql("UPDATE kiosk_alerts SET acknowledged_at = now(), acknowledged_by = 'ops'");
    assert_eq!(db.psql("SELECT count(*) FROM dashboard_open_alerts"), "0");
}
