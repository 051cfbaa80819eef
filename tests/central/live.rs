//! GPT-Live sessions centrally (0011_live_sessions.sql) against the real server: the voice
//! figure kept whatever the arrival order (a closed figure, then the end's, then the largest
//! report), delegated responses summed once, the total, the views and the daily rollup.

use std::collections::BTreeMap;

use crate::central_support::{KioskLogin, TestDb, sqlstate};
use jarvis_core::events::{
    CostBreakdown, EndReason, EventPayload, KioskEvent, LiveTotals, MembershipStatus, TokenCounts,
};
use jarvis_core::metering::{DelegationUsage, LiveSeconds, Pricing, price_live};
use jarvis_core::money::NanoUsd;
use jarvis_sync::writer::{Writer, encode_batch};
use uuid::Uuid;

const T0: i64 = 1_763_700_000_000;

fn pricing() -> Pricing {
    Pricing::from_config(&BTreeMap::new()).unwrap()
}

fn started(session: Uuid, at: i64, model: &str) -> KioskEvent {
    KioskEvent::new(
        Some(session),
        at,
        EventPayload::SessionStarted {
            member_id: Some("m7".into()),
            badge_hash: None,
            membership: MembershipStatus::Active,
            model: model.into(),
        },
    )
}

/// A `live_usage` priced as the kiosk prices it (gpt-live-1: $0.05 a minute, per second).
fn live_usage(session: Uuid, at: i64, seconds: u64, closed: bool) -> KioskEvent {
    let rates = pricing().live_rates("gpt-live-1").unwrap();
    let priced = price_live("gpt-live-1", &rates, LiveSeconds::Total(seconds)).unwrap();
    KioskEvent::new(
        Some(session),
        at,
        EventPayload::LiveUsage {
            model: "gpt-live-1".into(),
            seconds,
            billed_seconds: priced.billed_seconds,
            voice_nusd: priced.cost,
            upper_bound: priced.upper_bound,
            closed,
            charged_nusd: NanoUsd::ZERO,
            raw_usage: serde_json::json!({ "seconds": seconds }),
        },
    )
}

/// A delegated response priced as gpt-5-mini text tokens.
fn delegation(session: Uuid, at: i64, n: u32, usage: DelegationUsage) -> KioskEvent {
    let priced = pricing().price_delegation("gpt-5-mini", &usage).unwrap();
    KioskEvent::new(
        Some(session),
        at,
        EventPayload::DelegationUsage {
            response_id: format!("resp_deleg_{n}"),
            model: "gpt-5-mini".into(),
            tokens: priced.tokens,
            cost_nusd: priced.cost.total(),
            raw_usage: serde_json::json!({ "input_tokens": usage.input_tokens }),
        },
    )
}

fn ended(session: Uuid, at: i64, duration_ms: u64, live: LiveTotals) -> KioskEvent {
    KioskEvent::new(
        Some(session),
        at,
        EventPayload::SessionEnded {
            reason: EndReason::Goodbye,
            duration_ms,
            tokens: TokenCounts::default(),
            cost: CostBreakdown::default(),
            detail: None,
            live: Some(live),
        },
    )
}

/// $0.000855: 1,000 uncached input ($0.25/M), 200 cached ($0.025/M), 300 output ($2/M).
const DELEGATION_1: DelegationUsage = DelegationUsage {
    input_tokens: 1_200,
    cached_tokens: 200,
    output_tokens: 300,
};
/// $0.0015: 2,000 input, 500 output.
const DELEGATION_2: DelegationUsage = DelegationUsage {
    input_tokens: 2_000,
    cached_tokens: 0,
    output_tokens: 500,
};

