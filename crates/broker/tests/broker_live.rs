//! The GPT-Live relay with real parts: a migrated Postgres, the emulator's Live endpoint
//! acting as OpenAI, a broker on a loopback port, and the kiosk's own str0m peer posting its
//! offer through the broker and talking to the emulator over the session it gets back.

mod support;

use std::time::Duration;

use jarvis_realtime::live::{CreateRequest, SessionPolicy};
use jarvis_realtime::peer::{Peer, PeerEvent, PeerEvents, PeerOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::timeout;

use support::{Broker, TestDb, config, live_emulator};

const SESSION: &str = "0190f5c2-6d3e-7a10-8000-0000000000aa";

/// What a Live kiosk posts: the kiosk's own create request (`jarvis_realtime::live`), its offer
/// unmodified, asking for more delegation output than the fleet allows.
fn request(offer: &str) -> Value {
    let policy = SessionPolicy {
        model: "gpt-live-1".into(),
        voice: "alloy".into(),
        instructions: "Tu es JARVIS. Le membre s'appelle Alice.".into(),
        delegation_model: "gpt-5".into(),
        delegation_instructions: "Appelle end_session quand le membre dit au revoir.".into(),
    };
    let mut body = serde_json::to_value(CreateRequest::new(&policy, offer)).unwrap();
    body["session"]["delegation"]["responses"]["max_output_tokens"] = json!(4000);
    body
}

async fn post(broker: &Broker, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(broker.url("/v1/live/sessions"))
        .header("x-jarvis-session-id", SESSION)
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn hang_up(broker: &Broker, token: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(broker.url(&format!("/v1/live/sessions/{id}/hangup")))
        .bearer_auth(token)
        .header("x-jarvis-session-id", SESSION)
        .send()
        .await
        .unwrap()
}

fn offer() -> String {
    Peer::offer(PeerOptions::loopback_only()).unwrap().1
}

/// Waits for the first event of `kind`; panics if the peer closes first.
async fn next(events: &mut PeerEvents, kind: &str) -> Value {
    timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await.expect("peer events ended") {
                PeerEvent::Message(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == kind {
                        return v;
                    }
                }
                PeerEvent::Closed { reason } => panic!("closed before {kind}: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind}"))
}

async fn error(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, retry, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_session_works_end_to_end_under_the_fleet_policy() {
    let db = TestDb::migrated("live_relay");
    db.add_kiosk("k1", "g1");
    db.add_kiosk("k2", "g1");
    let emu = live_emulator(&[]).await;
    let mut cfg = config(&db, &emu.base_url());
    cfg.live.model = "gpt-live-1.1".into();
    cfg.live.voice = "cedar".into();
    cfg.live.delegation_model = "gpt-5-mini".into();
    cfg.live.delegation_max_output_tokens = Some(500);
    let broker = Broker::start(cfg).await;
    let token = broker.token("k1").await;

    // The kiosk's offer goes through the broker; the answer comes back as OpenAI's.
    let (pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let resp = post(&broker, Some(&token), &request(&offer)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    let id = body["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, "live_EMU000001");
    let (peer, mut events) = pending
        .accept(body["transport"]["sdp"].as_str().unwrap())
        .unwrap();

    // A working session, with the fleet's model, voice and delegation model.
    let started = next(&mut events, "session.started").await;
    let s = &started["session"];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["model"], "gpt-live-1.1");
    assert_eq!(s["audio"]["output"]["voice"], "cedar");
    assert_eq!(s["store"], false);
    assert_eq!(
        s["instructions"],
        "Tu es JARVIS. Le membre s'appelle Alice."
    );
    let responses = &s["delegation"]["responses"];
    assert_eq!(responses["model"], "gpt-5-mini");
    assert_eq!(responses["max_output_tokens"], 500);
    assert_eq!(responses["tools"][0]["name"], "end_session");
    peer.send_event(r#"{"type":"session.close"}"#.into())
        .unwrap();
    let closed = next(&mut events, "session.closed").await;
    assert_eq!(closed["reason"], "close_requested");

    // A second session, ended through the broker: only by the kiosk it was relayed for.
    let (pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let body: Value = post(&broker, Some(&token), &request(&offer))
        .await
        .json()
        .await
        .unwrap();
    let second = body["session"]["id"].as_str().unwrap().to_owned();
    let (_peer, mut events) = pending
        .accept(body["transport"]["sdp"].as_str().unwrap())
        .unwrap();
    next(&mut events, "session.started").await;
    let other = broker.token("k2").await;
    let (status, _, code) = error(hang_up(&broker, &other, &second).await).await;
    assert_eq!((status, code.as_str()), (404, "live_session_unknown"));
    assert_eq!(
        hang_up(&broker, &token, &second).await.status(),
        StatusCode::OK
    );
    let closed = next(&mut events, "session.closed").await;
    assert_eq!(closed["reason"], "close_requested");
    assert_eq!(emu.stats().hangups, 1);

    assert_eq!(
        db.psql(
            "SELECT string_agg(concat_ws(':', kiosk_id, action, outcome, http_status, \
             coalesce(openai_session_id, '-'), coalesce(reason, '-'), kiosk_session_id), ',' \
             ORDER BY audit_id) FROM broker_audit"
        ),
        [
            format!("k1:relay:ok:201:{id}:-:{SESSION}"),
            format!("k1:relay:ok:201:{second}:-:{SESSION}"),
            format!("k2:close:refused:404:{second}:live_session_unknown:{SESSION}"),
            format!("k1:close:ok:200:{second}:-:{SESSION}"),
        ]
        .join(",")
    );
    let metrics = reqwest::get(broker.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("jarvis_broker_requests_total{action=\"relay\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_the_mints_and_ask_nothing_of_openai() {
    let db = TestDb::migrated("live_refuse");
    for (k, g) in [("k1", "g1"), ("k2", "g2"), ("k3", "g3")] {
        db.add_kiosk(k, g);
    }
    let emu = live_emulator(&[]).await;
    let mut cfg = config(&db, &emu.base_url());
    cfg.limits.kiosk_daily_budget_usd = jarvis_core::money::UsdAmount("1.00".parse().unwrap());
    cfg.limits.sessions_per_minute = 2;
    let broker = Broker::start(cfg).await;
    let good = request(&offer());

    let (status, _, code) = error(post(&broker, None, &good).await).await;
    assert_eq!((status, code.as_str()), (401, "kiosk_token_invalid"));
    let (status, _, _) = error(post(&broker, Some("jkt_forged"), &good).await).await;
    assert_eq!(status, 401);

    let t1 = broker.token("k1").await;
    broker.app.central.set_disabled("k1", true).await.unwrap();
    let (status, _, code) = error(post(&broker, Some(&t1), &good).await).await;
    assert_eq!((status, code.as_str()), (403, "kiosk_disabled"));
    broker.app.central.set_disabled("k1", false).await.unwrap();
    db.spent("k1", "g1", "1.00");
    let (status, retry, code) = error(post(&broker, Some(&t1), &good).await).await;
    assert_eq!((status, code.as_str()), (429, "kiosk_budget_exhausted"));
    assert!((1..=86_400).contains(&retry.unwrap().parse::<u64>().unwrap()));

    // The rate counts mints and Live relays alike.
    let t2 = broker.token("k2").await;
    let mint = reqwest::Client::new()
        .post(broker.token_url())
        .bearer_auth(&t2)
        .json(&json!({"session": {"type": "realtime"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(mint.status(), StatusCode::OK);
    assert_eq!(
        post(&broker, Some(&t2), &request(&offer())).await.status(),
        StatusCode::CREATED
    );
    let (status, retry, code) = error(post(&broker, Some(&t2), &request(&offer())).await).await;
    assert_eq!((status, code.as_str()), (429, "kiosk_rate_limited"));
    assert!((1..=60).contains(&retry.unwrap().parse::<u64>().unwrap()));

    // Not a Live request: 400 before OpenAI is asked.
    let t3 = broker.token("k3").await;
    let (status, _, code) =
        error(post(&broker, Some(&t3), &json!({"session": {}, "sdp": offer()})).await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));

    assert_eq!(
        emu.stats().live_sessions,
        1,
        "only k2's relay reached OpenAI"
    );
    assert_eq!(
        db.psql(
            "SELECT string_agg(coalesce(kiosk_id, '-') || ':' || reason || ':' || http_status, ',' \
             ORDER BY audit_id) FROM broker_audit WHERE action = 'relay' AND outcome = 'refused'"
        ),
        "-:kiosk_token_invalid:401,-:kiosk_token_invalid:401,k1:kiosk_disabled:403,\
         k1:kiosk_budget_exhausted:429,k2:kiosk_rate_limited:429,k3:invalid_request:400"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_errors_pass_through_as_the_mints_do() {
    let db = TestDb::migrated("live_upstream");
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
        let emu = live_emulator(faults).await;
        let broker = Broker::start(config(&db, &emu.base_url())).await;
        let token = broker.token("k1").await;
        let resp = post(&broker, Some(&token), &request(&offer())).await;
        assert_eq!(resp.status().as_u16(), want, "{fault}");
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry,
            "{fault}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // The upstream's own 400 (here: a voice OpenAI forbids) comes back too.
    let emu = live_emulator(&[]).await;
    let mut cfg = config(&db, &emu.base_url());
    cfg.live.voice = "nova".into();
    let broker = Broker::start(cfg).await;
    let token = broker.token("k1").await;
    let (status, _, code) = error(post(&broker, Some(&token), &request(&offer())).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert_eq!(
        db.psql(
            "SELECT string_agg(outcome || ':' || http_status || ':' || reason, ',' ORDER BY audit_id) \
             FROM broker_audit WHERE action = 'relay'"
        ),
        "upstream_error:401:invalid_api_key,upstream_error:429:rate_limit_exceeded,\
         upstream_error:500:http 500,upstream_error:503:http 503,upstream_error:403:forbidden"
    );
}
