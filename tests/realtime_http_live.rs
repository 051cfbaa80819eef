//! Creating a GPT-Live session (reference §3) against a real local HTTP server answering like
//! OpenAI or the broker's relay: the JSON body, the credential and header each route uses, the
//! `201` answer, and every documented error status classified for the session's end and the
//! breaker. The request is never retried: it starts a billed session.

mod realtime_http_server;

use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::Secret;
use jarvis_realtime::credentials::Credentials;
use jarvis_realtime::http::{self, CallError};
use jarvis_realtime::live::{CreateRequest, Created, SessionPolicy, sessions};
use realtime_http_server::{Reply, serve};

const OFFER: &str =
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

fn cfg(base_url: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base_url.to_owned(),
        connect_timeout_s: 1,
        ..OpenAiConfig::default()
    }
}

fn request() -> CreateRequest {
    CreateRequest::new(
        &SessionPolicy {
            model: "gpt-live-1.1".into(),
            voice: "marin".into(),
            instructions: "Tu es JARVIS.".into(),
            delegation_model: "gpt-5-mini".into(),
            delegation_instructions: "Call end_session on goodbye.".into(),
        },
        OFFER,
    )
}

fn created_body() -> String {
    serde_json::json!({"session": {"id": "live_abc"}, "transport": {"type": "webrtc", "sdp": OFFER}})
        .to_string()
}

async fn create(reply: Reply, creds: &Credentials) -> (Result<Created, CallError>, usize) {
    let (base, mut rx) = serve(vec![reply.clone(), reply]).await;
    let cfg = cfg(&base);
    let creds = match creds {
        Credentials::Broker { credential, .. } => Credentials::Broker {
            url: format!("{base}/live/sessions"),
            credential: credential.clone(),
        },
        other => other.clone(),
    };
    let http = http::http_client(&cfg).unwrap();
    let out = sessions::create(&http, &cfg, &creds, "0193-kiosk-session", &request()).await;
    let mut posts = 0;
    while rx.try_recv().is_ok() {
        posts += 1;
    }
    (out, posts)
}

fn key() -> Credentials {
    Credentials::ApiKey(Secret::new("sk-dev-1"))
}

fn relay() -> Credentials {
    Credentials::Broker {
        url: String::new(),
        credential: Secret::new("kt-kiosk-1"),
    }
}

#[tokio::test]
async fn a_key_posts_the_documented_json_to_live_sessions_and_reads_the_answer() {
    let (base, mut rx) = serve(vec![
        Reply::new(201, &created_body()).header("Content-Type", "application/json"),
    ])
    .await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let created = sessions::create(&http, &cfg, &key(), "s1", &request())
        .await
        .unwrap();
    assert_eq!(created.session.id, "live_abc");
    let req = rx.recv().await.unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/v1/live/sessions")
    );
    assert_eq!(req.header("authorization"), Some("Bearer sk-dev-1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(
        req.header("x-jarvis-session-id"),
        None,
        "OpenAI gets no kiosk header"
    );
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["transport"]["sdp"], OFFER);
    assert_eq!(body["session"]["model"], "gpt-live-1.1");
    assert!(body["session"]["audio"].get("format").is_none());
}

#[tokio::test]
async fn the_relay_gets_the_kiosk_credential_and_its_session_id() {
    let (base, mut rx) = serve(vec![Reply::new(201, &created_body())]).await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let creds = Credentials::Broker {
        url: format!("{base}/live/sessions"),
        credential: Secret::new("kt-kiosk-1"),
    };
    sessions::create(&http, &cfg, &creds, "0193-kiosk-session", &request())
        .await
        .unwrap();
    let req = rx.recv().await.unwrap();
    assert_eq!(req.header("authorization"), Some("Bearer kt-kiosk-1"));
    assert_eq!(
        req.header("x-jarvis-session-id"),
        Some("0193-kiosk-session")
    );
}

#[tokio::test]
async fn every_documented_status_is_classified_and_never_retried() {
    let envelope = |code: &str| {
        serde_json::json!({"error": {"type": "invalid_request_error", "code": code,
                                     "message": format!("{code} happened")}})
        .to_string()
    };
    // 400 bad offer, 401 key, 403 access, 404 availability, 429 quota, 5xx later.
    for (status, creds) in [(400, key()), (401, key()), (403, relay()), (404, key())] {
        let (out, posts) = create(Reply::new(status, &envelope("x")), &creds).await;
        let err = out.unwrap_err();
        assert_eq!(posts, 1, "{status}: one POST only");
        match (status, &err) {
            (401 | 403, CallError::Unauthorized { fix, .. }) => {
                let want = if status == 403 {
                    "openai.live.relay_url"
                } else {
                    "openai.api_key_file"
                };
                assert!(fix.contains(want), "{status}: {err}");
            }
            (400 | 404, CallError::Rejected { .. }) => {}
            _ => panic!("{status}: {err:?}"),
        }
        assert!(
            err.to_string().contains("creating a GPT-Live session"),
            "{err}"
        );
    }
    let (out, posts) = create(
        Reply::new(429, &envelope("rate_limit_exceeded")).header("Retry-After", "7"),
        &key(),
    )
    .await;
    let err = out.unwrap_err();
    assert_eq!(
        (posts, err.retry_after().map(|d| d.as_secs())),
        (1, Some(7))
    );
    assert_eq!(err.breaker_failure().cause, "http 429");
    let (out, posts) = create(Reply::new(503, &envelope("overloaded")), &key()).await;
    assert!(matches!(out, Err(CallError::Server { status: 503, .. })));
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn the_brokers_refusals_keep_their_own_meaning() {
    let body = serde_json::json!({"error": {"code": "gym_budget_exhausted", "message": "spent"}})
        .to_string();
    let (out, _) = create(Reply::new(403, &body), &relay()).await;
    assert!(
        matches!(out, Err(CallError::Refused { .. })),
        "a refusal, not a broken credential: {out:?}"
    );
}

#[tokio::test]
async fn an_answer_without_an_sdp_is_malformed_not_a_session() {
    let body = serde_json::json!({"session": {"id": "live_abc"}, "transport": {"type": "webrtc", "sdp": ""}})
        .to_string();
    let (out, _) = create(Reply::new(201, &body), &key()).await;
    let err = out.unwrap_err();
    assert!(matches!(err, CallError::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("transport.sdp"), "{err}");
}

#[tokio::test]
async fn no_answer_within_the_connect_timeout_is_a_timeout_naming_the_key() {
    let slow = Reply::new(201, &created_body()).delayed(std::time::Duration::from_secs(3));
    let (out, posts) = create(slow, &key()).await;
    let err = out.unwrap_err();
    assert_eq!(posts, 1);
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("openai.connect_timeout_s"),
        "{err}"
    );
}
