//! The facts the kiosk records: one type shared by the lifecycle core (which decides them),
//! the local store (which makes them durable) and the central sync (which ships them).
//!
//! The JSON form of [`EventPayload`] is a contract with the central database: its triggers
//! read these field names out of `kiosk_events.payload` (see `sql/central/`). Money fields are
//! integers in nano-dollars and end in `_nusd`. Add fields freely; never rename or remove one
//! without a central migration.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::NanoUsd;

/// One recorded fact, as stored in the outbox and sent to `kiosk_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KioskEvent {
    /// UUIDv7: unique across kiosks, so a retried insert can never duplicate centrally.
    pub event_id: Uuid,
    /// The session this fact belongs to, if any (alerts and heartbeats have none).
    pub session_id: Option<Uuid>,
    /// Wall-clock time of the fact, in milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
    pub payload: EventPayload,
}

impl KioskEvent {
    /// A new event with a fresh UUIDv7 id.
    pub fn new(session_id: Option<Uuid>, occurred_at_ms: i64, payload: EventPayload) -> Self {
        KioskEvent {
            event_id: Uuid::now_v7(),
            session_id,
            occurred_at_ms,
            payload,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }
}

/// The `kind` column of an event, locally and centrally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    SessionStarted,
    SessionConnected,
    ResponseUsage,
    TranscriptionUsage,
    LiveUsage,
    DelegationUsage,
    SessionEnded,
    ScanRefused,
    Alert,
    Heartbeat,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::SessionStarted,
        EventKind::SessionConnected,
        EventKind::ResponseUsage,
        EventKind::TranscriptionUsage,
        EventKind::LiveUsage,
        EventKind::DelegationUsage,
        EventKind::SessionEnded,
        EventKind::ScanRefused,
        EventKind::Alert,
        EventKind::Heartbeat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionStarted => "session_started",
            EventKind::SessionConnected => "session_connected",
            EventKind::ResponseUsage => "response_usage",
            EventKind::TranscriptionUsage => "transcription_usage",
            EventKind::LiveUsage => "live_usage",
            EventKind::DelegationUsage => "delegation_usage",
            EventKind::SessionEnded => "session_ended",
            EventKind::ScanRefused => "scan_refused",
            EventKind::Alert => "alert",
            EventKind::Heartbeat => "heartbeat",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How much losing this event would hurt; the bounded store drops the least important first.
    pub fn importance(self) -> Importance {
        match self {
            EventKind::SessionStarted
            | EventKind::SessionEnded
            | EventKind::ResponseUsage
            | EventKind::TranscriptionUsage
            | EventKind::LiveUsage
            | EventKind::DelegationUsage => Importance::Critical,
            EventKind::SessionConnected | EventKind::Alert => Importance::Normal,
            EventKind::ScanRefused | EventKind::Heartbeat => Importance::Low,
        }
    }
}

/// Drop order under storage pressure: `Low` first, then `Normal`; `Critical` never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Importance {
    Low = 0,
    Normal = 1,
    /// Session start/end and every cost: finance and "100 % of sessions tracked" depend on them.
    Critical = 2,
}

/// Token counts of one response or of a whole session. Cached counts are a subset of input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub input_text: u64,
    pub input_audio: u64,
    pub input_image: u64,
    pub cached_text: u64,
    pub cached_audio: u64,
    pub cached_image: u64,
    pub output_text: u64,
    pub output_audio: u64,
}

impl std::ops::AddAssign for TokenCounts {
    fn add_assign(&mut self, o: TokenCounts) {
        self.input_text += o.input_text;
        self.input_audio += o.input_audio;
        self.input_image += o.input_image;
        self.cached_text += o.cached_text;
        self.cached_audio += o.cached_audio;
        self.cached_image += o.cached_image;
        self.output_text += o.output_text;
        self.output_audio += o.output_audio;
    }
}

/// Cost split in the four seed categories plus transcription.
///
/// Cached input is priced at its cached rate *inside* its input category, so the four seed
/// categories add up to the Realtime model's cost; transcription is billed apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBreakdown {
    pub input_audio_nusd: NanoUsd,
    pub output_audio_nusd: NanoUsd,
    pub input_text_nusd: NanoUsd,
    pub output_text_nusd: NanoUsd,
    pub transcription_nusd: NanoUsd,
}

impl CostBreakdown {
    /// The Realtime model's share: the four seed categories.
    pub fn model_total(&self) -> NanoUsd {
        self.input_audio_nusd
            + self.output_audio_nusd
            + self.input_text_nusd
            + self.output_text_nusd
    }

