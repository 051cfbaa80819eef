//! What a conversation task shares with the other backend's: its long-lived dependencies,
//! what the driver sends it, and how it reports back (core inputs, the connection's outcome
//! for the breaker, unpriced usage).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use uuid::Uuid;

use jarvis_audio::Playback;
use jarvis_config::OpenAiConfig;
use jarvis_core::breaker::Failure;
use jarvis_core::health::Health;
use jarvis_core::metering::{MeteringError, Pricing};
use jarvis_core::session::{FailureKind, Input, RealtimeCommand, SessionContext};
use jarvis_realtime::credentials::Credentials;
use jarvis_realtime::http::{self, CallError};
use jarvis_realtime::session_update::{InstructionsTemplate, MemberContext};

/// Everything a conversation needs that outlives it.
pub struct RealtimeDeps {
    pub cfg: OpenAiConfig,
    pub http: http::HttpClient,
    /// `Err` holds why no credential could be loaded (shown to support on every connect).
    pub credentials: Result<Credentials, String>,
    pub pricing: Arc<Pricing>,
    pub template: InstructionsTemplate,
    /// GPT-Live: the delegation model's prompt (`openai.live.delegation_instructions_file`).
    pub delegation_instructions: String,
    pub playback: Arc<Playback>,
    pub health: Health,
    /// `log.transcripts`: log what members and JARVIS say (off by default: privacy).
    pub log_transcripts: bool,
}

/// What a conversation tells the driver besides core inputs: breaker outcomes.
#[derive(Debug)]
pub enum ConversationEvent {
    Input(Input),
    /// The connection attempt ended: `Ok` once the data channel opened.
    Connect(Result<(), Failure>),
    /// A usage the pricing table could not price: alert, loudly.
    Unpriced {
        session_id: Uuid,
        /// The alert code: `unpriced_model` or `usage_overflow`.
        code: &'static str,
        /// The cause and its fix.
        message: String,
    },
}

/// The alert for a usage that could not be priced: a missing price is fixed in the config; an
/// absurd usage (its cost overflowing) is kept with its raw counts, never capped.
pub(super) fn unpriced(session_id: Uuid, what: &str, error: &MeteringError) -> ConversationEvent {
    let (code, fix) = match error {
        MeteringError::Overflow { .. } => (
            "usage_overflow",
            "the usage is recorded uncosted with its raw counts; report it to OpenAI support",
        ),
        _ => ("unpriced_model", "add pricing.\"<model>\" to the config"),
    };
    ConversationEvent::Unpriced {
        session_id,
        code,
        message: format!("{what}: {error}: {fix}"),
    }
}

/// What the driver asks of a running conversation.
#[derive(Debug)]
pub(super) enum Command {
    /// A client event the core decided, translated by the backend's task.
    Core(RealtimeCommand),
    HangUp,
}

/// How much earlier than the session's connect deadline the peer gives up, so its account of
/// the transports tried reaches the core before the core's own timer ends the session.
pub(super) const PEER_DEADLINE_MARGIN: Duration = Duration::from_millis(300);

/// How a conversation task reports to the driver: core inputs for its session, and the
/// connection's outcome for the breaker.
pub(super) struct Reporter {
    session_id: Uuid,
    reports: mpsc::Sender<ConversationEvent>,
}

impl Reporter {
    pub(super) fn new(session_id: Uuid, reports: &mpsc::Sender<ConversationEvent>) -> Self {
        Reporter {
            session_id,
            reports: reports.clone(),
        }
    }

    pub(super) async fn send(&self, r: ConversationEvent) {
        let _ = self.reports.send(r).await;
    }

    /// The connection is up: the breaker hears success, the core that the session runs.
    pub(super) async fn connected(&self) {
        self.send(ConversationEvent::Connect(Ok(()))).await;
        self.send(ConversationEvent::Input(Input::RealtimeConnected {
            session_id: self.session_id,
        }))
        .await;
    }

    /// The session's one failure.
    pub(super) async fn failed(&self, kind: FailureKind, reason: String) {
        self.send(ConversationEvent::Input(Input::RealtimeFailed {
            session_id: self.session_id,
            kind,
            reason,
        }))
        .await;
    }

    /// A connection that could not be set up. A broker refusal is no outage: the path to
    /// OpenAI works and the fleet said no, so the breaker hears success and the core the
    /// refusal; anything else counts for the breaker.
    pub(super) async fn connect_failed(&self, e: CallError) {
        match e {
            CallError::Refused { refusal, .. } => {
                tracing::warn!(cause = refusal.cause(), "session refused by the broker");
                self.send(ConversationEvent::Connect(Ok(()))).await;
                self.failed(FailureKind::Refused(refusal), refusal.cause().into())
                    .await;
            }
            e => {
                tracing::warn!(error = %e, "the connection could not be set up");
                self.send(ConversationEvent::Connect(Err(e.breaker_failure())))
                    .await;
                self.failed(FailureKind::ConnectFailed, e.cause()).await;
            }
        }
    }

    /// The peer connection closed: before the session ran, a failed connect for the breaker;
    /// after, a lost connection.
    pub(super) async fn closed(&self, reason: String, was_running: bool) {
        tracing::warn!(reason, "connection closed");
        if was_running {
            self.failed(FailureKind::ConnectionLost, reason).await;
        } else {
            self.send(ConversationEvent::Connect(Err(Failure {
                cause: reason.clone(),
                retry_after: None,
            })))
            .await;
            self.failed(FailureKind::ConnectFailed, reason).await;
        }
    }
}

/// Who the session is for, as the instructions template reads it.
pub(super) fn member_context(context: &SessionContext) -> MemberContext<'_> {
    MemberContext {
        first_name: context.first_name.as_deref(),
        language: context.language.as_deref().unwrap_or("fr"),
        membership: context.membership,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflowing_usage_is_its_own_alert_and_keeps_its_raw_counts() {
        let id = Uuid::nil();
        let overflow = MeteringError::Overflow {
            model: "gpt-realtime".into(),
            what: "output audio",
            counts: "output_audio_tokens=18446744073709551615".into(),
        };
        let ConversationEvent::Unpriced { code, message, .. } =
            unpriced(id, "usage of r1", &overflow)
        else {
            panic!("an alert");
        };
        assert_eq!(code, "usage_overflow");
        assert!(message.contains("18446744073709551615"), "{message}");
        assert!(!message.contains("add pricing"), "{message}");

        let missing = MeteringError::UnknownModel {
            model: "gpt-next".into(),
        };
        let ConversationEvent::Unpriced { code, message, .. } =
            unpriced(id, "usage of r2", &missing)
        else {
            panic!("an alert");
        };
        assert_eq!(code, "unpriced_model");
        assert!(message.contains("add pricing"), "{message}");
    }
}
