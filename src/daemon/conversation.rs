//! The driver's handle on a conversation: it starts the task of the configured backend
//! (Realtime or GPT-Live) and carries the core's commands and the microphone to it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use jarvis_audio::OpusFrame;
use jarvis_config::VoiceApi;
use jarvis_core::session::{RealtimeCommand, SessionContext};

use super::call::Command;
pub use super::call::{ConversationEvent, RealtimeDeps};
pub use super::realtime_call::USAGE_GRACE;

/// Microphone frames that may wait for the peer (100 ms); older ones are dropped, not delayed.
const AUDIO_QUEUE: usize = 5;

/// The driver's side of a running conversation.
pub struct Conversation {
    commands: mpsc::Sender<Command>,
    audio: mpsc::Sender<OpusFrame>,
}

impl Conversation {
    /// Starts the conversation task for `session_id`.
    pub fn start(
        deps: Arc<RealtimeDeps>,
        session_id: Uuid,
        context: SessionContext,
        reports: mpsc::Sender<ConversationEvent>,
    ) -> Conversation {
        let (commands, command_rx) = mpsc::channel(16);
        let (audio, audio_rx) = mpsc::channel(AUDIO_QUEUE);
        // Called inside the session's span by the driver: the task logs with SESSION_ID.
        match deps.cfg.api {
            VoiceApi::Realtime => tokio::spawn(
                super::realtime_call::run(deps, session_id, context, reports, command_rx, audio_rx)
                    .in_current_span(),
            ),
            VoiceApi::Live => tokio::spawn(
                super::live_call::run(deps, session_id, context, reports, command_rx, audio_rx)
                    .in_current_span(),
            ),
        };
        Conversation { commands, audio }
    }

    /// Queues a client event from the core; a closed conversation ignores it.
    pub fn send(&self, command: &RealtimeCommand) {
        let _ = self.commands.try_send(Command::Core(command.clone()));
    }

    pub fn hang_up(&self) {
        let _ = self.commands.try_send(Command::HangUp);
    }

    /// Where microphone frames for this conversation go: the driver's microphone task sends
    /// with `try_send`, dropping a frame when the peer is behind (never blocks).
    pub fn audio_sink(&self) -> mpsc::Sender<OpusFrame> {
        self.audio.clone()
    }
}
