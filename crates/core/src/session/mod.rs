//! Session lifecycle core, without I/O: inputs in, decisions out (see ARCHITECTURE.md).
//!
//! The daemon owns one [`SessionMachine`], feeds it every [`Input`] with the current [`Now`]
//! (plus a [`Input::Tick`] about once a second) and carries out the returned [`Decision`]s in
//! order. The machine enforces the session limits, the daily budget, badge debounce and rate
//! limits, and guarantees exactly one `SessionEnded` for every `SessionStarted`.
//!
//! Policies worth knowing when wiring or supporting it:
//! - A scan is refused (spoken prompt + `ScanRefused`) when audio is lost, the breaker is open,
//!   today's budget is spent or the badge hit `badge.max_sessions_per_hour`; it is ignored
//!   silently when debounced, during cooldown or ending, or during a session (unless
//!   `badge.on_scan_during_session = "replace"` and another badge is scanned).
//! - Max duration, max cost and the daily budget reached mid-session ask JARVIS for a short
//!   goodbye; `end_session` and the goodbye phrases wait for JARVIS to finish speaking, then
//!   hang up after [`DEFAULT_HANGUP_DELAY_MS`] (speaker tail, trailing usage); idle timeout,
//!   shutdown, replace and failures hang up at once. Every wait is bounded.
//! - The idle timer counts from the member's last speech or the end of JARVIS's last audio,
//!   and never runs while JARVIS speaks (a long answer is not member silence).
//! - The budget may be overrun by at most one session's `session.max_cost_usd` plus its
//!   goodbye: spend is only known after each response.
//! - Usage arriving after a hang-up (for one of the last few sessions) is still recorded and
//!   counted in today's spend, though it comes after that session's `SessionEnded` totals.
//!
//! Feeding `realtime::protocol::RealtimeSignal`s in (in the order the translator returns them):
//! `SpeechStarted` → [`Signal::SpeechStarted`]; `UserTranscript` →
//! [`Signal::TranscriptCompleted`]; `ResponseUsage` → [`Signal::ResponseUsage`] (its
//! `cost.tokens`, `cost.cost`) then [`Signal::ResponseDone`]; `UnpricedUsage` of a response →
//! [`Signal::ResponseDone`]; `TranscriptionUsage` → [`Signal::TranscriptionUsage`];
//! `EndSession` → [`Signal::EndSessionCalled`]; `OutputAudioStarted` →
//! [`Signal::OutputAudioStarted`]; `OutputAudioStopped` and `OutputAudioCleared` →
//! [`Signal::OutputAudioStopped`]; a fatal `Error` → [`Input::RealtimeFailed`] with
//! [`FailureKind::Error`]. The other signals are not the core's business.
//!
//! GPT-Live sessions ([`Backend::Live`]) differ where the protocol does: the adapter reports
//! [`Signal::LiveCreated`] when the session is created and `RealtimeConnected` once
//! `session.started` arrived; a member's transcript fragment is [`Signal::SpeechStarted`] (on
//! a new utterance) plus [`Signal::TranscriptCompleted`] with the utterance so far; JARVIS's
//! is [`Signal::OutputSpeech`]. Voice time is priced per second from the elapsed time between
//! the server's cumulative reports, so the limits stop a session on time; every ending that
//! still has a connection sends [`RealtimeCommand::CloseSession`] and waits (bounded by
//! [`DEFAULT_CLOSE_TIMEOUT_MS`]) for `session.closed`, whose figure replaces the estimate.

mod decisions;
pub mod goodbye;
mod inputs;
pub mod limits;
mod live;
mod machine;
pub mod rate;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod transitions;

pub use decisions::{Decision, Lifecycle, Prompt, RealtimeCommand, SessionContext};
pub use inputs::{
    BadgeKey, BadgeLookup, BrokerRefusal, FailureKind, Input, Member, Now, ScanId, Signal,
};
pub use machine::{
    Backend, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_GOODBYE_GRACE_MS, DEFAULT_HANGUP_DELAY_MS,
    DEFAULT_LOOKUP_TIMEOUT_MS, END_SESSION_OUTPUT, IdSource, ScanDuringSession, SessionMachine,
    SessionProgress, Settings, UnknownMember,
};
