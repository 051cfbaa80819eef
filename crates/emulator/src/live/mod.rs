//! GPT-Live on the emulator (reference `openai-live-webrtc.md`): `POST /v1/live/sessions`
//! with its JSON `{session, transport}` body and 201 JSON answer, then the Live event contract
//! on `oai-events`, per-second usage, and the faults (an HTTP status such as 429 on creation,
//! `expire-after-ms`, `drop-after-turn`).
//!
//! - [`request`]: the create request, checked strictly (a wrong guess is a 400 naming it);
//! - [`events`]: the JSON shapes of the server events;
//! - [`session`]: the conversation, without I/O (unit- and property-tested);
//! - `run`: one session at run time; `http`: the endpoint.

pub mod events;
pub(crate) mod http;
pub mod request;
mod run;
pub mod session;

use serde::Deserialize;

/// The `[live]` table of a scenario: timing of GPT-Live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveTiming {
    /// Period of `session.usage.updated` (OpenAI: about a minute; tests use less).
    pub usage_interval_ms: u32,
    /// From the data channel opening to `session.started` (a client that sends before it gets
    /// an error).
    pub start_delay_ms: u32,
    /// `expires_at` is this far after creation (measured: about 2 h), unless the
    /// `expire-after-ms` fault says otherwise.
    pub max_duration_s: u32,
}

impl Default for LiveTiming {
    fn default() -> Self {
        Self {
            usage_interval_ms: 60_000,
            start_delay_ms: 50,
            max_duration_s: 7200,
        }
    }
}

impl LiveTiming {
    /// Rejects timings that would flood the channel or never start.
    pub fn validate(&self) -> Result<(), String> {
        if self.usage_interval_ms < 100 {
            return Err(format!(
                "usage_interval_ms must be >= 100, got {}",
                self.usage_interval_ms
            ));
        }
        if self.start_delay_ms > 10_000 || self.max_duration_s == 0 {
            return Err("start_delay_ms must be <= 10000 and max_duration_s > 0".into());
        }
        Ok(())
    }
}
