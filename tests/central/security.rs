//! Each denial of the kiosk role, proven against the real server by connecting as that role.

use crate::central_support::{TestDb, sqlstate};
use jarvis_core::events::{EventPayload, KioskEvent, MembershipStatus};
use jarvis_sync::writer::{INSERT_SQL, Writer, encode_batch};
use tokio_postgres::types::Type;
use uuid::Uuid;

fn started(session: Uuid) -> KioskEvent {
    KioskEvent::new(
        Some(session),
        1_700_000_000_000,
        EventPayload::SessionStarted {
            member_id: Some("m1".into()),
            badge_hash: None,
            membership: MembershipStatus::Active,
            model: "gpt-realtime".into(),
        },
    )
}

/// Two kiosks in two gyms, each with one synced session, and one member per gym.
struct Fleet {
    db: TestDb,
    a: crate::central_support::KioskLogin,
    b: crate::central_support::KioskLogin,
    a_session: Uuid,
    b_session: Uuid,
}

async fn fleet(tag: &str) -> Fleet {
    let db = TestDb::migrated(tag);
    let a = db.add_kiosk("ka", "gym_a");
    let b = db.add_kiosk("kb", "gym_b");
    db.psql(
        "INSERT INTO members (member_id, gym_id, badge, first_name, language) VALUES
         ('m_a', 'gym_a', 'BADGE1', 'Alice', 'fr'),
         ('m_b', 'gym_b', 'BADGE2', 'Bruno', 'en')",
    );
    let (a_session, b_session) = (Uuid::now_v7(), Uuid::now_v7());
    for (k, s) in [(&a, a_session), (&b, b_session)] {
        let w = Writer::connect(&db.target(k)).await.unwrap();
        let json = encode_batch(&k.kiosk_id, [(1, &started(s))]).unwrap();
        assert_eq!(w.insert(&json).await.unwrap(), 1);
    }
    Fleet {
        db,
        a,
        b,
        a_session,
        b_session,
    }
}

async fn denied(client: &tokio_postgres::Client, sql: &str) -> String {
    let err = client
        .simple_query(sql)
        .await
        .expect_err(&format!("should be denied: {sql}"));
    sqlstate(&err).unwrap_or_else(|| panic!("no SQLSTATE for {sql}: {err}"))
}

#[tokio::test]
async fn kiosk_cannot_write_events_for_another_kiosk() {
    let f = fleet("sec_other").await;
    let w = Writer::connect(&f.db.target(&f.a)).await.unwrap();
    let json = encode_batch(&f.b.kiosk_id, [(2, &started(Uuid::now_v7()))]).unwrap();
    let err = w.insert(&json).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    assert!(
        err.to_string().contains("row-level security")
            || format!("{err:?}").contains("row-level security")
    );
    let n = f.db.psql(&format!(
        "SELECT count(*) FROM kiosk_events WHERE kiosk_id = '{}'",
        f.b.kiosk_id
    ));
    assert_eq!(n, "1");
}

#[tokio::test]
async fn kiosk_cannot_update_delete_or_truncate_anything() {
    let f = fleet("sec_write").await;
    let c = f.db.kiosk_client(&f.a).await;
    for sql in [
        "UPDATE kiosk_events SET kind = 'alert'",
        "DELETE FROM kiosk_events",
        "TRUNCATE kiosk_events",
        "UPDATE openai_realtime_sessions SET input_audio_tokens_cost_usd = 0",
        "DELETE FROM openai_realtime_sessions",
        "TRUNCATE openai_realtime_sessions",
        "INSERT INTO openai_realtime_sessions (session_id) VALUES (gen_random_uuid())",
        "INSERT INTO kiosk_alerts (event_id, kiosk_id, code, severity, message, occurred_at, received_at) VALUES (gen_random_uuid(), 'x', 'c', 'info', 'm', now(), now())",
        "UPDATE kiosk_alerts SET acknowledged_at = now()",
        "DELETE FROM kiosk_heartbeats",
        "UPDATE kiosks SET gym_id = 'gym_b'",
        "INSERT INTO kiosks (kiosk_id, gym_id) VALUES ('rogue', 'gym_a')",
        "UPDATE members SET first_name = 'x'",
        "DELETE FROM members",
        "TRUNCATE members",
    ] {
        assert_eq!(denied(&c, sql).await, "42501", "{sql}");
    }
    assert_eq!(f.db.psql("SELECT count(*) FROM kiosk_events"), "2");
}

#[tokio::test]
async fn kiosk_cannot_set_the_server_receive_time() {
    let f = fleet("sec_recv").await;
    let c = f.db.kiosk_client(&f.a).await;
    let sql = format!(
        "INSERT INTO kiosk_events (event_id, kiosk_id, seq, kind, occurred_at, payload, received_at)
         VALUES (gen_random_uuid(), '{}', 9, 'alert', now(), '{{\"kind\":\"alert\"}}', now() - interval '1 day')",
        f.a.kiosk_id
    );
    assert_eq!(denied(&c, &sql).await, "42501");
}

