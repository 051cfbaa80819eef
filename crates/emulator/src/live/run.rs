//! One GPT-Live session at run time: the answering peer's events, the VAD and the session's
//! timers (start delay, usage updates, expiry) feed [`LiveSession`]; its actions become
//! data-channel messages, paced reply audio, a drop or a close. Audio and recording reuse the
//! Realtime call's [`Player`] and [`Recorder`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::session::{LiveAction, LiveInput, LiveSession};
use crate::Shared;
use crate::call::{self, Ear, Player, Recorder};
use crate::record::{self, Happening};
use jarvis_realtime::peer::{PeerEvent, PeerEvents, PeerHandle};

/// How long the emulator waits for its own close to drain before dropping the peer.
const CLOSE_DRAIN: Duration = Duration::from_millis(300);

/// The session's timers.
struct Timers {
    start: Option<Instant>,
    usage: Option<Instant>,
    expiry: Option<Instant>,
    turn: Option<Instant>,
}

fn at(t: Option<Instant>, now: Instant) -> tokio::time::Instant {
    t.unwrap_or(now).into()
}

/// Runs one session until it closes, is dropped, or the peer goes away.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut session: LiveSession,
    peer: PeerHandle,
    mut events: PeerEvents,
    mut hangup: oneshot::Receiver<()>,
    recorder: Recorder,
    expire_after: Duration,
) {
    let timing = shared.scenario.live;
    let Some(mut ear) = Ear::new(shared.scenario.vad) else {
        return;
    };
    let mut player = Player::new(shared.scenario.continuous_audio);
    let mut timers = Timers {
        start: None,
        usage: None,
        // expires_at counts from creation, not from session.started.
        expiry: Some(Instant::now() + expire_after),
        turn: None,
    };
    let interval = Duration::from_millis(u64::from(timing.usage_interval_ms));
    loop {
        let now = Instant::now();
        let frame_due = player.next_due(now);
        let input_and_actions = tokio::select! {
            ev = events.recv() => match ev {
                None | Some(PeerEvent::Closed { .. }) => {
                    tracing::info!(?ev, "Live session transport closed");
                    break;
                }
                Some(PeerEvent::Connected) => {
                    player.connected(Instant::now());
                    Vec::new()
                }
                Some(PeerEvent::ChannelOpen) => {
                    timers.start = Some(Instant::now() + Duration::from_millis(u64::from(timing.start_delay_ms)));
                    Vec::new()
                }
                Some(PeerEvent::Message(text)) => {
                    shared.record_client_event(&text);
                    session.step(LiveInput::Client(&text), recorder.elapsed_ms())
                }
                Some(PeerEvent::Audio(frame)) => ear
                    .hear(&frame.payload, &recorder, player.playing())
                    .map(|v| session.step(LiveInput::Vad(v), recorder.elapsed_ms()))
                    .unwrap_or_default(),
            },
            () = tokio::time::sleep_until(at(timers.start, now)), if timers.start.is_some() => {
                timers.start = None;
                let t = Instant::now();
                timers.usage = Some(t + interval);
                session.step(LiveInput::Start, recorder.elapsed_ms())
            }
            () = tokio::time::sleep_until(at(frame_due, now)), if frame_due.is_some() => {
                let finished = player.send_due(Instant::now(), &peer, &recorder);
                finished.iter().flat_map(|_| session.step(LiveInput::AudioFinished, recorder.elapsed_ms())).collect()
            }
            () = tokio::time::sleep_until(at(timers.turn, now)), if timers.turn.is_some() => {
                timers.turn = None;
                session.step(LiveInput::Timer, recorder.elapsed_ms())
            }
            () = tokio::time::sleep_until(at(timers.usage, now)), if timers.usage.is_some() => {
                timers.usage = timers.usage.map(|t| t + interval);
                session.step(LiveInput::UsageTick, recorder.elapsed_ms())
            }
            () = tokio::time::sleep_until(at(timers.expiry, now)), if timers.expiry.is_some() => {
                timers.expiry = None;
                tracing::info!("Live session reached expires_at");
                session.step(LiveInput::Expired, recorder.elapsed_ms())
            }
            _ = &mut hangup => {
                shared.note_hangup();
                session.step(LiveInput::HangUp, recorder.elapsed_ms())
            }
        };
        for action in input_and_actions {
            match action {
                LiveAction::Send(v) => {
                    recorder.note(record::sent(&v));
                    call::send(&peer, v.to_string());
                }
                LiveAction::Play { id, audio } => player.play(id, &audio, &recorder),
                LiveAction::BargeIn => {
                    if let Some((response_id, frames_sent)) = player.clear() {
                        recorder.interrupted(&response_id);
                        recorder.note(Happening::BargeIn {
                            response_id,
                            frames_sent,
                        });
                    }
                }
                LiveAction::ArmTimer(d) => timers.turn = Some(Instant::now() + d),
                LiveAction::Drop => {
                    tracing::info!("fault: dropping the Live session without session.closed");
                    shared.note_drop();
                    tokio::time::sleep(call::DROP_FLUSH).await;
                    return;
                }
                LiveAction::Close => {
                    let _ = peer.close();
                    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                        while let Some(ev) = events.recv().await {
                            if matches!(ev, PeerEvent::Closed { .. }) {
                                break;
                            }
                        }
                    })
                    .await;
                    return;
                }
            }
        }
    }
}
