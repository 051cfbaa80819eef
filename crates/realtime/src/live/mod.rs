//! GPT-Live's side of the wire (`../shared/reference/openai-live-webrtc.md`): the JSON body that
//! creates a session with the kiosk's SDP offer, and the events on `oai-events`, typed with serde.
//!
//! GPT-Live is another protocol, not another Realtime model: no ephemeral keys, no turn
//! events, function calls only through delegation, usage in cumulative seconds. Where the
//! reference says "not documented", the types are strict about what the kiosk relies on (an
//! answer without SDP, usage without `seconds`) so a wrong guess fails loudly as `Malformed`
//! instead of mis-billing silently.

mod client;
mod create;
mod events;
pub mod sessions;

pub use client::{LiveClientEvent, LiveItem};
pub use create::{CreateRequest, Created, SessionPolicy, end_session_tool};
pub use events::{
    Delegation, DelegationEvent, FunctionCall, LiveError, LiveServerEvent, LiveSession, LiveUsage,
    ResponsesUsage,
};

use crate::protocol::{Decoded, decode_as};

/// Server events the kiosk does not act on, so they are not counted as unknown.
pub const IGNORED_TYPES: [&str; 8] = [
    "session.updated",
    "session.instructions.appended",
    "session.thinking.appended",
    "session.commentary.appended",
    "session.input_audio.muted",
    "session.input_audio.unmuted",
    "session.paused",
    "session.resumed",
];

/// Decodes one text message received on `oai-events` of a GPT-Live session.
pub fn decode(text: &str) -> Decoded<LiveServerEvent> {
    decode_as(text, &LiveServerEvent::TYPES, &IGNORED_TYPES)
}

#[cfg(test)]
mod tests;
