//! Minting ephemeral keys with the API key or a token broker, against a real local HTTP
//! server answering like OpenAI (reference §2.1), then the whole HTTP flow of a call (§11.4).

mod realtime_http_server;

use std::path::PathBuf;
use std::time::Duration;

use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::{Secret, SecretPath};
use jarvis_core::events::MembershipStatus;
use jarvis_realtime::calls;
use jarvis_realtime::credentials::{self, ClientSecretRequest, Credentials};
use jarvis_realtime::http::KeyOrigin;
use jarvis_realtime::http::{self, CallError};
use jarvis_realtime::protocol::Session;
use jarvis_realtime::session_update::{self, InstructionsTemplate, MemberContext};
use realtime_http_server::{Reply, serve};
use serde_json::{Value, json};

const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 3478 UDP/TLS/RTP/SAVPF 111\r\nm=application 3478 UDP/DTLS/SCTP webrtc-datachannel\r\n";

fn client_secret(value: &str) -> String {
    json!({
        "value": value,
        "expires_at": 1756310470,
        "session": { "type": "realtime", "object": "realtime.session", "id": "sess_C9CiUVUzUzYIssh3ELY1d",
                     "model": "gpt-realtime", "output_modalities": ["audio"], "instructions": "…",
                     "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": null,
                     "truncation": "auto", "prompt": null, "expires_at": 0 }
    })
    .to_string()
}

fn cfg(base_url: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base_url.to_owned(),
        connect_timeout_s: 1,
        ..OpenAiConfig::default()
    }
}

fn member_session(cfg: &OpenAiConfig) -> Session {
    let template = InstructionsTemplate::load(cfg).unwrap();
    session_update::session(
        cfg,
        &template,
        &MemberContext {
            first_name: Some("Marie"),
            language: "fr",
            membership: MembershipStatus::Active,
        },
    )
}

#[tokio::test]
async fn mints_with_the_api_key() {
    let (base, mut rx) = serve(vec![Reply::new(200, &client_secret("ek_68af296e8e408191"))]).await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let creds = Credentials::ApiKey(Secret::new("sk-test-1"));
    let request = ClientSecretRequest::new(&cfg, member_session(&cfg));
    let key = credentials::mint(&http, &cfg, &creds, &request)
        .await
        .unwrap();
    assert_eq!(key.value.expose(), "ek_68af296e8e408191");
    assert_eq!(key.expires_at, 1756310470);
    assert_eq!(key.origin, KeyOrigin::ApiKey);
    assert_eq!(
        key.session_id.as_deref(),
        Some("sess_C9CiUVUzUzYIssh3ELY1d")
    );
    assert!(!format!("{key:?}").contains("ek_68af"), "never logged");

    let req = rx.recv().await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/realtime/client_secrets");
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(
        body["expires_after"],
        json!({"anchor":"created_at","seconds":120})
    );
    assert_eq!(body["session"]["type"], "realtime");
    assert_eq!(body["session"]["model"], "gpt-realtime");
    assert_eq!(body["session"]["tools"][0]["name"], "end_session");
}

#[tokio::test]
async fn mints_through_the_token_broker() {
    let (base, mut rx) = serve(vec![Reply::new(200, &client_secret("ek_from_broker"))]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kiosk-token"), "kiosk-cred-42\n").unwrap();
    let cfg = OpenAiConfig {
        token_url: Some(format!("{base}/kiosk-token")),
        token_credential_file: Some(SecretPath(PathBuf::from("kiosk-token"))),
        ..cfg("https://api.openai.com/v1")
    };
    let creds = Credentials::from_config_in(&cfg, Some(dir.path())).unwrap();
    let http = http::http_client(&cfg).unwrap();
    let request = ClientSecretRequest::new(&cfg, member_session(&cfg));
    let key = credentials::mint(&http, &cfg, &creds, &request)
        .await
        .unwrap();
    assert_eq!(key.value.expose(), "ek_from_broker");
    assert_eq!(key.origin, KeyOrigin::Broker);
    let req = rx.recv().await.unwrap();
    assert_eq!(req.path, "/v1/kiosk-token");
    assert_eq!(req.header("authorization"), Some("Bearer kiosk-cred-42"));
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["session"]["model"], "gpt-realtime");
}

