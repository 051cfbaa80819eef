//! Audio pipeline: capture, resample, Opus, playback, prompts, echo control.
//!
//! ```text
//! microphone ─cpal callback─▶ rtrb ring ─capture thread─▶ resample 48 kHz ─▶ AEC3 + NS (or
//!            (mono f32, no alloc/lock)    (idle: discard)    half-duplex gate) ─▶ Opus 20 ms
//!            ─▶ mpsc<OpusFrame> ─▶ WebRTC                      ▲ far-end reference, 48 kHz
//! WebRTC ─push_rtp─▶ playback thread: jitter buffer ─▶ Opus decode (PLC/FEC) ─▶ + prompts
//!            ─▶ resample to device rate ─▶ rtrb ring ─cpal callback─▶ speaker
//!                                                      └─▶ reference rtrb ring (what it played)
//! ```
//!
//! Audio callbacks never allocate, lock or log: they only move samples through lock-free `rtrb`
//! rings and count overruns in atomics. The capture and playback workers are plain OS threads
//! (not tokio tasks), each running the same loop (`reopen`) that reopens a vanished device
//! with backoff and reports the `audio` adapter to [`jarvis_core::health`].
//!
//! Wiring (the lead's side):
//! ```no_run
//! # async fn wire(cfg: &jarvis_config::AudioConfig, health: jarvis_core::health::Health) {
//! use jarvis_audio::PromptSound;
//! let (playback, capture, mut frames) = jarvis_audio::start(cfg, health);
//! // frames.recv().await -> OpusFrame { data, samples } for each 20 ms: send as RTP.
//! // For each received RTP packet: playback.push_rtp(seq, timestamp, payload);
//! // On `input_audio_buffer.speech_started` / `output_audio_buffer.cleared`: playback.flush();
//! playback.play_prompt(PromptSound::BadgeAccepted);
//! # drop((capture, frames.recv().await));
//! # }
//! ```

mod alsa_messages;
pub mod burst;
mod capture;
mod codec;
mod device;
pub mod devices;
mod doctor;
pub mod echo;
mod gate;
pub mod guard;
pub mod jitter;
pub mod pipeline;
mod playback;
mod prompts;
pub mod reference;
mod reopen;
mod resample;
pub mod room;
mod signal;
mod status;
pub mod wav;

pub use capture::Capture;
pub use codec::{CodecError, OpusDecoder, OpusEncoder};
pub use doctor::doctor_checks;
pub use echo::EchoCanceller;
pub use gate::HalfDuplexGate;
pub use playback::Playback;
pub use prompts::{PromptError, PromptSet, PromptSound};
pub use reference::EchoReference;
pub use signal::SpeakingSignal;

/// Starts playback and capture together, sharing the `audio` health adapter, the far-end
/// reference the echo canceller reads and the half-duplex signal (per `audio.echo_control`).
/// Missing devices do not fail this: each side retries in the background and reports health.
/// Capture starts live; call [`Capture::set_live`]`(false)` while no session is live.
pub fn start(
    cfg: &jarvis_config::AudioConfig,
    health: jarvis_core::health::Health,
) -> (Playback, Capture, tokio::sync::mpsc::Receiver<OpusFrame>) {
    let status = status::AudioStatus::new(health, (true, true));
    let playback = Playback::start_with_status(cfg, status.clone());
    let (capture, frames) = Capture::start_with_status(
        cfg,
        status,
        playback.speaking_signal(),
        playback.echo_reference(),
    );
    (playback, capture, frames)
}

/// Sample rate of everything between the resamplers: Opus and the Realtime API use 48 kHz.
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms mono frame at [`SAMPLE_RATE`]: the packets the server sends, and the
/// unit of loss concealment.
pub const FRAME_SAMPLES: usize = 960;
/// Length of one received frame, for pacing and latency arithmetic.
pub const FRAME_MS: u64 = 20;
/// Samples in one 10 ms microphone frame at [`SAMPLE_RATE`]: the Opus packets the kiosk sends.
/// 10 ms rather than WebRTC's usual 20 keeps the microphone's added delay within its 30 ms
/// budget beside the echo canceller's 17 ms (`echo::DELAY_SAMPLES`).
pub const SEND_FRAME_SAMPLES: usize = 480;
/// Length of one sent frame.
pub const SEND_FRAME_MS: u64 = 10;

/// One encoded 10 ms microphone frame, ready to go out as an RTP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusFrame {
    /// The Opus packet.
    pub data: Vec<u8>,
    /// Samples (at 48 kHz) the packet covers: add this to the RTP timestamp for the next one.
    pub samples: u32,
}

/// Counter names this module adds to in [`jarvis_core::health::Health`].
pub mod counters {
    /// Capture samples dropped because the capture thread fell behind the device.
    pub const OVERRUNS: &str = "audio_overruns";
    /// Encoded microphone frames dropped because the WebRTC side did not take them.
    pub const FRAMES_DROPPED: &str = "audio_frames_dropped";
    /// Lost RTP packets rebuilt from the next packet's in-band FEC.
    pub const FEC_RECOVERED: &str = "audio_fec_recovered";
    /// Lost RTP packets hidden by Opus packet loss concealment.
    pub const CONCEALED: &str = "audio_concealed";
    /// RTP packets that arrived after their play-out time, duplicates, or dropped to catch up.
    pub const LATE_PACKETS: &str = "audio_late_packets";
    /// Received packets that failed to decode.
    pub const DECODE_ERRORS: &str = "audio_decode_errors";
    /// Times the echo canceller's reference lost alignment with the microphone (a late output
    /// callback, a capture overrun) and the microphone was gated while JARVIS spoke until the
    /// canceller found the echo again (see `guard`).
    pub const ECHO_GUARD_ENGAGED: &str = "audio_echo_guard_engaged";
    /// Times the output device ran out of audio (underrun) and restarted: the speaker went
    /// silent for a moment and its timeline moved.
    pub const OUTPUT_XRUNS: &str = "audio_output_xruns";
    /// Times the input device overflowed (nobody read it in time) and restarted: microphone
    /// audio was lost.
    pub const INPUT_XRUNS: &str = "audio_input_xruns";
    /// Times a vanished or failing audio device was reopened.
    pub const REOPENS: &str = "audio_reopens";
}
