//! OpenAI as the broker sees it: mint a client secret, hang a call up, create and hang up a
//! GPT-Live session, all with the org key.
//! Answers are relayed as they came (status, body, `Retry-After`), so a kiosk classifies an
//! OpenAI 401/429/5xx behind the broker exactly as it would without it.

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use crate::config::UpstreamConfig;
use jarvis_config::secrets::Secret;

/// Headers of an upstream answer worth passing on to the kiosk.
const RELAYED_HEADERS: [&str; 3] = ["content-type", "retry-after", "retry-after-ms"];

/// An upstream answer, any status.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Relayed {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `session.id` of a client-secret or Live create answer.
    pub fn session_id(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["session"]["id"].as_str().map(str::to_owned)
    }

    /// `error.code` of an error envelope, else `http <status>`.
    pub fn error_reason(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("http {}", self.status))
    }
}

/// No answer from upstream at all.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("OpenAI did not answer within {0} s (openai.timeout_s)")]
    Timeout(u64),
    #[error("cannot reach OpenAI at {url}: {reason} (check openai.base_url and the network)")]
    Connect { url: String, reason: String },
}

impl UpstreamError {
    /// The status the kiosk gets: 504 for a timeout, 502 otherwise (both transient for it).
    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::Timeout(_) => 504,
            UpstreamError::Connect { .. } => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Timeout(_) => "upstream_timeout",
            UpstreamError::Connect { .. } => "upstream_unreachable",
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"type": "broker_upstream", "code": self.code(), "message": self.to_string()}})
    }
}

/// The client for OpenAI, holding the org key.
pub struct Upstream {
    http: reqwest::Client,
    base_url: String,
    key: Secret,
    timeout_s: u64,
}

impl Upstream {
    /// `key`: the org key (`openai.api_key_file`), or a placeholder for a loopback emulator.
    pub fn new(cfg: &UpstreamConfig, key: Secret) -> Result<Upstream, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_s))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("jarvis-broker/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Upstream {
            http,
            base_url: cfg.base_url.trim_end_matches('/').to_owned(),
            key,
            timeout_s: cfg.timeout_s,
        })
    }

    /// `POST /realtime/client_secrets` with `body`.
    pub async fn mint(&self, body: &Value) -> Result<Relayed, UpstreamError> {
        self.post("realtime/client_secrets", Some(body)).await
    }

    /// `POST /realtime/calls/{call_id}/hangup` (the id is checked by the caller).
    pub async fn hangup(&self, call_id: &str) -> Result<Relayed, UpstreamError> {
        self.post(&format!("realtime/calls/{call_id}/hangup"), None)
            .await
    }

    /// `POST /live/sessions` with the `{session, transport}` request. Never retried: a retry
    /// could create a second billed session (OpenAI's sample disables retries here too).
    pub async fn create_live(&self, body: &Value) -> Result<Relayed, UpstreamError> {
        self.post("live/sessions", Some(body)).await
    }

    /// `POST /live/sessions/{id}/hangup` (the id is checked by the caller). OpenAI documents
    /// this endpoint for SIP calls; for a WebRTC session its effect is not documented, so its
    /// answer is relayed as it came and audited (reference §8).
    pub async fn hangup_live(&self, session_id: &str) -> Result<Relayed, UpstreamError> {
        self.post(&format!("live/sessions/{session_id}/hangup"), None)
            .await
    }

    /// `POST {base_url}/{path}` with the org key, and `body` as JSON when there is one.
    async fn post(&self, path: &str, body: Option<&Value>) -> Result<Relayed, UpstreamError> {
        let url = format!("{}/{path}", self.base_url);
        let mut req = self
            .http
            .post(&url)
            .header(AUTHORIZATION, format!("Bearer {}", self.key.expose()));
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        self.send(&url, req).await
    }

    async fn send(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<Relayed, UpstreamError> {
        let started = Instant::now();
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout(self.timeout_s)
            } else {
                UpstreamError::Connect {
                    url: url.to_owned(),
                    reason: root_cause(&e),
                }
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = relayed_headers(resp.headers());
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        Ok(Relayed {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        })
    }
}

fn relayed_headers(headers: &HeaderMap) -> Vec<(&'static str, String)> {
    RELAYED_HEADERS
        .iter()
        .filter_map(|name| {
            let v = headers.get(*name)?.to_str().ok()?;
            Some((*name, v.to_owned()))
        })
        .collect()
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// A call or session id safe to put in a URL path (`rtc_…`, `live_…`).
pub fn is_call_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
