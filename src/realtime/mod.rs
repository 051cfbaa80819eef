//! OpenAI Realtime over WebRTC: credentials, SDP exchange, peer connection, typed events, breaker.

pub mod breaker;
pub mod calls;
pub mod credentials;
pub mod doctor;
pub mod peer;
pub mod protocol;
pub mod session_update;
