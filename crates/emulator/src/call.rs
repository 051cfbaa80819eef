//! One emulated call at run time: the answering peer's events feed the VAD and the script; the
//! script's actions become data-channel messages, paced reply audio (or, in continuous mode, a
//! packet every 20 ms all the call long), timers or a drop; a [`Recorder`] keeps the timeline.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::audio::{self, Pacer};
use super::record::{self, CallRecord, Happening, ReplyAudio, TimelineEntry};
use super::scenario::AudioSpec;
use super::script::{Action, Input, Script};
use super::vad::{Vad, VadConfig, VadEvent};
use super::{Shared, lock};
use jarvis_realtime::peer::{PeerEvent, PeerEvents, PeerHandle};

/// Time given to the last events of a turn to reach the wire before the drop fault.
pub(crate) const DROP_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// One reply's frames being sent.
struct Reply {
    response_id: String,
    frames: Vec<Vec<u8>>,
    sent: usize,
}

/// The outgoing audio track: replies in order on a 20 ms clock. In continuous mode the clock
/// runs all the call long and fills the time between replies with Opus silence, every packet
/// marked (as Pion's sample writer does); otherwise it runs only while a reply plays.
pub(crate) struct Player {
    continuous: bool,
    queue: VecDeque<Reply>,
    clock: Option<Pacer>,
}

impl Player {
    pub(crate) fn new(continuous: bool) -> Self {
        Self {
            continuous,
            queue: VecDeque::new(),
            clock: None,
        }
    }

    /// Reply audio is being sent.
    pub(crate) fn playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Starts the clock of continuous mode (once the connection is up).
    pub(crate) fn connected(&mut self, now: Instant) {
        if self.continuous && self.clock.is_none() {
            self.clock = Some(Pacer::new(now, usize::MAX));
        }
    }

    /// Renders a reply and queues it (without audio, logged, when it cannot be rendered).
    pub(crate) fn play(&mut self, response_id: String, spec: &AudioSpec, recorder: &Recorder) {
        let frames = audio::render(spec).and_then(|pcm| audio::encode_frames(&pcm));
        let frames = frames.unwrap_or_else(|e| {
            tracing::error!(error = %e, "emulator reply audio unavailable; sending none");
            Vec::new()
        });
        recorder.reply_started(&response_id, frames.len());
        self.push(response_id, frames, Instant::now());
    }

    pub(crate) fn push(&mut self, response_id: String, frames: Vec<Vec<u8>>, now: Instant) {
        if self.clock.is_none() && !self.continuous {
            self.clock = Some(Pacer::new(now, usize::MAX));
        }
        self.queue.push_back(Reply {
            response_id,
            frames,
            sent: 0,
        });
    }

    pub(crate) fn next_due(&self, now: Instant) -> Option<Instant> {
        // An empty reply is due at once and finishes immediately.
        if self.queue.front().is_some_and(|r| r.frames.is_empty()) {
            return Some(now);
        }
        self.clock.as_ref().and_then(Pacer::next_due)
    }

    /// Sends the due packets; returns the replies fully sent, in order.
    pub(crate) fn send_due(
        &mut self,
        now: Instant,
        peer: &PeerHandle,
        record: &Recorder,
    ) -> Vec<String> {
        let ticks = self.clock.as_mut().map_or(0, |c| c.due(now).len());
        let mut finished = self.pop_finished();
        for _ in 0..ticks {
            let frame = match self.queue.front_mut() {
                Some(r) => {
                    r.sent += 1;
                    record.reply_progress(&r.response_id, r.sent);
                    r.frames[r.sent - 1].clone()
                }
                None if self.continuous => audio::OPUS_SILENCE.to_vec(),
                None => break,
            };
            let sent = if self.continuous {
                peer.send_audio_marked(frame, audio::FRAME_SAMPLES as u32)
            } else {
                peer.send_audio(frame, audio::FRAME_SAMPLES as u32)
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "emulator audio frame not sent");
            }
            finished.extend(self.pop_finished());
        }
        if !self.continuous && self.queue.is_empty() {
            self.clock = None;
        }
        finished
    }

    /// Removes the replies at the front whose frames have all been sent.
    fn pop_finished(&mut self) -> Vec<String> {
        let mut done = Vec::new();
        while self.queue.front().is_some_and(|r| r.sent >= r.frames.len()) {
            done.extend(self.queue.pop_front().map(|r| r.response_id));
        }
        done
    }

    /// Forgets every queued reply; returns the one that was playing and its frames sent.
    pub(crate) fn clear(&mut self) -> Option<(String, usize)> {
        let current = self.queue.front().map(|r| (r.response_id.clone(), r.sent));
        self.queue.clear();
        if !self.continuous {
            self.clock = None;
        }
        current
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes one call's [`CallRecord`], shared with [`crate::Emulator::calls`].
/// What the emulator hears of the kiosk: each Opus frame decoded, kept in the call's record and
/// run through the VAD.
pub(crate) struct Ear {
    decoder: opus::Decoder,
    pcm: Vec<i16>,
    vad: Vad,
}

impl Ear {
    /// `None` (logged) when libopus cannot make a decoder: the call then ends at once.
    pub(crate) fn new(vad: VadConfig) -> Option<Ear> {
        match opus::Decoder::new(audio::SAMPLE_RATE, opus::Channels::Mono) {
            Ok(decoder) => Some(Ear {
                decoder,
                pcm: vec![0i16; audio::SAMPLE_RATE as usize * 120 / 1000],
                vad: Vad::new(vad),
            }),
            Err(e) => {
                tracing::error!(error = %e, "emulator cannot create an Opus decoder");
                None
            }
        }
    }

    /// Hears one frame; a turn boundary it crosses is noted in the record and returned.
    pub(crate) fn hear(
        &mut self,
        payload: &[u8],
        recorder: &Recorder,
        audio_playing: bool,
    ) -> Option<VadEvent> {
        let n = match self.decoder.decode(payload, &mut self.pcm, false) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "emulator could not decode a kiosk frame");
                return None;
            }
        };
        recorder.member_audio(&self.pcm[..n]);
        let v = self.vad.push(&self.pcm[..n], audio::SAMPLE_RATE)?;
        recorder.note(match v {
            VadEvent::SpeechStarted { .. } => Happening::SpeechStarted { audio_playing },
            VadEvent::SpeechStopped { .. } => Happening::SpeechStopped,
        });
        Some(v)
    }
}

