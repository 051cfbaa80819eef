//! The JSON events on the `oai-events` data channel (GA protocol only), typed with serde.
//!
//! Receiving: [`decode`] turns one text message into a [`Decoded`]; it never fails hard,
//! because an unknown or malformed event must not end a member's conversation. The caller
//! counts `Unknown` and `Malformed` (health counters) and logs the first `Malformed` of a
//! session. [`Translator`] then reduces events to the few [`RealtimeSignal`]s the lifecycle
//! core consumes, with each usage already priced.
//!
//! Sending: build a [`ClientEvent`] (see also `session_update::build`) and send
//! [`ClientEvent::to_json`] as a text message.

mod client;
mod server;
mod session;
mod signal;

pub use client::{ClientEvent, ClientItem, ResponseParams};
pub use server::{
    CachedTokenDetails, ContentPart, ErrorDetail, IGNORED_TYPES, InputTokenDetails, Item,
    OutputTokenDetails, RateLimit, Response, ResponseStatus, ServerEvent, StatusDetails, Usage,
    WithRaw,
};
pub use session::{
    AudioFormat, AudioInput, AudioOutput, Eagerness, Inf, InputTranscription, MaxOutputTokens,
    Modality, NoiseReduction, NoiseReductionKind, Session, SessionAudio, SessionKind, Tool,
    ToolChoice, TurnDetection, Voice,
};
pub use signal::{END_SESSION_TOOL, RealtimeSignal, Translator, UsageSource};

use serde::de::DeserializeOwned;

/// Longest error text kept from a malformed event (no transcript-sized payloads in logs).
const MAX_ERROR_LEN: usize = 200;

/// What one data-channel text message turned out to be (a Realtime [`ServerEvent`], or
/// another protocol's event type `E`: GPT-Live's, in `crate::live`).
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<E = ServerEvent> {
    /// An event the kiosk acts on.
    Event(E),
    /// A GA event the kiosk deliberately does not act on (item bookkeeping, deltas, ...).
    Ignored { kind: String },
    /// A `type` this build does not know: ignored and counted, never fatal.
    Unknown { kind: String },
    /// Not JSON, no `type`, or a known `type` with the wrong shape: counted, logged once per
    /// session by the caller, never fatal.
    Malformed { error: String },
}

/// Decodes one text message received on `oai-events`.
pub fn decode(text: &str) -> Decoded {
    decode_as(text, &ServerEvent::TYPES, &IGNORED_TYPES)
}

/// Decodes one text message as an event `E` when its `type` is one of `known`; `ignored`
/// types are deliberately left alone, any other is `Unknown`.
pub fn decode_as<E: DeserializeOwned>(text: &str, known: &[&str], ignored: &[&str]) -> Decoded<E> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return malformed(format!("not JSON: {e}")),
    };
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return malformed("no string `type` field".into());
    };
    if known.contains(&kind) {
        let kind = kind.to_owned();
        match E::deserialize(value) {
            Ok(event) => Decoded::Event(event),
            Err(e) => malformed(format!("`{kind}`: {e}")),
        }
    } else if ignored.contains(&kind) {
        Decoded::Ignored {
            kind: kind.to_owned(),
        }
    } else {
        Decoded::Unknown {
            kind: kind.chars().take(MAX_ERROR_LEN).collect(),
        }
    }
}

fn malformed<E>(mut error: String) -> Decoded<E> {
    if let Some((cut, _)) = error.char_indices().nth(MAX_ERROR_LEN) {
        error.truncate(cut);
        error.push('…');
    }
    Decoded::Malformed { error }
}

#[cfg(test)]
mod tests;
