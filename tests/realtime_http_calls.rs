//! The SDP exchange and hangup against a real local HTTP server answering like OpenAI
//! (reference §3.1, §3.4).

mod realtime_http_server;

use std::time::Duration;

use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::Secret;
use jarvis_core::breaker::{Admission, Breaker, BreakerSettings};
use jarvis_realtime::calls;
use jarvis_realtime::credentials::EphemeralKey;
use jarvis_realtime::http::KeyOrigin;
use jarvis_realtime::http::{self, CallError};
use realtime_http_server::{Reply, serve};

const OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=audio 3478 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\na=candidate:1 1 udp 2130706431 127.0.0.1 3478 typ host\r\nm=application 3478 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n";

fn cfg(base_url: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base_url.to_owned(),
        connect_timeout_s: 1,
        ..OpenAiConfig::default()
    }
}

fn key(origin: KeyOrigin) -> EphemeralKey {
    EphemeralKey {
        value: Secret::new("ek_test_123"),
        expires_at: 1_756_310_470,
        origin,
        session_id: None,
        model: None,
    }
}

async fn exchange(reply: Reply, origin: KeyOrigin) -> Result<calls::Answer, CallError> {
    let (base, _rx) = serve(vec![reply]).await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    calls::exchange(&http, &cfg, &key(origin), OFFER).await
}

#[tokio::test]
async fn created_answer_and_call_id_from_location() {
    let (base, mut rx) = serve(vec![
        Reply::new(201, ANSWER)
            .header("Content-Type", "application/sdp")
            .header(
                "Location",
                "/v1/realtime/calls/rtc_u1_9c6574da8b8a41a18da9308f4ad974ce",
            ),
    ])
    .await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let answer = calls::exchange(&http, &cfg, &key(KeyOrigin::ApiKey), OFFER)
        .await
        .unwrap();
    assert_eq!(answer.sdp, ANSWER);
    assert_eq!(
        answer.call_id.as_deref(),
        Some("rtc_u1_9c6574da8b8a41a18da9308f4ad974ce")
    );
    let req = rx.recv().await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/realtime/calls", "no ?model= on the GA path");
    assert_eq!(req.header("authorization"), Some("Bearer ek_test_123"));
    assert_eq!(req.header("content-type"), Some("application/sdp"));
    assert_eq!(req.body, OFFER);
}

#[tokio::test]
async fn plain_200_without_location_is_accepted_without_call_id() {
    let answer = exchange(
        Reply::new(200, ANSWER).header("Content-Type", "application/sdp"),
        KeyOrigin::ApiKey,
    )
    .await
    .unwrap();
    assert_eq!(answer.call_id, None);
}

#[tokio::test]
async fn unauthorized_names_the_credential() {
    let body = r#"{"error":{"message":"Invalid ephemeral key ek_test_123.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
    let err = exchange(
        Reply::new(401, body).header("Content-Type", "application/json"),
        KeyOrigin::ApiKey,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CallError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("openai.api_key_file"), "{text}");
    assert!(!text.contains("ek_test_123"), "key leaked: {text}");

    let err = exchange(Reply::new(403, ""), KeyOrigin::Broker)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("openai.token_url"), "{err}");
}

#[tokio::test]
async fn rate_limited_honours_retry_after_in_the_breaker() {
    let err = exchange(
        Reply::new(
            429,
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        )
        .header("Retry-After", "17"),
        KeyOrigin::ApiKey,
    )
    .await
    .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
    assert!(err.to_string().contains("retry after 17s"), "{err}");
    let mut breaker = Breaker::new(BreakerSettings {
        failures: 3,
        open_for: Duration::from_secs(5),
    });
    breaker.record_failure(0, &err.breaker_failure());
    assert_eq!(
        breaker.admit(1_000),
        Admission::Refuse {
            retry_in: Duration::from_secs(16)
        }
    );
    assert_eq!(breaker.admit(17_000), Admission::Probe);
}

#[tokio::test]
async fn server_errors_are_transient() {
    let err = exchange(
        Reply::new(
            500,
            r#"{"error":{"message":"The server had an error.","type":"server_error"}}"#,
        ),
        KeyOrigin::ApiKey,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CallError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.breaker_failure().cause, "http 500");
}

#[tokio::test]
async fn slow_answer_times_out() {
    let err = exchange(
        Reply::new(201, ANSWER).delayed(Duration::from_secs(5)),
        KeyOrigin::ApiKey,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("openai.connect_timeout_s"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = cfg(&format!("http://{addr}/v1"));
    let http = http::http_client(&cfg).unwrap();
    let err = calls::exchange(&http, &cfg, &key(KeyOrigin::ApiKey), OFFER)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Connect { .. } | CallError::Timeout { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("openai.base_url"), "{err}");
}

#[tokio::test]
async fn success_status_with_a_non_sdp_body_is_malformed() {
    for reply in [
        Reply::new(201, r#"{"ok":true}"#).header("Content-Type", "application/json"),
        Reply::new(201, ""),
    ] {
        let err = exchange(reply, KeyOrigin::ApiKey).await.unwrap_err();
        assert!(matches!(err, CallError::Malformed { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed_with_the_key() {
    let err = exchange(
        Reply::new(307, "").header("Location", "http://127.0.0.1:9/steal"),
        KeyOrigin::ApiKey,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, CallError::Rejected { status: 307, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn hangup_posts_to_the_call_with_the_standard_key() {
    let (base, mut rx) = serve(vec![Reply::new(200, ""), Reply::new(404, "")]).await;
    let cfg = cfg(&base);
    let http = http::http_client(&cfg).unwrap();
    let api_key = Secret::new("sk-test-1");
    calls::hangup(&http, &cfg, &api_key, "rtc_TEST")
        .await
        .unwrap();
    let req = rx.recv().await.unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/realtime/calls/rtc_TEST/hangup");
    assert_eq!(req.header("authorization"), Some("Bearer sk-test-1"));
    assert_eq!(req.body, "");
    let err = calls::hangup(&http, &cfg, &api_key, "rtc_TEST")
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Rejected { status: 404, .. }),
        "{err:?}"
    );
    let err = calls::hangup(&http, &cfg, &api_key, "../../x")
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Malformed { .. }), "{err:?}");
}