pub(crate) struct Recorder {
    start: Instant,
    record: Arc<Mutex<CallRecord>>,
}

impl Recorder {
    pub(crate) fn new(record: Arc<Mutex<CallRecord>>) -> Self {
        let start = Instant::now();
        lock(&record).answered_at = Some(start);
        Self { start, record }
    }

    /// Milliseconds since the answer: the clock of a Live session's timeline.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn with(&self, f: impl FnOnce(&mut CallRecord)) {
        f(&mut lock(&self.record));
    }

    pub(crate) fn note(&self, what: Happening) {
        let at = self.start.elapsed();
        self.with(|r| r.timeline.push(TimelineEntry { at, what }));
    }

    pub(crate) fn reply_started(&self, response_id: &str, frames_total: usize) {
        self.with(|r| {
            r.replies.push(ReplyAudio {
                response_id: response_id.to_string(),
                frames_total,
                frames_sent: 0,
                interrupted: false,
            });
        });
    }

    fn reply_progress(&self, response_id: &str, frames_sent: usize) {
        self.with(|r| {
            if let Some(a) = r.replies.iter_mut().find(|a| a.response_id == response_id) {
                a.frames_sent = frames_sent;
            }
        });
    }

    pub(crate) fn interrupted(&self, response_id: &str) {
        self.with(|r| {
            if let Some(a) = r.replies.iter_mut().find(|a| a.response_id == response_id) {
                a.interrupted = true;
            }
        });
    }

    pub(crate) fn member_audio(&self, pcm: &[i16]) {
        let at = self.start.elapsed();
        self.with(|r| {
            r.member_audio_start.get_or_insert(at);
            r.member_audio.extend_from_slice(pcm);
        });
    }
}

/// Runs one call until it closes, is hung up, or the drop fault fires.
pub(super) async fn run(
    shared: Arc<Shared>,
    call_id: String,
    peer: PeerHandle,
    mut events: PeerEvents,
    mut hangup: oneshot::Receiver<()>,
    recorder: Recorder,
) {
    let session_id = format!("sess_{}", call_id.trim_start_matches("rtc_"));
    let mut script = Script::new(
        shared.scenario.clone(),
        shared.faults.script(),
        &session_id,
        now_unix(),
    );
    let Some(mut ear) = Ear::new(shared.scenario.vad) else {
        return;
    };
    let mut player = Player::new(shared.scenario.continuous_audio);
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
                Some(PeerEvent::Connected) => {
                    player.connected(Instant::now());
                    Vec::new()
                }
                Some(PeerEvent::ChannelOpen) => script.step(Input::Open),
                Some(PeerEvent::Message(text)) => {
                    shared.record_client_event(&text);
                    script.step(Input::Client(&text))
                }
                Some(PeerEvent::Audio(frame)) => ear
                    .hear(&frame.payload, &recorder, player.playing())
                    .map(|v| script.step(Input::Vad(v)))
                    .unwrap_or_default(),
            },
            () = tokio::time::sleep_until(frame_due.unwrap_or(now).into()), if frame_due.is_some() => {
                let finished = player.send_due(Instant::now(), &peer, &recorder);
                finished.iter().flat_map(|_| script.step(Input::AudioFinished)).collect()
            }
            () = tokio::time::sleep_until(timer.unwrap_or(now).into()), if timer.is_some() => {
                timer = None;
                script.step(Input::Timer)
            }
            _ = &mut hangup => {
                for action in script.step(Input::HangUp) {
                    if let Action::Send(v) = action {
                        recorder.note(record::sent(&v));
                        send(&peer, v.to_string());
                    }
                }
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
                Action::Send(v) => {
                    recorder.note(record::sent(&v));
                    send(&peer, v.to_string());
                }
                Action::SendRaw(s) => send(&peer, s),
                Action::Play { response_id, audio } => {
                    player.play(response_id, &audio, &recorder);
                }
                Action::StopAudio => {
                    if let Some((id, _)) = player.clear() {
                        recorder.interrupted(&id);
                    }
                }
                Action::BargeIn => {
                    if let Some((response_id, frames_sent)) = player.clear() {
                        recorder.interrupted(&response_id);
                        recorder.note(Happening::BargeIn {
                            response_id,
                            frames_sent,
                        });
                    }
                }
                Action::ArmTimer(d) => timer = Some(Instant::now() + d),
                Action::PauseTraffic(span) => {
                    tracing::info!(%call_id, ?span, "fault: pausing all traffic");
                    if let Err(e) = peer.pause_traffic(span) {
                        tracing::debug!(error = %e, "emulator could not pause the call");
                    }
                }
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

pub(crate) fn send(peer: &PeerHandle, text: String) {
    if let Err(e) = peer.send_event(text) {
        tracing::debug!(error = %e, "emulator event not sent");
    }
}
