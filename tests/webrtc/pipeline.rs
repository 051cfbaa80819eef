//! The daemon's whole Realtime path against the emulator: `credentials::mint` ->
//! `Peer::offer` -> `calls::exchange` -> `PendingPeer::accept` -> `session_update::build` ->
//! `protocol::decode` + `Translator` (priced usage, end_session) -> `calls::hangup`; and how
//! the HTTP faults surface as `CallError`s.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::Secret;
use jarvis_core::events::MembershipStatus;
use jarvis_core::metering::Pricing;
use jarvis_core::money::NanoUsd;
use jarvis_realtime::calls;
use jarvis_realtime::credentials::{self, ClientSecretRequest, Credentials, EphemeralKey};
use jarvis_realtime::http::{self, CallError};
use jarvis_realtime::peer::{CloseReason, Peer, PeerEvent, PeerOptions};
use jarvis_realtime::protocol::{self, ClientEvent, Decoded, RealtimeSignal, Translator};
use jarvis_realtime::session_update::{self, InstructionsTemplate, MemberContext};
use jarvis_realtime_emulator::faults::Faults;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig};
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(20);

async fn emulator(faults: &[&str]) -> Emulator {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/reference.toml");
    Emulator::start(EmulatorConfig {
        faults: Faults::parse(faults).unwrap(),
        ..EmulatorConfig::new(Scenario::load(&path).unwrap())
    })
    .await
    .unwrap()
}

fn config(emu: &Emulator) -> OpenAiConfig {
    OpenAiConfig {
        base_url: emu.base_url(),
        connect_timeout_s: 1,
        ..OpenAiConfig::default()
    }
}

fn member() -> MemberContext<'static> {
    MemberContext {
        first_name: Some("Marie"),
        language: "fr",
        membership: MembershipStatus::Active,
    }
}

async fn mint(cfg: &OpenAiConfig, http: &reqwest::Client) -> Result<EphemeralKey, CallError> {
    let template = InstructionsTemplate::load(cfg).unwrap();
    let request = ClientSecretRequest::new(cfg, session_update::session(cfg, &template, &member()));
    let creds = Credentials::ApiKey(Secret::new("sk-test"));
    credentials::mint(http, cfg, &creds, &request).await
}

#[tokio::test]
async fn daemon_path_prices_the_reference_response_and_ends_the_session() {
    let emu = emulator(&[]).await;
    let cfg = config(&emu);
    let http = http::http_client(&cfg).unwrap();
    let key = mint(&cfg, &http).await.unwrap();
    assert!(key.value.expose().starts_with("ek_"));

    let (pending, offer) = Peer::offer(PeerOptions::for_base_url(&cfg.base_url)).unwrap();
    let answer = calls::exchange(&http, &cfg, &key, &offer).await.unwrap();
    let call_id = answer
        .call_id
        .clone()
        .expect("Location carries the call id");
    let (peer, mut events) = pending.accept(&answer.sdp).unwrap();

    let template = InstructionsTemplate::load(&cfg).unwrap();
    let pricing = Arc::new(Pricing::from_config(&BTreeMap::new()).unwrap());
    let mut translator = Translator::new(pricing, &cfg.model, &cfg.transcription_model).unwrap();
    let mut signals = Vec::new();
    let mut updated = false;
    let end = timeout(GUARD, async {
        loop {
            match events.recv().await.expect("peer events ended") {
                PeerEvent::ChannelOpen => {
                    let update = session_update::build(&cfg, &template, &member());
                    peer.send_event(update.to_json().unwrap()).unwrap();
                }
                PeerEvent::Message(text) => {
                    let Decoded::Event(ev) = protocol::decode(&text) else {
                        continue;
                    };
                    for s in translator.translate(&ev) {
                        if s == RealtimeSignal::SessionUpdated {
                            updated = true;
                        }
                        if let RealtimeSignal::EndSession { call_id, .. } = &s {
                            let out = ClientEvent::function_call_output(call_id, r#"{"ok":true}"#);
                            peer.send_event(out.to_json().unwrap()).unwrap();
                            peer.send_event(ClientEvent::response_create().to_json().unwrap())
                                .unwrap();
                        }
                        let goodbye_spoken = matches!(s, RealtimeSignal::OutputAudioStopped { .. })
                            && signals
                                .iter()
                                .filter(|x| matches!(x, RealtimeSignal::ResponseUsage { .. }))
                                .count()
                                == 2;
                        signals.push(s);
                        if goodbye_spoken {
                            return;
                        }
                    }
                }
                PeerEvent::Closed { reason } => panic!("closed early: {reason}"),
                _ => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "guard timeout; signals so far: {signals:#?}");
    assert!(updated, "session.updated never arrived");

    let usage: Vec<_> = signals
        .iter()
        .filter_map(|s| match s {
            RealtimeSignal::ResponseUsage { cost, .. } => Some(cost.cost.model_total()),
            _ => None,
        })
        .collect();
    // Reference §11.2: $0.0267216 on gpt-realtime prices.
    assert_eq!(usage[0], NanoUsd(26_721_600));
    assert!(
        signals
            .iter()
            .any(|s| matches!(s, RealtimeSignal::TranscriptionUsage { .. }))
    );
    assert!(signals.iter().any(|s| matches!(
        s,
        RealtimeSignal::EndSession { reason: Some(r), .. } if r == "user_said_goodbye"
    )));

    calls::hangup(&http, &cfg, &Secret::new("sk-test"), &call_id)
        .await
        .unwrap();
    let closed = timeout(GUARD, async {
        loop {
            if let Some(PeerEvent::Closed { reason }) = events.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("guard timeout waiting for Closed");
    assert_eq!(closed, CloseReason::Remote);
    assert_eq!(emu.stats().hangups, 1);
}

#[tokio::test]
async fn http_faults_surface_as_call_errors() {
    let emu = emulator(&["http-status=429", "retry-after=7"]).await;
    let cfg = config(&emu);
    let http = http::http_client(&cfg).unwrap();
    let err = mint(&cfg, &http).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err}");

    let emu = emulator(&["http-status=401"]).await;
    let cfg = config(&emu);
    let err = mint(&cfg, &http).await.unwrap_err();
    assert!(matches!(err, CallError::Unauthorized { .. }), "{err}");

    let emu = emulator(&["http-status=500", "fail-times=1"]).await;
    let cfg = config(&emu);
    let err = mint(&cfg, &http).await.unwrap_err();
    assert!(
        matches!(err, CallError::Server { status: 500, .. }),
        "{err}"
    );
    let key = mint(&cfg, &http).await.unwrap();

    // A slow answer beyond openai.connect_timeout_s (1 s here) is a timeout, not a hang.
    let emu = emulator(&["answer-delay-ms=1500"]).await;
    let cfg = config(&emu);
    let (_pending, offer) = Peer::offer(PeerOptions::loopback_only()).unwrap();
    let err = calls::exchange(&http, &cfg, &key, &offer)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
}