#[tokio::test]
async fn kiosk_reads_only_its_own_events_and_sessions() {
    let f = fleet("sec_read").await;
    let c = f.db.kiosk_client(&f.a).await;
    let one = |sql: &'static str| {
        let c = &c;
        async move {
            let rows = c.query_typed(sql, &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        one("SELECT DISTINCT kiosk_id FROM kiosk_events").await,
        vec![f.a.kiosk_id.clone()]
    );
    assert_eq!(
        one("SELECT session_id::text FROM openai_realtime_sessions").await,
        vec![f.a_session.to_string()]
    );
    let other = c
        .query_typed(
            "SELECT count(*) FROM openai_realtime_sessions WHERE session_id = $1::text::uuid",
            &[(&f.b_session.to_string(), Type::TEXT)],
        )
        .await
        .unwrap();
    assert_eq!(other[0].get::<_, i64>(0), 0);
}

#[tokio::test]
async fn kiosk_cannot_read_members_kiosks_or_dashboards() {
    let f = fleet("sec_members").await;
    let c = f.db.kiosk_client(&f.a).await;
    for sql in [
        "SELECT * FROM members",
        "SELECT * FROM kiosks",
        "SELECT * FROM kiosk_heartbeats",
        "SELECT * FROM kiosk_alerts",
        "SELECT * FROM dashboard_active_sessions",
        "SELECT * FROM dashboard_cost_per_gym_day",
        "SELECT * FROM dashboard_cost_per_gym_day_by_api",
        "SELECT * FROM dashboard_mean_duration",
        "SELECT * FROM dashboard_kiosks_not_seen",
        "SELECT * FROM dashboard_open_alerts",
        "SELECT * FROM schema_migrations",
    ] {
        assert_eq!(denied(&c, sql).await, "42501", "{sql}");
    }
}

#[tokio::test]
async fn member_lookup_returns_one_member_of_the_own_gym_only() {
    let f = fleet("sec_lookup").await;
    let w = Writer::connect(&f.db.target(&f.a)).await.unwrap();
    let alice = w.lookup_member("BADGE1").await.unwrap().unwrap();
    assert_eq!(
        (
            alice.member_id.as_str(),
            alice.first_name.as_str(),
            alice.language.as_str()
        ),
        ("m_a", "Alice", "fr")
    );
    assert_eq!(alice.membership_status, "active");
    // Bruno's badge belongs to gym_b: invisible from gym_a's kiosk.
    assert_eq!(w.lookup_member("BADGE2").await.unwrap(), None);
    // No pattern matching, no list: wildcards and empty badges find nothing.
    for probe in ["%", "BADGE%", "", "' OR true --"] {
        assert_eq!(w.lookup_member(probe).await.unwrap(), None, "{probe}");
    }
    let c = f.db.kiosk_client(&f.a).await;
    let rows = c
        .query_typed("SELECT count(*) FROM kiosk_lookup_member('BADGE1')", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
}

#[tokio::test]
async fn other_roles_cannot_call_the_lookup_and_definer_functions_pin_search_path() {
    let f = fleet("sec_definer").await;
    // Every SECURITY DEFINER function of the schema fixes its search_path.
    let unsafe_fns = f.db.psql(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public' AND p.prosecdef
           AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog%', false)",
    );
    assert_eq!(unsafe_fns, "0");
    let public_can = f.db.psql(
        "SELECT has_function_privilege('public', 'kiosk_lookup_member(text)', 'EXECUTE')::text",
    );
    assert_eq!(public_can, "false");
    let monitoring_can = f.db.psql(
        "SELECT has_function_privilege('monitoring_service', 'kiosk_lookup_member(text)', 'EXECUTE')::text",
    );
    assert_eq!(monitoring_can, "false");
}

#[tokio::test]
async fn events_are_append_only_even_for_the_owner() {
    let f = fleet("sec_append").await;
    let admin = f.db.admin_client().await;
    for sql in [
        "UPDATE kiosk_events SET kind = 'alert'",
        "DELETE FROM kiosk_events",
        "TRUNCATE kiosk_events",
    ] {
        assert_eq!(denied(&admin, sql).await, "42501", "{sql}");
    }
}

#[tokio::test]
async fn the_kiosk_role_is_no_more_than_a_kiosk() {
    let f = fleet("sec_role").await;
    let attrs = f.db.psql(&format!(
        "SELECT rolcanlogin::text || rolsuper::text || rolcreaterole::text || rolcreatedb::text || rolbypassrls::text
         FROM pg_roles WHERE rolname = '{}'",
        f.a.role
    ));
    assert_eq!(attrs, "truefalsefalsefalsefalse");
    let member = f.db.psql(&format!(
        "SELECT pg_has_role('{}', 'kiosk_service', 'MEMBER')::text",
        f.a.role
    ));
    assert_eq!(member, "true");
    // Group roles cannot log in.
    let group_login = f.db.psql(
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('kiosk_service', 'admin_service', 'monitoring_service') AND rolcanlogin",
    );
    assert_eq!(group_login, "0");
    // The insert statement the sync uses works for the kiosk (as proven in fleet()), and
    // the same statement naming another kiosk was refused above: nothing else is granted.
    // `DO NOTHING` without a target covers the event id and the (session, response) of usage.
    assert!(INSERT_SQL.contains("ON CONFLICT DO NOTHING"));
}
