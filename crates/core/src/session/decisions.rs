//! What the lifecycle core asks the daemon to do. The daemon carries each decision out in
//! order; none of them holds a badge.

use uuid::Uuid;

use crate::events::{EndReason, KioskEvent, MembershipStatus};

/// One thing to do, in the order returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Look the badge of this scan up and answer with `Input::MemberResolved { scan, .. }`.
    /// (The caller still holds the badge it just passed in; the core never hands it back.)
    LookUpMember { scan: super::ScanId },
    /// Open a Realtime session; answer with `RealtimeConnected` or `RealtimeFailed`.
    Connect {
        session_id: Uuid,
        context: SessionContext,
    },
    /// Send a client event on the session's data channel.
    SendRealtime {
        session_id: Uuid,
        command: RealtimeCommand,
    },
    /// Play a local prompt on the speaker.
    PlayPrompt(Prompt),
    /// Close the data channel and peer connection and hang the call up.
    HangUp {
        session_id: Uuid,
        reason: EndReason,
        /// The adapter's short cause for failures, for the log line.
        detail: Option<String>,
    },
    /// Commit this event to the local store.
    Record(KioskEvent),
    /// The lifecycle state changed: publish it to health (`Health::set_lifecycle`).
    Lifecycle(Lifecycle),
}

impl Decision {
    /// The session this decision is about, for the `SESSION_ID` log field.
    pub fn session_id(&self) -> Option<Uuid> {
        match self {
            Decision::Connect { session_id, .. }
            | Decision::SendRealtime { session_id, .. }
            | Decision::HangUp { session_id, .. } => Some(*session_id),
            Decision::Record(e) => e.session_id,
            Decision::LookUpMember { .. } | Decision::PlayPrompt(_) | Decision::Lifecycle(_) => {
                None
            }
        }
    }
}

/// Who the session is for: fills the instructions template (`openai.instructions_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    /// `None` for a guest.
    pub member_id: Option<String>,
    pub first_name: Option<String>,
    /// BCP 47 tag, `None` when unknown (then the template's default language, French).
    pub language: Option<String>,
    pub membership: MembershipStatus,
}

/// Client events the core needs on the data channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealtimeCommand {
    /// `conversation.item.create` with a `function_call_output` item answering `end_session`.
    FunctionCallOutput { call_id: String, output: String },
    /// `response.create` with these one-off instructions: a short spoken goodbye.
    SayGoodbye { instructions: String },
    /// GPT-Live `session.close`: the server drains what is being said, then answers
    /// `session.closed` with the final usage.
    CloseSession,
}

/// Local prompts, named by what they say (the audio module maps them to files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// Short chime: the badge was accepted.
    Chime,
    /// "JARVIS est indisponible, merci de vous adresser à l'accueil" (breaker open, degraded,
    /// lookup failed).
    Unavailable,
    /// "Merci de vous adresser à l'accueil" (unknown or expired member).
    FrontDesk,
    /// The kiosk's daily budget is spent.
    BudgetReached,
    /// This badge started too many sessions in the last hour.
    RateLimited,
    /// Apology: the conversation failed to connect or dropped.
    Apology,
}

impl Prompt {
    /// Stable name, also the prompt file's stem.
    pub fn as_str(self) -> &'static str {
        match self {
            Prompt::Chime => "chime",
            Prompt::Unavailable => "unavailable",
            Prompt::FrontDesk => "front_desk",
            Prompt::BudgetReached => "budget_reached",
            Prompt::RateLimited => "rate_limited",
            Prompt::Apology => "apology",
        }
    }
}

/// The lifecycle state shown by `status` and sent in heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    Idle,
    LookingUp,
    Connecting,
    Live,
    /// Waiting for the goodbye audio to finish (bounded by a grace timeout).
    Ending,
    Cooldown,
    /// Idle but unable to serve (audio lost or breaker open): scans get a spoken refusal.
    Degraded,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Idle => "idle",
            Lifecycle::LookingUp => "looking_up",
            Lifecycle::Connecting => "connecting",
            Lifecycle::Live => "live",
            Lifecycle::Ending => "ending",
            Lifecycle::Cooldown => "cooldown",
            Lifecycle::Degraded => "degraded",
        }
    }
}
