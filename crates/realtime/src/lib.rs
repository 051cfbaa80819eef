//! OpenAI Realtime over WebRTC: credentials, SDP exchange, peer connection, typed events.
//! The circuit breaker in front of it is the core's (`jarvis_core::breaker`).

pub mod calls;
pub mod credentials;
pub mod doctor;
pub mod http;
pub mod live;
pub mod peer;
pub mod protocol;
pub mod session_update;
pub mod test_call;
