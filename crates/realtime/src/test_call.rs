//! `doctor --call`: one real call to `openai.base_url`, as a session makes it (mint a key,
//! exchange SDP, ICE + DTLS, open `oai-events`, wait for `session.created`), then a hang-up
//! without any `response.create`, so no model output is generated or billed. It proves the
//! media path (UDP, or ICE-TCP when UDP is blocked) that the HTTPS checks cannot.
//!
//! The steps are I/O; what a failure means and how to fix it is [`advice`], a pure function.

use std::time::{Duration, Instant};

use jarvis_config::OpenAiConfig;
use jarvis_core::health::Check;

use crate::calls;
use crate::credentials::{self, ClientSecretRequest, Credentials};
use crate::http::{CallError, http_client};
use crate::peer::{CloseReason, Peer, PeerEvent, PeerOptions, Transport};
use crate::protocol::{Session, SessionKind};

/// The check's name in `doctor`'s list.
pub const NAME: &str = "openai call";

/// How far the test call got and how long each step took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutcome {
    /// Mint + SDP exchange.
    pub http: Duration,
    /// From applying the answer to the data channel open.
    pub connect: Duration,
    /// From the channel open to `session.created`.
    pub session_created: Duration,
    /// The transport ICE chose.
    pub transport: Option<Transport>,
}

/// Why the test call failed.
#[derive(Debug)]
pub enum CallFailure {
    /// No usable credential in the config.
    Credentials(String),
    /// Minting the key or the SDP exchange failed.
    Http(CallError),
    /// The peer could not be set up (no local address, bad SDP answer).
    Peer(String),
    /// The WebRTC connection never opened or closed early.
    Media(CloseReason),
    /// Connected, but no `session.created` arrived in time (or an `error` event did).
    NoSession(String),
}

/// Places the test call, bounded by `wait` per step.
pub async fn run(cfg: &OpenAiConfig, wait: Duration) -> Result<CallOutcome, CallFailure> {
    let creds =
        Credentials::from_config(cfg).map_err(|e| CallFailure::Credentials(e.to_string()))?;
    let http = http_client(cfg).map_err(CallFailure::Http)?;
    let started = Instant::now();
    let request = ClientSecretRequest::new(
        cfg,
        Session {
            kind: SessionKind::Realtime,
            ..Session::default()
        },
    );
    let key = credentials::mint(&http, cfg, &creds, &request)
        .await
        .map_err(CallFailure::Http)?;
    let options = PeerOptions {
        connect_timeout: wait,
        ice_disconnect_grace: Duration::from_secs(cfg.ice_disconnect_grace_s),
        ..PeerOptions::for_base_url(&cfg.base_url)
    };
    let (pending, offer) = Peer::offer(options).map_err(|e| CallFailure::Peer(e.to_string()))?;
    let answer = calls::exchange(&http, cfg, &key, &offer)
        .await
        .map_err(CallFailure::Http)?;
    let http_done = started.elapsed();
    let applied = Instant::now();
    let (peer, mut events) = pending
        .accept(&answer.sdp)
        .map_err(|e| CallFailure::Peer(format!("the SDP answer was refused: {e}")))?;
    let mut opened: Option<Instant> = None;
    let mut connect = Duration::ZERO;
    let deadline = tokio::time::Instant::now() + wait * 2;
    let result = loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                break Err(CallFailure::Media(CloseReason::Failed(
                    "the peer task ended".into(),
                )));
            }
            Err(_) => {
                break Err(CallFailure::NoSession(format!(
                    "no session.created within {} s of the connection",
                    wait.as_secs()
                )));
            }
        };
        match ev {
            PeerEvent::ChannelOpen => {
                connect = applied.elapsed();
                opened = Some(Instant::now());
            }
            PeerEvent::Message(text) => match event_type(&text).as_deref() {
                Some("session.created") => {
                    break Ok(CallOutcome {
                        http: http_done,
                        connect,
                        session_created: opened.map(|o| o.elapsed()).unwrap_or_default(),
                        transport: peer.transport(),
                    });
                }
                Some("error") => {
                    break Err(CallFailure::NoSession(format!(
                        "the server sent an error event: {}",
                        text.chars().take(300).collect::<String>()
                    )));
                }
                _ => {}
            },
            PeerEvent::Closed { reason } => break Err(CallFailure::Media(reason)),
            PeerEvent::Connected | PeerEvent::Audio(_) => {}
        }
    };
    let _ = peer.close();
    if let (Some(call_id), Some((base, key, origin))) =
        (answer.call_id.as_deref(), creds.hangup_via(cfg))
        && let Err(e) = calls::hangup_at(&http, cfg, &base, key, origin, call_id).await
    {
        tracing::info!(error = %e, "test call hang-up failed (the connection is closed anyway)");
    }
    result
}

fn event_type(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("type")?.as_str().map(str::to_owned)
}

