//! The HTTP side of a WebRTC call (reference §3): POST the SDP offer to
//! `{openai.base_url}/realtime/calls` with the ephemeral key and get the answer and call id;
//! hang the call up with `POST .../realtime/calls/{call_id}/hangup`.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION};

use super::credentials::EphemeralKey;
use super::http::{CallError, HttpClient, KeyOrigin, Op, bearer, endpoint, send};
use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::Secret;

/// The SDP answer and the call id (`rtc_…`, from the `Location` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    /// `None` when the server sent no usable `Location` (some emulators): no hangup then.
    pub call_id: Option<String>,
}

/// Posts the SDP offer with the ephemeral key (reference §3.1) and returns the answer.
///
/// Any 2xx is accepted (OpenAI answers 201; some emulators 200). The whole request, connect
/// included, is bounded by `openai.connect_timeout_s`.
pub async fn exchange(
    http: &HttpClient,
    cfg: &OpenAiConfig,
    key: &EphemeralKey,
    offer_sdp: &str,
) -> Result<Answer, CallError> {
    let url = endpoint(&cfg.base_url, "realtime/calls");
    let request = http
        .post(&url)
        .header(AUTHORIZATION, bearer(&key.value))
        .header(CONTENT_TYPE, "application/sdp")
        .body(offer_sdp.to_owned());
    let (headers, body) = send(Op::Exchange, &url, cfg, key.origin, request).await?;
    let sdp = parse_answer(&headers, &body).map_err(|reason| CallError::Malformed {
        op: Op::Exchange,
        url: url.clone(),
        reason,
    })?;
    Ok(Answer {
        sdp,
        call_id: headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(call_id_from_location),
    })
}

/// Ends the call server-side (reference §3.4) with the standard API key.
pub async fn hangup(
    http: &HttpClient,
    cfg: &OpenAiConfig,
    api_key: &Secret,
    call_id: &str,
) -> Result<(), CallError> {
    hangup_at(
        http,
        cfg,
        &cfg.base_url,
        api_key,
        KeyOrigin::ApiKey,
        call_id,
    )
    .await
}

/// Ends the call at `base_url` (OpenAI, or a token broker that relays it with the org key;
/// see `Credentials::hangup_via`).
pub async fn hangup_at(
    http: &HttpClient,
    cfg: &OpenAiConfig,
    base_url: &str,
    key: &Secret,
    origin: KeyOrigin,
    call_id: &str,
) -> Result<(), CallError> {
    let url = endpoint(base_url, &format!("realtime/calls/{call_id}/hangup"));
    if !is_call_id(call_id) {
        return Err(CallError::Malformed {
            op: Op::Hangup,
            url,
            reason: "the call id is not of the form rtc_…".into(),
        });
    }
    let request = http.post(&url).header(AUTHORIZATION, bearer(key));
    send(Op::Hangup, &url, cfg, origin, request).await?;
    Ok(())
}

/// The SDP answer of a 2xx body, or why it is not one.
fn parse_answer(headers: &HeaderMap, body: &str) -> Result<String, String> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    let sdp = body.trim_start();
    if sdp.starts_with("v=0") && sdp.contains("\nm=") {
        Ok(sdp.to_owned())
    } else if sdp.is_empty() {
        Err(format!("empty body (Content-Type: {content_type})"))
    } else {
        Err(format!(
            "the body is not an SDP answer (Content-Type: {content_type}, {} bytes, expected \
             `v=0` and media lines)",
            body.len()
        ))
    }
}

/// The call id from `Location: /v1/realtime/calls/rtc_…` (the last path segment).
pub fn call_id_from_location(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    is_call_id(last).then(|| last.to_owned())
}

/// A call id safe to put in a URL path.
fn is_call_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::headers;

    #[test]
    fn call_id_is_the_last_location_segment() {
        assert_eq!(
            call_id_from_location("/v1/realtime/calls/rtc_u1_9c6574da8b8a41a18da9308f4ad974ce")
                .as_deref(),
            Some("rtc_u1_9c6574da8b8a41a18da9308f4ad974ce")
        );
        assert_eq!(
            call_id_from_location("https://api.openai.com/v1/realtime/calls/rtc_TEST/?x=1")
                .as_deref(),
            Some("rtc_TEST")
        );
        assert_eq!(call_id_from_location(""), None);
        assert_eq!(call_id_from_location("/v1/realtime/calls/a b"), None);
        assert_eq!(call_id_from_location("/v1/realtime/calls/../x%2F"), None);
    }

    #[test]
    fn answers_must_be_sdp() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert_eq!(parse_answer(&HeaderMap::new(), sdp).unwrap(), sdp);
        assert!(
            parse_answer(&HeaderMap::new(), "")
                .unwrap_err()
                .contains("empty")
        );
        let err = parse_answer(
            &headers(&[("content-type", "application/json")]),
            r#"{"ok":true}"#,
        )
        .unwrap_err();
        assert!(err.contains("application/json"), "{err}");
    }
}