/// A session closed by the server: reports of 30 s and 60 s, a late 100 s report, the close
/// at 88 s, two delegated responses, and an end whose figure (90 s) the close outranks.
fn closed_session(session: Uuid) -> Vec<KioskEvent> {
    vec![
        started(session, T0, "gpt-live-1"),
        KioskEvent::new(
            Some(session),
            T0 + 900,
            EventPayload::SessionConnected { connect_ms: 900 },
        ),
        live_usage(session, T0 + 31_000, 30, false),
        delegation(session, T0 + 40_000, 1, DELEGATION_1),
        live_usage(session, T0 + 61_000, 60, false),
        delegation(session, T0 + 70_000, 2, DELEGATION_2),
        live_usage(session, T0 + 89_000, 88, true),
        live_usage(session, T0 + 89_500, 100, false),
        ended(
            session,
            T0 + 90_000,
            90_000,
            LiveTotals {
                billed_seconds: 90,
                voice_nusd: NanoUsd(75_000_000),
                delegation_nusd: NanoUsd(2_355_000),
                upper_bound: false,
                estimated: false,
                charged_nusd: NanoUsd::ZERO,
            },
        ),
    ]
}

/// A session that ended without session.closed: reports of 30 s and 60 s, one delegated
/// response, and the kiosk's end estimate of 76 s.
fn estimated_session(session: Uuid) -> Vec<KioskEvent> {
    vec![
        started(session, T0, "gpt-live-1"),
        live_usage(session, T0 + 31_000, 30, false),
        live_usage(session, T0 + 61_000, 60, false),
        delegation(session, T0 + 65_000, 1, DELEGATION_1),
        ended(
            session,
            T0 + 75_500,
            75_500,
            LiveTotals {
                billed_seconds: 76,
                voice_nusd: NanoUsd(63_333_333),
                delegation_nusd: NanoUsd(855_000),
                upper_bound: false,
                estimated: true,
                charged_nusd: NanoUsd(13_333_333),
            },
        ),
    ]
}

/// `concat_ws` skips NULLs: the one nullable column here is spelled out.
const LIVE_COLUMNS: &str = "api, model, member_id, coalesce(connect_ms::text, 'none'), end_reason, duration_ms, \
    billed_seconds, duration_cost_usd, delegation_cost_usd, delegation_count, \
    cost_is_upper_bound, cost_is_estimated, total_cost_usd, reported_total_cost_usd, \
    input_audio_tokens_cost_usd, output_audio_tokens_cost_usd, input_text_tokens_cost_usd, \
    output_text_tokens_cost_usd, transcription_cost_usd, response_count, event_count, \
    session_started_at, ended_at, live_voice_figure";

fn row(db: &TestDb, session: Uuid) -> String {
    db.psql(&format!(
        "SELECT concat_ws('|', {LIVE_COLUMNS}) FROM openai_realtime_sessions WHERE session_id = '{session}'"
    ))
}

/// The same small xorshift every run: the orders are reproducible.
struct Orders(u64);

impl Orders {
    fn next(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }

    /// Indices 0..n shuffled, cut into batches at random points.
    fn batches(&mut self, n: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, self.next(i + 1));
        }
        let mut batches = vec![Vec::new()];
        for i in order {
            if !batches.last().unwrap().is_empty() && self.next(3) == 0 {
                batches.push(Vec::new());
            }
            batches.last_mut().unwrap().push(i);
        }
        batches
    }
}

/// Inserts a fresh session built by `build` in each of `orders` (then replays it whole) and
/// returns each session's row.
async fn rows_in_orders(
    db: &TestDb,
    k: &KioskLogin,
    build: fn(Uuid) -> Vec<KioskEvent>,
    orders: &[Vec<Vec<usize>>],
) -> Vec<String> {
    let w = Writer::connect(&db.target(k)).await.unwrap();
    let mut rows = Vec::new();
    for order in orders {
        let session = Uuid::now_v7();
        let events = build(session);
        let seq_of = |i: usize| i as i64 + 1;
        for part in order {
            let json =
                encode_batch(&k.kiosk_id, part.iter().map(|&i| (seq_of(i), &events[i]))).unwrap();
            assert_eq!(w.insert(&json).await.unwrap(), part.len() as u64);
        }
        let all = encode_batch(
            &k.kiosk_id,
            events.iter().enumerate().map(|(i, e)| (seq_of(i), e)),
        )
        .unwrap();
        assert_eq!(w.insert(&all).await.unwrap(), 0, "a replay inserts nothing");
        rows.push(row(db, session));
    }
    rows
}