    /// Everything: the model's share plus transcription.
    pub fn total(&self) -> NanoUsd {
        self.model_total() + self.transcription_nusd
    }
}

impl std::ops::AddAssign for CostBreakdown {
    fn add_assign(&mut self, o: CostBreakdown) {
        self.input_audio_nusd += o.input_audio_nusd;
        self.output_audio_nusd += o.output_audio_nusd;
        self.input_text_nusd += o.input_text_nusd;
        self.output_text_nusd += o.output_text_nusd;
        self.transcription_nusd += o.transcription_nusd;
    }
}

/// A GPT-Live session's totals at its end (absent for Realtime sessions, whose cost is in
/// the token categories).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTotals {
    /// Voice seconds priced (at least the 15 s initialisation charge).
    pub billed_seconds: u64,
    /// Voice cost for `billed_seconds`.
    pub voice_nusd: NanoUsd,
    /// Every delegated response of the session, priced as the delegation model's tokens.
    pub delegation_nusd: NanoUsd,
    /// Seconds that may have been standby were priced at the active rate: the bill is at most
    /// this.
    pub upper_bound: bool,
    /// No `session.closed` figure arrived: the voice cost is the elapsed time (or the last
    /// report, whichever is larger), priced. Central prefers a `session.closed` figure.
    pub estimated: bool,
    /// What this event adds to the kiosk's spend: the voice figure minus the one last
    /// recorded for the session (the local daily budget sums these; central does not).
    pub charged_nusd: NanoUsd,
}

impl LiveTotals {
    /// Voice plus delegation.
    pub fn total(&self) -> NanoUsd {
        self.voice_nusd + self.delegation_nusd
    }
}

/// Why a session ended. Exactly one per started session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The model called `end_session` (the member said goodbye).
    Goodbye,
    /// The transcript matched a configured goodbye phrase.
    GoodbyePhrase,
    IdleTimeout,
    MaxDuration,
    MaxCost,
    DailyBudget,
    /// Another member scanned and `badge.on_scan_during_session = "replace"`.
    Replaced,
    Shutdown,
    ConnectFailed,
    ConnectionLost,
    AudioLost,
    RealtimeError,
    /// The process died during the session (kill -9, power cut): closed at the next start-up
    /// with the cost recorded so far and the time up to its last recorded event.
    Crashed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Goodbye => "goodbye",
            EndReason::GoodbyePhrase => "goodbye_phrase",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::MaxDuration => "max_duration",
            EndReason::MaxCost => "max_cost",
            EndReason::DailyBudget => "daily_budget",
            EndReason::Replaced => "replaced",
            EndReason::Shutdown => "shutdown",
            EndReason::ConnectFailed => "connect_failed",
            EndReason::ConnectionLost => "connection_lost",
            EndReason::AudioLost => "audio_lost",
            EndReason::RealtimeError => "realtime_error",
            EndReason::Crashed => "crashed",
        }
    }
}

/// Membership as the central lookup reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    Active,
    Expired,
    Suspended,
    /// Unknown badge served as a guest (`badge.unknown_member = "guest"`).
    Guest,
}