#[tokio::test]
async fn broker_refusal_names_the_kiosk_credential() {
    let (base, _rx) = serve(vec![Reply::new(
        401,
        r#"{"error":{"message":"unknown kiosk"}}"#,
    )])
    .await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let creds = Credentials::Broker {
        url: format!("{base}/token"),
        credential: Secret::new("kiosk-cred-42"),
    };
    let request = ClientSecretRequest::new(&cfg, Session::default());
    let err = credentials::mint(&http, &cfg, &creds, &request)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("openai.token_credential_file"), "{text}");
    assert!(text.contains("unknown kiosk"), "{text}");
    assert!(!text.contains("kiosk-cred-42"), "{text}");
}

#[tokio::test]
async fn mint_errors_are_classified() {
    let (base, _rx) = serve(vec![
        Reply::new(429, "").header("Retry-After", "3"),
        Reply::new(502, "bad gateway"),
        Reply::new(
            200,
            r#"{"client_secret":{"value":"ek_beta","expires_at":1}}"#,
        ),
        Reply::new(200, "").delayed(Duration::from_secs(5)),
    ])
    .await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let creds = Credentials::ApiKey(Secret::new("sk-test-1"));
    let request = ClientSecretRequest::new(&cfg, Session::default());
    let mint = || credentials::mint(&http, &cfg, &creds, &request);
    let e = mint().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)), "{e:?}");
    let e = mint().await.unwrap_err();
    assert!(matches!(e, CallError::Server { status: 502, .. }), "{e:?}");
    let e = mint().await.unwrap_err();
    assert!(matches!(e, CallError::Malformed { .. }), "{e:?}");
    assert!(!e.to_string().contains("ek_beta"), "{e}");
    let e = mint().await.unwrap_err();
    assert!(matches!(e, CallError::Timeout { .. }), "{e:?}");
}

#[tokio::test]
async fn whole_http_flow_of_a_call() {
    // Reference §11.4 steps 1, 2 and 4.
    let (base, mut rx) = serve(vec![
        Reply::new(200, &client_secret("ek_flow")),
        Reply::new(201, ANSWER)
            .header("Content-Type", "application/sdp")
            .header("Location", "/v1/realtime/calls/rtc_TEST"),
        Reply::new(200, ""),
    ])
    .await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let creds = Credentials::ApiKey(Secret::new("sk-test-1"));
    let request = ClientSecretRequest::new(&cfg, member_session(&cfg));
    let key = credentials::mint(&http, &cfg, &creds, &request)
        .await
        .unwrap();
    let answer = calls::exchange(&http, &cfg, &key, "v=0\r\nm=audio 9 x 111\r\n")
        .await
        .unwrap();
    let call_id = answer.call_id.unwrap();
    let (_, key, _) = creds.hangup_via(&cfg).unwrap();
    calls::hangup(&http, &cfg, key, &call_id).await.unwrap();
    let paths: Vec<(String, Option<String>)> = [
        rx.recv().await.unwrap(),
        rx.recv().await.unwrap(),
        rx.recv().await.unwrap(),
    ]
    .into_iter()
    .map(|r| (r.path.clone(), r.header("authorization").map(str::to_owned)))
    .collect();
    assert_eq!(
        paths,
        [
            (
                "/v1/realtime/client_secrets".into(),
                Some("Bearer sk-test-1".into())
            ),
            ("/v1/realtime/calls".into(), Some("Bearer ek_flow".into())),
            (
                "/v1/realtime/calls/rtc_TEST/hangup".into(),
                Some("Bearer sk-test-1".into())
            ),
        ]
    );
}