/// As recorded, reversed, one event per statement in reverse, and 30 seeded shuffles cut into
/// batches at random points.
fn orders(n: usize) -> Vec<Vec<Vec<usize>>> {
    let mut all = vec![
        vec![(0..n).collect()],
        vec![(0..n).rev().collect()],
        (0..n).rev().map(|i| vec![i]).collect(),
    ];
    let mut rng = Orders(0x9e37_79b9_7f4a_7c15);
    all.extend((0..30).map(|_| rng.batches(n)));
    all
}

#[tokio::test]
async fn a_closed_live_session_gives_one_row_in_every_arrival_order() {
    let db = TestDb::migrated("live_closed");
    let k = db.add_kiosk("kl", "gym_l");
    let rows = rows_in_orders(&db, &k, closed_session, &orders(9)).await;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r, &rows[0], "order {i}");
    }
    let f: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(
        &f[..6],
        ["live", "gpt-live-1", "m7", "900", "goodbye", "90000"]
    );
    // The close's 88 s at $0.05/min = $0.073333333 outranks the end's 90 s and the late 100 s
    // report; the delegations are $0.000855 + $0.0015.
    assert_eq!(
        &f[6..14],
        [
            "88",
            "0.073333333",
            "0.002355000",
            "2",
            "f",
            "f",
            "0.075688333",
            // The kiosk's own end figure (90 s + delegations), kept apart to reconcile.
            "0.077355000"
        ]
    );
    assert_eq!(
        &f[14..21],
        [
            "0.000000000",
            "0.000000000",
            "0.000000000",
            "0.000000000",
            "0.000000000",
            "0",
            "9"
        ]
    );
    assert_eq!(f[23], "{2,73333333,88,0,0}");
    assert_eq!(
        db.psql("SELECT count(*) FROM kiosk_events"),
        (9 * orders(9).len()).to_string()
    );
}

#[tokio::test]
async fn a_live_session_ended_without_close_keeps_the_kiosk_estimate_in_every_order() {
    let db = TestDb::migrated("live_estimated");
    let k = db.add_kiosk("ke", "gym_e");
    let rows = rows_in_orders(&db, &k, estimated_session, &orders(5)).await;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r, &rows[0], "order {i}");
    }
    let f: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(
        &f[..6],
        ["live", "gpt-live-1", "m7", "none", "goodbye", "75500"]
    );
    // The end's 76 s estimate ($0.063333333) outranks the 60 s report ($0.05).
    assert_eq!(
        &f[6..14],
        [
            "76",
            "0.063333333",
            "0.000855000",
            "1",
            "f",
            "t",
            "0.064188333",
            "0.064188333"
        ]
    );
}