/// The `doctor` line for an outcome: the transport and the time to connect, or the cause and
/// the fix.
pub fn advice(outcome: &Result<CallOutcome, CallFailure>) -> Check {
    match outcome {
        Ok(o) => {
            let detail = format!(
                "connected over {} in {} ms (key + SDP {} ms, ICE + DTLS + data channel {} ms), \
                 session.created {} ms later; hung up without a response",
                o.transport
                    .map_or("an unknown transport".into(), |t| t.to_string()),
                (o.http + o.connect).as_millis(),
                o.http.as_millis(),
                o.connect.as_millis(),
                o.session_created.as_millis(),
            );
            match o.transport {
                Some(Transport::Tcp) => Check::warn(
                    NAME,
                    format!("{detail}; UDP did not work"),
                    "UDP blocked: allow outbound UDP 3478 to OpenAI for the best audio (TCP 443 \
                     works, but loss on it delays speech)",
                ),
                _ => Check::ok(NAME, detail),
            }
        }
        Err(CallFailure::Credentials(e)) => Check::fail(
            NAME,
            e.clone(),
            "set openai.api_key_file (or openai.token_url and openai.token_credential_file)",
        ),
        Err(CallFailure::Http(e)) => Check::fail(NAME, e.to_string(), http_fix(e)),
        Err(CallFailure::Peer(e)) => Check::fail(
            NAME,
            e.clone(),
            "connect the kiosk to the network (an interface with an IPv4 or global IPv6 address)",
        ),
        Err(CallFailure::Media(reason)) => Check::fail(NAME, reason.to_string(), media_fix(reason)),
        Err(CallFailure::NoSession(e)) => Check::fail(
            NAME,
            e.clone(),
            "the media path works but the session did not start: check openai.model and the \
             account's Realtime access; retry later if OpenAI reports an incident",
        ),
    }
}

fn http_fix(e: &CallError) -> String {
    match e {
        CallError::Unauthorized { fix, .. } => format!("check {fix}"),
        CallError::RateLimited { .. } => "rate limited by OpenAI: retry in a minute".into(),
        CallError::Server { .. } => "OpenAI answered with a server error: retry later".into(),
        CallError::Connect { .. } | CallError::Timeout { .. } => {
            "HTTPS to openai.base_url is blocked or unresolvable: allow TCP 443 to it, or set \
             HTTPS_PROXY (and NO_PROXY) in the unit's drop-in if the site requires a proxy"
                .into()
        }
        CallError::Rejected { .. } | CallError::Malformed { .. } => {
            "check openai.base_url and openai.model".into()
        }
        CallError::Refused { refusal, .. } => format!(
            "the session broker refused this kiosk ({}): see the broker's audit for it",
            refusal.cause()
        ),
        CallError::Client(_) => "see the message".into(),
    }
}

fn media_fix(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::Unreachable { .. } | CloseReason::ConnectTimeout { dtls_up: false, .. } => {
            "UDP and TCP to OpenAI's media servers both failed: allow outbound UDP 3478, or at \
             least TCP 443 to them (an HTTPS proxy cannot carry the call's audio)"
        }
        CloseReason::ConnectTimeout { dtls_up: true, .. } => {
            "the path works but the data channel did not open: a middlebox may cut long-lived \
             connections; retry, then check the firewall's UDP/TCP session timeouts"
        }
        _ => "the connection dropped during the test: check the network's stability and retry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::health::Level;

    fn ok(transport: Transport) -> Result<CallOutcome, CallFailure> {
        Ok(CallOutcome {
            http: Duration::from_millis(40),
            connect: Duration::from_millis(60),
            session_created: Duration::from_millis(5),
            transport: Some(transport),
        })
    }

    #[test]
    fn udp_is_ok_and_tcp_warns_that_udp_is_blocked() {
        let c = advice(&ok(Transport::Udp));
        assert_eq!(c.level, Level::Ok);
        assert!(
            c.detail.contains("connected over UDP in 100 ms"),
            "{}",
            c.detail
        );
        let c = advice(&ok(Transport::Tcp));
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("over TCP"), "{}", c.detail);
        assert!(c.fix.as_deref().unwrap_or_default().contains("UDP 3478"));
    }

    #[test]
    fn each_failure_names_its_fix() {
        let unreachable = Err(CallFailure::Media(CloseReason::Unreachable {
            after: Duration::from_secs(10),
            tried: "UDP to 1.2.3.4:3478: no answer to 12 checks".into(),
        }));
        let c = advice(&unreachable);
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("no answer to 12 checks"), "{}", c.detail);
        assert!(c.fix.as_deref().unwrap_or_default().contains("TCP 443"));
        let down = Err(CallFailure::Http(CallError::Connect {
            op: crate::http::Op::Mint,
            url: "https://x/v1".into(),
            reason: "connection refused".into(),
        }));
        let c = advice(&down);
        assert_eq!(c.level, Level::Fail);
        assert!(c.fix.as_deref().unwrap_or_default().contains("HTTPS_PROXY"));
        let c = advice(&Err(CallFailure::NoSession("no session.created".into())));
        assert!(
            c.fix
                .as_deref()
                .unwrap_or_default()
                .contains("openai.model")
        );
    }
}
