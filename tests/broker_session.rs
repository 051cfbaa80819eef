//! A kiosk with no OpenAI key anywhere: the real daemon, configured with the session broker
//! only (`openai.token_url` + its own token), the real `jarvis-broker` service in front of the
//! emulator acting as OpenAI, and a real Postgres holding the broker's state and audit.

#[path = "broker_support/mod.rs"]
mod broker_support;
#[path = "central_support/mod.rs"]
mod central_support;
mod support;

use std::time::Duration;

use broker_support::{Broker, register};
use central_support::TestDb;
use support::rig::{Emulator, Kiosk, write_config_with};

/// A kiosk whose only OpenAI credential is its broker token.
fn kiosk_behind(
    db: &TestDb,
    token_url: &str,
    emulator: &Emulator,
    extra: &str,
    env: &[(&str, &str)],
) -> Kiosk {
    Kiosk::start_configured(env, |d| {
        let token = d.join("kiosk-token");
        register(db, "kiosk-broker", &token);
        write_config_with(
            d,
            "kiosk-broker",
            &format!(
                "base_url = \"{}\"\ntoken_url = \"{token_url}\"\ntoken_credential_file = \"{}\"\n",
                emulator.base_url,
                token.display()
            ),
            extra,
        );
    })
}

#[test]
fn a_whole_session_through_the_broker_without_any_openai_key_on_the_kiosk() {
    let db = TestDb::migrated("broker_e2e");
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = kiosk_behind(&db, &broker.token_url(), &emulator, "", &[]);
    let config = std::fs::read_to_string(kiosk.config()).unwrap();
    assert!(!config.contains("api_key_file"), "{config}");
    assert!(!kiosk.dir.path().join("openai-key").exists());

    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(
        s.end_reason.as_deref(),
        Some("goodbye"),
        "{s:?}\n{}",
        kiosk.log()
    );
    assert!(s.total_nusd.0 > 0, "{s:?}");
    // The broker minted the key (with the kiosk's session id) and hung the call up.
    let session = s.session_id.to_string();
    support::wait_until("the close row", Duration::from_secs(10), || {
        (db.psql("SELECT count(*) FROM broker_audit WHERE action = 'close'") == "1").then_some(())
    });
    let audit = db.psql(
        "SELECT string_agg(action || ':' || outcome || ':' || kiosk_id || ':' || \
         coalesce(kiosk_session_id::text, '-'), ',' ORDER BY audit_id) FROM broker_audit",
    );
    assert_eq!(
        audit,
        format!("mint:ok:kiosk-broker:{session},close:ok:kiosk-broker:-")
    );
    let call = &emulator.calls()[0];
    let closed = db.psql("SELECT openai_session_id FROM broker_audit WHERE action = 'close'");
    assert_eq!(closed, call.call_id, "the call hung up is the one answered");
}

#[test]
fn a_disabled_kiosk_hears_it_is_unavailable_and_records_why() {
    let db = TestDb::migrated("broker_e2e_disabled");
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = kiosk_behind(
        &db,
        &broker.token_url(),
        &emulator,
        "[session]\ncooldown_s = 1\n",
        &[],
    );
    db.psql("UPDATE kiosks SET disabled_at = now() WHERE kiosk_id = 'kiosk-broker'");
    kiosk.scanner.scan("0012345678");
    support::wait_until("a refusal", Duration::from_secs(20), || {
        (!kiosk.refusals().is_empty()).then_some(())
    });
    assert_eq!(kiosk.refusals(), ["broker_kiosk_disabled"]);
    // The breaker stayed closed: the broker answered, the fleet said no.
    let status = kiosk.status().unwrap();
    assert_eq!(
        status["health"]["gauges"]["breaker"]["state"], "closed",
        "{status}"
    );
    assert_eq!(emulator.calls().len(), 0, "no call without a key");
    assert_eq!(db.psql("SELECT reason FROM broker_audit"), "kiosk_disabled");
}

#[test]
fn the_broker_down_opens_the_kiosk_breaker() {
    let db = TestDb::migrated("broker_e2e_down");
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let port = central_support::free_port();
    let token_url = format!("http://127.0.0.1:{port}/v1/realtime/client_secrets");
    let kiosk = kiosk_behind(
        &db,
        &token_url,
        &emulator,
        "[session]\ncooldown_s = 1\n",
        &[
            ("JARVIS_KIOSK__OPENAI__BREAKER_FAILURES", "1"),
            ("JARVIS_KIOSK__OPENAI__BREAKER_OPEN_S", "600"),
        ],
    );
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(20));
    assert_eq!(s.end_reason.as_deref(), Some("connect_failed"), "{s:?}");
    support::wait_until("lifecycle degraded", Duration::from_secs(10), || {
        (kiosk.status()?["health"]["lifecycle"] == "degraded").then_some(())
    });
    kiosk.scanner.scan("0099999999");
    support::wait_until("a refusal", Duration::from_secs(10), || {
        (!kiosk.refusals().is_empty()).then_some(())
    });
    assert_eq!(kiosk.refusals(), ["breaker_open"]);
    let log = kiosk.stop();
    assert!(log.contains("connect error"), "the cause is named:\n{log}");
}