#[tokio::test]
async fn before_the_end_the_largest_report_counts_and_a_realtime_session_is_unchanged() {
    let db = TestDb::migrated("live_partial");
    let k = db.add_kiosk("kp", "gym_p");
    let w = Writer::connect(&db.target(&k)).await.unwrap();
    let live = Uuid::now_v7();
    // A report older than the largest arrives last: the 60 s figure stays.
    let events = [
        live_usage(live, T0 + 61_000, 60, false),
        started(live, T0, "gpt-live-1"),
        live_usage(live, T0 + 31_000, 30, false),
    ];
    for (i, e) in events.iter().enumerate() {
        w.insert(&encode_batch(&k.kiosk_id, [(i as i64 + 1, e)]).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(
        db.psql(&format!(
            "SELECT concat_ws('|', api, billed_seconds, duration_cost_usd, cost_is_estimated, total_cost_usd)
             FROM openai_realtime_sessions WHERE session_id = '{live}'"
        )),
        "live|60|0.050000000|f|0.050000000"
    );
    // A start with a gpt-live model alone marks the session live (a connect that failed).
    let failed = Uuid::now_v7();
    w.insert(&encode_batch(&k.kiosk_id, [(10, &started(failed, T0, "gpt-live-1.1"))]).unwrap())
        .await
        .unwrap();
    assert_eq!(
        db.psql(&format!(
            "SELECT api || '|' || total_cost_usd FROM openai_realtime_sessions WHERE session_id = '{failed}'"
        )),
        "live|0.000000000"
    );

    // A Realtime session: token costs as before, nothing of GPT-Live.
    let rt = Uuid::now_v7();
    let usage = KioskEvent::new(
        Some(rt),
        T0 + 2_000,
        EventPayload::ResponseUsage {
            response_id: "resp_rt".into(),
            model: "gpt-realtime".into(),
            tokens: TokenCounts {
                input_audio: 100,
                output_audio: 50,
                ..Default::default()
            },
            cost: CostBreakdown {
                input_audio_nusd: NanoUsd(3_200_000),
                output_audio_nusd: NanoUsd(3_200_000),
                ..Default::default()
            },
            raw_usage: serde_json::json!({}),
        },
    );
    let end = KioskEvent::new(
        Some(rt),
        T0 + 9_000,
        EventPayload::SessionEnded {
            reason: EndReason::IdleTimeout,
            duration_ms: 9_000,
            tokens: TokenCounts::default(),
            cost: CostBreakdown {
                input_audio_nusd: NanoUsd(3_200_000),
                output_audio_nusd: NanoUsd(3_200_000),
                ..Default::default()
            },
            detail: None,
            live: None,
        },
    );
    let rt_events = [started(rt, T0, "gpt-realtime"), usage, end];
    w.insert(
        &encode_batch(
            &k.kiosk_id,
            rt_events
                .iter()
                .enumerate()
                .map(|(i, e)| (i as i64 + 20, e)),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        db.psql(&format!(
            "SELECT concat_ws('|', api, coalesce(billed_seconds::text, 'null'), duration_cost_usd,
                              delegation_cost_usd, delegation_count, cost_is_estimated,
                              coalesce(live_voice_figure::text, 'null'), input_audio_tokens_cost_usd,
                              total_cost_usd, reported_total_cost_usd, response_count)
             FROM openai_realtime_sessions WHERE session_id = '{rt}'"
        )),
        "realtime|null|0.000000000|0.000000000|0|f|null|0.003200000|0.006400000|0.006400000|1"
    );
}

#[tokio::test]
async fn malformed_live_money_is_refused_not_mispriced() {
    let db = TestDb::migrated("live_bad");
    let k = db.add_kiosk("kb", "gym_b");
    let c = db.admin_client().await;
    let session = Uuid::now_v7();
    for (kind, payload, state) in [
        (
            "live_usage",
            r#"{"kind":"live_usage","voice_nusd":1.5,"billed_seconds":15,"closed":false}"#,
            "22P02",
        ),
        (
            "delegation_usage",
            r#"{"kind":"delegation_usage","cost_nusd":"twelve"}"#,
            "22P02",
        ),
        (
            "delegation_usage",
            r#"{"kind":"delegation_usage","cost_nusd":18446744073709551615}"#,
            "22003",
        ),
    ] {
        let err = c
            .simple_query(&format!(
                "INSERT INTO kiosk_events (event_id, kiosk_id, session_id, seq, kind, occurred_at, payload)
                 VALUES (gen_random_uuid(), '{}', '{session}', 1, '{kind}', now(), '{payload}')",
                k.kiosk_id
            ))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some(state), "{payload}: {err}");
    }
    assert_eq!(
        db.psql("SELECT count(*) FROM openai_realtime_sessions"),
        "0"
    );
}

/// What `session_days` must hold: the sessions recounted.
const RECOUNT_SQL: &str = "\
SELECT coalesce(string_agg(concat_ws('/', gym_id, day, sessions, ended, cost_usd, live_sessions, billed_seconds), ',' ORDER BY gym_id, day), '')
FROM (SELECT s.gym_id, (coalesce(s.session_started_at, s.first_event_at) AT TIME ZONE 'UTC')::date AS day,
             count(*) AS sessions, count(s.ended_at) AS ended, sum(s.total_cost_usd) AS cost_usd,
             count(*) FILTER (WHERE s.api = 'live') AS live_sessions,
             coalesce(sum(s.billed_seconds), 0) AS billed_seconds
      FROM openai_realtime_sessions s GROUP BY 1, 2) r";

const ROLLUP_SQL: &str = "\
SELECT coalesce(string_agg(concat_ws('/', gym_id, day, sessions, ended, cost_usd, live_sessions, billed_seconds), ',' ORDER BY gym_id, day), '')
FROM session_days WHERE sessions <> 0";

#[tokio::test]
async fn the_rollup_and_views_agree_with_a_recount_across_the_migration() {
    let db = TestDb::empty("live_rollup");
    db.migrate(&["--until", "0010"]);
    let k = db.add_kiosk("kr", "gym_r");
    let w = Writer::connect(&db.target(&k)).await.unwrap();
    // A Realtime session derived and rolled up before 0011.
    let before = Uuid::now_v7();
    let usage = KioskEvent::new(
        Some(before),
        T0 + 1_000,
        EventPayload::ResponseUsage {
            response_id: "resp_before".into(),
            model: "gpt-realtime".into(),
            tokens: TokenCounts::default(),
            cost: CostBreakdown {
                output_audio_nusd: NanoUsd(1_000_000),
                ..Default::default()
            },
            raw_usage: serde_json::json!({}),
        },
    );
    w.insert(
        &encode_batch(
            &k.kiosk_id,
            [(1, &started(before, T0, "gpt-realtime")), (2, &usage)],
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let rolled_before =
        db.psql("SELECT concat_ws('/', gym_id, day, sessions, ended, cost_usd) FROM session_days");
    assert_eq!(rolled_before, "gym_r/2025-11-21/1/0/0.001000000");

    db.migrate(&[]);
    assert_eq!(db.psql(ROLLUP_SQL), "gym_r/2025-11-21/1/0/0.001000000/0/0");
    // The row from before keeps its total under the re-added generated column.
    assert_eq!(
        db.psql(&format!(
            "SELECT total_cost_usd || '|' || api FROM openai_realtime_sessions WHERE session_id = '{before}'"
        )),
        "0.001000000|realtime"
    );

    // Live sessions and the Realtime one's end, in mixed batches.
    let closed = closed_session(Uuid::now_v7());
    let estimated = estimated_session(Uuid::now_v7());
    let end_before = KioskEvent::new(
        Some(before),
        T0 + 5_000,
        EventPayload::SessionEnded {
            reason: EndReason::Goodbye,
            duration_ms: 5_000,
            tokens: TokenCounts::default(),
            cost: CostBreakdown {
                output_audio_nusd: NanoUsd(1_000_000),
                ..Default::default()
            },
            detail: None,
            live: None,
        },
    );
    let mut all: Vec<&KioskEvent> = closed.iter().chain(&estimated).collect();
    all.push(&end_before);
    for (n, chunk) in all.chunks(4).rev().enumerate() {
        let json = encode_batch(
            &k.kiosk_id,
            chunk
                .iter()
                .enumerate()
                .map(|(i, e)| ((n * 10 + i) as i64 + 10, *e)),
        )
        .unwrap();
        w.insert(&json).await.unwrap();
    }

    // 0.001 + (0.073333333 + 0.002355) + (0.063333333 + 0.000855); 88 + 76 s.
    assert_eq!(
        db.psql(ROLLUP_SQL),
        "gym_r/2025-11-21/3/3/0.140876666/2/164"
    );
    assert_eq!(db.psql(ROLLUP_SQL), db.psql(RECOUNT_SQL));
    assert_eq!(
        db.psql("SELECT sessions || '/' || total_cost_usd FROM dashboard_cost_per_gym_day"),
        "3/0.140876666"
    );
    assert_eq!(
        db.psql(
            "SELECT string_agg(concat_ws('/', api, sessions, billed_seconds, token_cost_usd,
                                         duration_cost_usd, delegation_cost_usd, total_cost_usd,
                                         estimated_sessions, upper_bound_sessions), ',' ORDER BY api)
             FROM dashboard_cost_per_gym_day_by_api"
        ),
        "live/2/164/0.000000000/0.136666666/0.003210000/0.139876666/1/0,\
         realtime/1/0/0.001000000/0.000000000/0.000000000/0.001000000/0/0"
    );

    // Re-applying the file recounts to the same figures.
    let out = std::process::Command::new("psql")
        .args([db.url.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(crate::central_support::repo().join("sql/central/0011_live_sessions.sql"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.psql(ROLLUP_SQL),
        "gym_r/2025-11-21/3/3/0.140876666/2/164"
    );
}