/// How loud an alert is in the central views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// The body of an event. Serialised as JSON with a `kind` tag equal to [`EventKind::as_str`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventPayload {
    SessionStarted {
        /// Central member id, or `None` for a guest.
        member_id: Option<String>,
        /// HMAC-SHA256 of the badge for unknown members (never the raw badge).
        badge_hash: Option<String>,
        membership: MembershipStatus,
        model: String,
    },
    SessionConnected {
        /// Badge scan to data channel open.
        connect_ms: u64,
    },
    ResponseUsage {
        response_id: String,
        model: String,
        tokens: TokenCounts,
        cost: CostBreakdown,
        /// OpenAI's `usage` object as received, so the cost can be re-priced later.
        raw_usage: serde_json::Value,
    },
    TranscriptionUsage {
        item_id: String,
        model: String,
        cost: CostBreakdown,
        raw_usage: serde_json::Value,
    },
    /// GPT-Live voice time as the server reported it. Cumulative: a later figure replaces an
    /// earlier one, never adds to it (central keeps the largest, a `closed` one first).
    LiveUsage {
        model: String,
        /// `usage.seconds` as received.
        seconds: u64,
        /// Seconds priced (at least the 15 s initialisation charge).
        billed_seconds: u64,
        /// Voice cost for `billed_seconds`, cumulative for the session.
        voice_nusd: NanoUsd,
        /// Priced all at the active rate because the active/standby split is unknown.
        upper_bound: bool,
        /// From `session.closed`: the final figure.
        closed: bool,
        /// What this event adds to the kiosk's spend (this figure minus the session's previous
        /// one, never negative): the local daily budget sums these.
        charged_nusd: NanoUsd,
        raw_usage: serde_json::Value,
    },
    /// One delegated (Responses) response of a GPT-Live session, priced as the delegation
    /// model's text tokens. These add up.
    DelegationUsage {
        response_id: String,
        model: String,
        tokens: TokenCounts,
        cost_nusd: NanoUsd,
        raw_usage: serde_json::Value,
    },
    SessionEnded {
        reason: EndReason,
        duration_ms: u64,
        /// Realtime tokens (zero for GPT-Live).
        tokens: TokenCounts,
        /// Realtime cost (zero for GPT-Live, whose cost is in `live`).
        cost: CostBreakdown,
        /// Why it ended, in words, when there is more to say than the reason: for a failure,
        /// the cause a technician reads (a connect that failed names each transport tried).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// A GPT-Live session's voice time and costs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        live: Option<LiveTotals>,
    },
    ScanRefused {
        /// Short machine-readable cause: `rate_limited`, `daily_budget`, `breaker_open`, ...
        cause: String,
    },
    Alert {
        /// Stable code for dashboards: `daily_budget_reached`, `store_recovered`, ...
        code: String,
        severity: Severity,
        message: String,
    },
    Heartbeat {
        /// Free-form health snapshot (version, uptime, backlog, adapters, breaker, disk).
        health: serde_json::Value,
    },
}

impl EventPayload {
    /// A `SessionEnded`'s whole cost (Realtime tokens, or GPT-Live voice plus delegation);
    /// `None` for other events.
    pub fn ended_cost(&self) -> Option<NanoUsd> {
        match self {
            EventPayload::SessionEnded { cost, live, .. } => {
                Some(cost.total() + live.map_or(NanoUsd::ZERO, |l| l.total()))
            }
            _ => None,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            EventPayload::SessionStarted { .. } => EventKind::SessionStarted,
            EventPayload::SessionConnected { .. } => EventKind::SessionConnected,
            EventPayload::ResponseUsage { .. } => EventKind::ResponseUsage,
            EventPayload::TranscriptionUsage { .. } => EventKind::TranscriptionUsage,
            EventPayload::LiveUsage { .. } => EventKind::LiveUsage,
            EventPayload::DelegationUsage { .. } => EventKind::DelegationUsage,
            EventPayload::SessionEnded { .. } => EventKind::SessionEnded,
            EventPayload::ScanRefused { .. } => EventKind::ScanRefused,
            EventPayload::Alert { .. } => EventKind::Alert,
            EventPayload::Heartbeat { .. } => EventKind::Heartbeat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_tag_matches_kind_column() {
        let samples = [
            EventPayload::SessionConnected { connect_ms: 12 },
            EventPayload::SessionEnded {
                reason: EndReason::Goodbye,
                duration_ms: 1,
                tokens: TokenCounts::default(),
                cost: CostBreakdown::default(),
                detail: Some("why".into()),
                live: None,
            },
            EventPayload::Alert {
                code: "x".into(),
                severity: Severity::Warning,
                message: "m".into(),
            },
        ];
        for p in samples {
            let v = serde_json::to_value(&p).unwrap();
            assert_eq!(v["kind"], p.kind().as_str());
            assert_eq!(EventKind::parse(p.kind().as_str()), Some(p.kind()));
        }
    }

    #[test]
    fn money_fields_are_integer_nanos() {
        let cost = CostBreakdown {
            input_audio_nusd: NanoUsd(416_000),
            ..Default::default()
        };
        let v = serde_json::to_value(cost).unwrap();
        assert_eq!(v["input_audio_nusd"], 416_000);
        assert_eq!(cost.total(), NanoUsd(416_000));
    }

    #[test]
    fn costs_and_session_bounds_are_never_dropped_first() {
        for k in EventKind::ALL {
            let critical = matches!(
                k,
                EventKind::SessionStarted
                    | EventKind::SessionEnded
                    | EventKind::ResponseUsage
                    | EventKind::TranscriptionUsage
                    | EventKind::LiveUsage
                    | EventKind::DelegationUsage
            );
            assert_eq!(k.importance() == Importance::Critical, critical, "{k:?}");
        }
    }
}
