//! What the daemon feeds the lifecycle core: scans, lookups, Realtime signals, device and
//! breaker changes, ticks, shutdown. Every input comes with the time ([`Now`]).

use std::fmt;

use uuid::Uuid;

use crate::events::{CostBreakdown, TokenCounts};
use crate::money::NanoUsd;

/// The two clocks the core needs, read by the caller (the core never reads a clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (any origin): every timer and duration.
    pub mono_ms: u64,
    /// Wall clock, milliseconds since the Unix epoch: event timestamps and the UTC budget day.
    pub wall_ms: i64,
}

/// An opaque, comparable badge identity (the caller's normalised badge, or a keyed hash of it).
///
/// The core only compares keys (debounce, rate limit, replace). It never puts one in a
/// decision, and `Debug` is redacted, so a key cannot reach a log or the store through us.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BadgeKey(String);

impl BadgeKey {
    pub fn new(key: impl Into<String>) -> Self {
        BadgeKey(key.into())
    }
}

impl fmt::Debug for BadgeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BadgeKey(<redacted>)")
    }
}

/// Number the caller gives each scan, so a late lookup answer for an older scan is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScanId(pub u64);

/// A member as the lookup (central, or the local cache) returns them: the badge module's type.
pub use crate::badge::Member;

/// The answer to a [`crate::session::Decision::LookUpMember`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadgeLookup {
    Found(Member),
    /// No member has this badge; `badge_hash` is the HMAC the events may carry.
    Unknown {
        badge_hash: String,
    },
    /// Neither central nor the cache could answer.
    Failed {
        reason: String,
    },
}

/// What the Realtime adapter reports, already parsed from the data channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// `input_audio_buffer.speech_started`: the member is talking.
    SpeechStarted,
    /// `conversation.item.input_audio_transcription.completed`.
    TranscriptCompleted { text: String },
    /// `response.done` usage, priced by metering.
    ResponseUsage {
        response_id: String,
        tokens: TokenCounts,
        cost: CostBreakdown,
        raw_usage: serde_json::Value,
    },
    /// Input transcription usage, priced by metering (cost in `transcription_nusd`).
    TranscriptionUsage {
        item_id: String,
        cost: CostBreakdown,
        raw_usage: serde_json::Value,
    },
    /// The model called the `end_session` tool.
    EndSessionCalled { call_id: String },
    /// `output_audio_buffer.started`: JARVIS began speaking.
    OutputAudioStarted,
    /// `output_audio_buffer.stopped`: JARVIS finished speaking.
    OutputAudioStopped,
    /// `response.done`, whatever its status (after its usage signal, if any).
    ResponseDone,
    /// GPT-Live: `POST /v1/live/sessions` answered 201, so the initialisation charge is owed
    /// even if the session never runs.
    LiveCreated,
    /// GPT-Live: `session.started` named the model that runs (before `RealtimeConnected`).
    LiveModel { model: String },
    /// GPT-Live: a fragment of JARVIS's speech (`session.output_transcript.delta`). Live has
    /// no output-audio events; its transcript is the sign that JARVIS talks.
    OutputSpeech,
    /// GPT-Live `session.usage.updated`: cumulative billed seconds.
    LiveUsage {
        seconds: u64,
        raw_usage: serde_json::Value,
    },
    /// GPT-Live `session.closed`: the final seconds and the server's reason
    /// (`close_requested`, `expired`, `content`, `remote_hangup`, `connection_lost`).
    LiveClosed {
        seconds: u64,
        reason: String,
        raw_usage: serde_json::Value,
    },
    /// A delegated response's usage (GPT-Live), priced as the delegation model's tokens.
    DelegationUsage {
        response_id: String,
        model: String,
        tokens: TokenCounts,
        cost: NanoUsd,
        raw_usage: serde_json::Value,
    },
}

/// Why the Realtime connection is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection could not be set up (HTTP error, SDP, ICE, DTLS).
    ConnectFailed,
    /// An open connection dropped.
    ConnectionLost,
    /// A fatal `error` event (such as `session_expired`); non-fatal errors are not reported.
    Error,
    /// The fleet's session broker refused the session (budget, rate, kiosk disabled): not an
    /// outage, so it is said with its own prompt and recorded as a `ScanRefused` cause.
    Refused(BrokerRefusal),
}

/// A refusal of the session broker (`openai.token_url`), by its `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRefusal {
    /// `kiosk_budget_exhausted`: this kiosk's daily budget at the broker is spent.
    KioskBudget,
    /// `gym_budget_exhausted`: the gym's daily budget is spent.
    GymBudget,
    /// `kiosk_rate_limited`: too many sessions from this kiosk in the last minute.
    RateLimited,
    /// `kiosk_disabled`: the fleet disabled this kiosk.
    Disabled,
}

impl BrokerRefusal {
    /// The broker's `error.code` for each refusal (the contract with `jarvis-broker`).
    pub fn from_code(code: &str) -> Option<BrokerRefusal> {
        match code {
            "kiosk_budget_exhausted" => Some(BrokerRefusal::KioskBudget),
            "gym_budget_exhausted" => Some(BrokerRefusal::GymBudget),
            "kiosk_rate_limited" => Some(BrokerRefusal::RateLimited),
            "kiosk_disabled" => Some(BrokerRefusal::Disabled),
            _ => None,
        }
    }

    /// The `ScanRefused` cause recorded.
    pub fn cause(self) -> &'static str {
        match self {
            BrokerRefusal::KioskBudget => "broker_kiosk_budget",
            BrokerRefusal::GymBudget => "broker_gym_budget",
            BrokerRefusal::RateLimited => "broker_rate_limited",
            BrokerRefusal::Disabled => "broker_kiosk_disabled",
        }
    }

    /// What the member hears.
    pub fn prompt(self) -> super::Prompt {
        match self {
            BrokerRefusal::KioskBudget | BrokerRefusal::GymBudget => super::Prompt::BudgetReached,
            BrokerRefusal::RateLimited | BrokerRefusal::Disabled => super::Prompt::Unavailable,
        }
    }
}

/// One input to [`crate::session::SessionMachine::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A badge was read (raw reads: the core debounces). `read_at_ms` is the monotonic time
    /// the reader saw it, so `connect_ms` and the lookup timeout count from the scan, not
    /// from when the daemon got round to feeding it.
    BadgeScanned {
        scan: ScanId,
        badge: BadgeKey,
        read_at_ms: u64,
    },
    /// The answer to `LookUpMember { scan }`.
    MemberResolved {
        scan: ScanId,
        lookup: BadgeLookup,
    },
    /// The `oai-events` data channel of this session opened.
    RealtimeConnected {
        session_id: Uuid,
    },
    Realtime {
        session_id: Uuid,
        signal: Signal,
    },
    RealtimeFailed {
        session_id: Uuid,
        kind: FailureKind,
        /// Short human cause, passed on in the hang-up decision for the log.
        reason: String,
    },
    /// The Realtime circuit breaker opened (true) or closed (false).
    BreakerOpen(bool),
    /// The local store cannot record events (true) or records again (false): no session
    /// starts while its cost could not be kept.
    StoreFailing(bool),
    /// Microphone or speaker lost: scans are refused until [`Input::AudioRestored`].
    AudioLost,
    AudioRestored,
    /// Nothing happened; lets timers fire. Call it about once a second.
    Tick,
    /// The daemon is stopping: end any session, accept no more scans.
    Shutdown,
}
