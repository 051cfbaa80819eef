//! OpenAI Realtime over WebRTC: credentials, SDP exchange, peer connection, typed events, breaker.

pub mod peer;
