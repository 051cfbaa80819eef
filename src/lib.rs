//! `jarvis-kiosk`: the daemon that runs on every gym kiosk of the JARVIS network.
//!
//! A member scans a badge, JARVIS greets them and talks with them through the OpenAI Realtime
//! API over WebRTC, and when they say goodbye the session's cost is recorded locally and
//! synced to the central Postgres exactly once. See ARCHITECTURE.md for the module map.

pub mod cli;
pub mod daemon;
pub mod health;
pub mod telemetry;
