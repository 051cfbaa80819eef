//! The broker over HTTP with real parts: a migrated Postgres, the emulator acting as OpenAI,
//! brokers on loopback ports, requests shaped as the kiosk's token client sends them.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Broker, TestDb, config, emulator};

/// What the kiosk's `credentials::mint` posts.
fn kiosk_request() -> Value {
    json!({
        "expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {"type": "realtime", "model": "gpt-4o-mini-realtime-preview",
                    "instructions": "Bonjour Alice", "audio": {"output": {"voice": "alloy"}}}
    })
}

async fn mint(broker: &Broker, token: Option<&str>, session: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(broker.token_url())
        .header("x-jarvis-session-id", session)
        .json(&kiosk_request());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn error_code(resp: reqwest::Response) -> (StatusCode, Option<String>, String) {
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    (
        status,
        retry,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

const SESSION: &str = "0190f5c2-6d3e-7a10-8000-000000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mints_with_the_fleet_policy_and_audits_it() {
    let db = TestDb::migrated("mint");
    db.add_kiosk("k1", "g1");
    let emu = emulator(&[]).await;
    let mut cfg = config(&db, &emu.base_url());
    cfg.session.voice = "cedar".into();
    let broker = Broker::start(cfg).await;
    let token = broker.token("k1").await;

    let resp = mint(&broker, Some(&token), SESSION).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let key: Value = resp.json().await.unwrap();
    assert!(key["value"].as_str().unwrap().starts_with("ek_"), "{key}");
    assert_eq!(key["session"]["model"], "gpt-realtime", "the fleet's model");
    assert_eq!(key["session"]["audio"]["output"]["voice"], "cedar");
    assert_eq!(key["session"]["instructions"], "Bonjour Alice");
    assert_eq!(emu.stats().secrets_issued, 1);

    let row = db.psql(
        "SELECT kiosk_id, gym_id, action, outcome, http_status, kiosk_session_id, \
         openai_session_id, broker, latency_ms >= 0, upstream_ms >= 0 FROM broker_audit",
    );
    assert_eq!(
        row,
        format!("k1|g1|mint|ok|200|{SESSION}|sess_EMU000001|test|t|t")
    );
    // Only a hash of the token is stored.
    let stored = db.psql("SELECT encode(token_hash, 'hex') FROM broker_kiosk_tokens");
    assert!(
        !stored.contains(&token[4..]) && stored.len() == 64,
        "{stored}"
    );

    let metrics = reqwest::get(broker.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jarvis_broker_requests_total{action=\"mint\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
    let health = reqwest::get(broker.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_unknown_disabled_over_budget_and_too_fast_kiosks() {
    let db = TestDb::migrated("refuse");
    for (k, g) in [("k1", "g1"), ("k2", "g1"), ("k3", "g2"), ("k4", "g3")] {
        db.add_kiosk(k, g);
    }
    let emu = emulator(&[]).await;
    let mut cfg = config(&db, &emu.base_url());
    cfg.limits.kiosk_daily_budget_usd = jarvis_core::money::UsdAmount("1.00".parse().unwrap());
    cfg.limits.gym_daily_budget_usd = jarvis_core::money::UsdAmount("1.50".parse().unwrap());
    cfg.limits.sessions_per_minute = 2;
    let broker = Broker::start(cfg).await;

    // No token, an unknown token: 401, audited without a kiosk.
    let (status, _, code) = error_code(mint(&broker, None, SESSION).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "kiosk_token_invalid")
    );
    let (status, _, _) = error_code(mint(&broker, Some("jkt_forged"), SESSION).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Disabled: 403 until enabled again.
    let t1 = broker.token("k1").await;
    broker.app.central.set_disabled("k1", true).await.unwrap();
    let (status, _, code) = error_code(mint(&broker, Some(&t1), SESSION).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "kiosk_disabled")
    );
    broker.app.central.set_disabled("k1", false).await.unwrap();
    assert_eq!(
        mint(&broker, Some(&t1), SESSION).await.status(),
        StatusCode::OK
    );

    // The kiosk's own budget: 429 until the next budget day.
    db.spent("k1", "g1", "1.00");
    let (status, retry, code) = error_code(mint(&broker, Some(&t1), SESSION).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "kiosk_budget_exhausted")
    );
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");

    // Its gym's budget: k2 spent nothing, but g1 spent 1.50 in all.
    let t2 = broker.token("k2").await;
    assert_eq!(
        mint(&broker, Some(&t2), SESSION).await.status(),
        StatusCode::OK
    );
    db.spent("k2", "g1", "0.50");
    let (_, _, code) = error_code(mint(&broker, Some(&t2), SESSION).await).await;
    assert_eq!(code, "gym_budget_exhausted");

    // Rate: two per minute, the third waits for the oldest to leave the window.
    let t3 = broker.token("k3").await;
    for _ in 0..2 {
        assert_eq!(
            mint(&broker, Some(&t3), SESSION).await.status(),
            StatusCode::OK
        );
    }
    let (status, retry, code) = error_code(mint(&broker, Some(&t3), SESSION).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "kiosk_rate_limited")
    );
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another kiosk is not limited by k3's rate.
    let t4 = broker.token("k4").await;
    assert_eq!(
        mint(&broker, Some(&t4), SESSION).await.status(),
        StatusCode::OK
    );

    let refusals = db.psql(
        "SELECT coalesce(kiosk_id, '-') || ':' || reason || ':' || http_status FROM broker_audit \
         WHERE outcome = 'refused' ORDER BY audit_id",
    );
    assert_eq!(
        refusals.lines().collect::<Vec<_>>(),
        [
            "-:kiosk_token_invalid:401",
            "-:kiosk_token_invalid:401",
            "k1:kiosk_disabled:403",
            "k1:kiosk_budget_exhausted:429",
            "k2:gym_budget_exhausted:429",
            "k3:kiosk_rate_limited:429",
        ]
    );
    // Five keys minted upstream, no more.
    assert_eq!(emu.stats().secrets_issued, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_the_old_token_for_the_overlap_window() {
    let db = TestDb::migrated("rotate");
    db.add_kiosk("k1", "g1");
    let emu = emulator(&[]).await;
    let broker = Broker::start(config(&db, &emu.base_url())).await;
    let central = &broker.app.central;
    let old = broker.token("k1").await;
    let new = central
        .issue_token("k1", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_ne!(old, new);
    for t in [&old, &new] {
        assert_eq!(
            mint(&broker, Some(t), SESSION).await.status(),
            StatusCode::OK
        );
    }
    // A rotation with no overlap left ends every earlier token.
    let newest = central
        .issue_token("k1", Some(Duration::ZERO))
        .await
        .unwrap();
    for t in [&old, &new] {
        let (status, _, code) = error_code(mint(&broker, Some(t), SESSION).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "kiosk_token_expired")
        );
    }
    assert_eq!(
        mint(&broker, Some(&newest), SESSION).await.status(),
        StatusCode::OK
    );
    // Tokens for a kiosk that is not registered are refused with the fix.
    let err = central.issue_token("nope", None).await.unwrap_err();
    assert!(err.to_string().contains("central-add-kiosk.sh"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_errors_pass_through_as_they_came() {
    let db = TestDb::migrated("upstream");
    db.add_kiosk("k1", "g1");
    for (fault, want, retry) in [
        ("http-status=401", 401, None),
        ("http-status=429", 429, Some("7")),
        ("http-status=500", 500, None),
        ("http-status=503", 503, Some("7")),
    ] {
        let faults: &[&str] = match retry {
            Some(_) => &[fault, "retry-after=7"],
            None => &[fault],
        };
        let emu = emulator(faults).await;
        let broker = Broker::start(config(&db, &emu.base_url())).await;
        let token = broker.token("k1").await;
        let resp = mint(&broker, Some(&token), SESSION).await;
        assert_eq!(resp.status().as_u16(), want, "{fault}");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry,
            "{fault}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"].is_string(),
            "OpenAI's envelope: {body}"
        );
    }
    let outcomes = db.psql(
        "SELECT string_agg(outcome || ':' || http_status, ',' ORDER BY audit_id) FROM broker_audit",
    );
    assert_eq!(
        outcomes,
        "upstream_error:401,upstream_error:429,upstream_error:500,upstream_error:503"
    );

    // OpenAI unreachable: 502, audited.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let broker = Broker::start(config(&db, &url)).await;
    let token = broker.token("k1").await;
    let (status, _, code) = error_code(mint(&broker, Some(&token), SESSION).await).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (502, "upstream_unreachable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_share_kiosks_tokens_and_rate() {
    let db = TestDb::migrated("two");
    db.add_kiosk("k1", "g1");
    let emu = emulator(&[]).await;
    let mut cfg = config(&db, &emu.base_url());
    cfg.limits.sessions_per_minute = 3;
    let mut a_cfg = cfg.clone();
    a_cfg.broker.instance = Some("broker-a".into());
    let mut b_cfg = cfg;
    b_cfg.broker.instance = Some("broker-b".into());
    let a = Broker::start(a_cfg).await;
    let b = Broker::start(b_cfg).await;
    // Issued through one, valid at both.
    let token = a.token("k1").await;
    for broker in [&a, &b, &a] {
        assert_eq!(
            mint(broker, Some(&token), SESSION).await.status(),
            StatusCode::OK
        );
    }
    // The rate is the kiosk's across the fleet, not per instance.
    let (status, _, code) = error_code(mint(&b, Some(&token), SESSION).await).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (429, "kiosk_rate_limited")
    );
    assert_eq!(
        db.psql(
            "SELECT string_agg(broker || ':' || outcome, ',' ORDER BY audit_id) FROM broker_audit"
        ),
        "broker-a:ok,broker-b:ok,broker-a:ok,broker-b:refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_down_fails_closed() {
    let db = TestDb::migrated("down");
    let emu = emulator(&[]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(&db, &emu.base_url());
    cfg.central.url = format!(
        "postgres://postgres@{}/postgres?sslmode=disable",
        dead.local_addr().unwrap()
    );
    drop(dead);
    let broker = Broker::start(cfg).await;
    let (status, retry, code) = error_code(mint(&broker, Some("jkt_x"), SESSION).await).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (503, "central_unavailable")
    );
    assert_eq!(retry.as_deref(), Some("5"));
    let health = reqwest::get(broker.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(emu.stats().secrets_issued, 0, "no key without the checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hangup_goes_through_with_the_org_key() {
    let db = TestDb::migrated("hangup");
    db.add_kiosk("k1", "g1");
    let emu = emulator(&[]).await;
    let broker = Broker::start(config(&db, &emu.base_url())).await;
    let token = broker.token("k1").await;
    let client = reqwest::Client::new();
    // No such call at OpenAI: its 404 comes back, audited as a close.
    let resp = client
        .post(broker.url("/v1/realtime/calls/rtc_unknown/hangup"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Without a kiosk token: refused before OpenAI is asked.
    let resp = client
        .post(broker.url("/v1/realtime/calls/rtc_unknown/hangup"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        db.psql("SELECT string_agg(action || ':' || outcome || ':' || coalesce(openai_session_id, '-'), ',' ORDER BY audit_id) FROM broker_audit"),
        "close:upstream_error:rtc_unknown,close:refused:-"
    );
    assert_eq!(emu.stats().hangups, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosks_cannot_touch_the_broker_tables_and_operators_can_read_the_audit() {
    let db = TestDb::migrated("grants");
    let check = |role: &str, sql: &str| -> bool {
        let url = db.url.clone();
        let out = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("SET ROLE {role}; {sql}"),
            ])
            .output()
            .unwrap();
        out.status.success()
    };
    for sql in [
        "SELECT * FROM broker_audit",
        "INSERT INTO broker_audit (broker, action, outcome, http_status, latency_ms) VALUES ('x', 'mint', 'ok', 200, 1)",
        "SELECT * FROM broker_kiosk_tokens",
        "DELETE FROM broker_audit",
    ] {
        assert!(!check("kiosk_service", sql), "kiosk_service may: {sql}");
    }
    for role in ["admin_service", "monitoring_service"] {
        assert!(check(role, "SELECT count(*) FROM broker_audit"), "{role}");
        assert!(
            !check(
                role,
                "INSERT INTO broker_audit (broker, action, outcome, http_status, latency_ms) VALUES ('x', 'mint', 'ok', 200, 1)"
            ),
            "{role} may write the audit"
        );
    }
    assert!(!check(
        "monitoring_service",
        "SELECT * FROM broker_kiosk_tokens"
    ));
    assert!(check(
        "broker_service",
        "INSERT INTO broker_audit (broker, action, outcome, http_status, latency_ms) VALUES ('x', 'mint', 'ok', 200, 1)"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_retention_deletes_only_old_rows() {
    let db = TestDb::migrated("retention");
    let emu = emulator(&[]).await;
    let broker = Broker::start(config(&db, &emu.base_url())).await;
    db.psql(
        "INSERT INTO broker_audit (at, broker, action, outcome, http_status, latency_ms) VALUES \
         (now() - interval '91 days', 'x', 'mint', 'ok', 200, 1), \
         (now() - interval '89 days', 'x', 'mint', 'ok', 200, 1)",
    );
    assert_eq!(broker.app.central.prune_audit(90).await.unwrap(), 1);
    assert_eq!(db.psql("SELECT count(*) FROM broker_audit"), "1");
}
