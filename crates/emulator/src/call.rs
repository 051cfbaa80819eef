//! One emulated call at run time: the answering peer's events feed the VAD and the script; the
//! script's actions become data-channel messages, paced reply audio, timers or a drop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::Shared;
use super::audio::{self, Pacer};
use super::script::{Action, Input, Script};
use super::vad::Vad;
use jarvis_realtime::peer::{PeerEvent, PeerEvents, PeerHandle};

/// Time given to the last events of a turn to reach the wire before the drop fault.
const DROP_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// Reply audio queued for sending, one entry per `Play`.
#[derive(Default)]
struct Player {
    queue: VecDeque<Vec<Vec<u8>>>,
    current: Option<(Vec<Vec<u8>>, Pacer)>,
}

impl Player {
    fn next_due(&mut self, now: Instant) -> Option<Instant> {
        if self.current.is_none() {
            let frames = self.queue.pop_front()?;
            let pacer = Pacer::new(now, frames.len());
            self.current = Some((frames, pacer));
        }
        // An empty reply is due at once and finishes immediately.
        Some(
            self.current
                .as_ref()
                .and_then(|(_, p)| p.next_due())
                .unwrap_or(now),
        )
    }

    /// Sends the due frames; true when the current reply has been fully sent.
    fn send_due(&mut self, now: Instant, peer: &PeerHandle) -> bool {
        let Some((frames, pacer)) = &mut self.current else {
            return false;
        };
        for i in pacer.due(now) {
            if let Err(e) = peer.send_audio(frames[i].clone()) {
                tracing::debug!(error = %e, "emulator reply frame not sent");
            }
        }
        if pacer.finished() {
            self.current = None;
            true
        } else {
            false
        }
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.current = None;
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs one call until it closes, is hung up, or the drop fault fires.
pub(super) async fn run(
    shared: Arc<Shared>,
    call_id: String,
    peer: PeerHandle,
    mut events: PeerEvents,
    mut hangup: oneshot::Receiver<()>,
) {
    let session_id = format!("sess_{}", call_id.trim_start_matches("rtc_"));
    let mut script = Script::new(
        shared.scenario.clone(),
        shared.faults.script(),
        &session_id,
        now_unix(),
    );
    let mut vad = Vad::new(shared.scenario.vad);
    let mut decoder = match opus::Decoder::new(audio::SAMPLE_RATE, opus::Channels::Mono) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "emulator cannot create an Opus decoder");
            return;
        }
    };
    let mut pcm = vec![0i16; audio::SAMPLE_RATE as usize * 120 / 1000];
    let mut player = Player::default();
    let mut timer: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let frame_due = player.next_due(now);
        let actions = tokio::select! {
            ev = events.recv() => match ev {
                None | Some(PeerEvent::Closed { .. }) => {
                    if let Some(PeerEvent::Closed { reason }) = ev {
                        tracing::info!(%call_id, %reason, "emulated call closed");
                    }
                    break;
                }
                Some(PeerEvent::Connected) => Vec::new(),
                Some(PeerEvent::ChannelOpen) => script.step(Input::Open),
                Some(PeerEvent::Message(text)) => {
                    shared.record_client_event(&text);
                    script.step(Input::Client(&text))
                }
                Some(PeerEvent::Audio(frame)) => match decoder.decode(&frame.payload, &mut pcm, false) {
                    Ok(n) => vad
                        .push(&pcm[..n], audio::SAMPLE_RATE)
                        .map(|v| script.step(Input::Vad(v)))
                        .unwrap_or_default(),
                    Err(e) => {
                        tracing::debug!(error = %e, "emulator could not decode a kiosk frame");
                        Vec::new()
                    }
                },
            },
            () = tokio::time::sleep_until(frame_due.unwrap_or(now).into()), if frame_due.is_some() => {
                if player.send_due(Instant::now(), &peer) {
                    script.step(Input::AudioFinished)
                } else {
                    Vec::new()
                }
            }
            () = tokio::time::sleep_until(timer.unwrap_or(now).into()), if timer.is_some() => {
                timer = None;
                script.step(Input::Timer)
            }
            _ = &mut hangup => {
                let _ = peer.close();
                shared.note_hangup();
                // Let the close drain (close_notify) before the handle is dropped.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(300), async {
                    while let Some(ev) = events.recv().await {
                        if matches!(ev, PeerEvent::Closed { .. }) { break; }
                    }
                }).await;
                break;
            }
        };
        for action in actions {
            match action {
                Action::Send(v) => send(&peer, v.to_string()),
                Action::SendRaw(s) => send(&peer, s),
                Action::Play(spec) => {
                    let frames = audio::render(&spec).and_then(|pcm| audio::encode_frames(&pcm));
                    player.queue.push_back(frames.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "emulator reply audio unavailable; sending none");
                        Vec::new()
                    }));
                }
                Action::StopAudio => player.clear(),
                Action::ArmTimer(d) => timer = Some(Instant::now() + d),
                Action::Drop => {
                    tracing::info!(%call_id, "fault: dropping the call without a goodbye");
                    shared.note_drop();
                    // Let the turn's last events leave (the peer writes them on its next loop),
                    // then drop the handle: its task stops and its sockets close.
                    tokio::time::sleep(DROP_FLUSH).await;
                    return;
                }
            }
        }
    }
}

fn send(peer: &PeerHandle, text: String) {
    if let Err(e) = peer.send_event(text) {
        tracing::debug!(error = %e, "emulator event not sent");
    }
}
