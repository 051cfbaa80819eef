//! `jarvis-kiosk`: the daemon that runs on every gym kiosk of the JARVIS network.
//!
//! A member scans a badge, JARVIS greets them and talks with them through the OpenAI Realtime
//! API over WebRTC, and when they say goodbye the session's cost is recorded locally and
//! synced to the central Postgres exactly once. See ARCHITECTURE.md for the module map.

pub mod audio;
pub mod badge;
pub mod cli;
pub mod config;
pub mod config_issue;
pub mod daemon;
pub mod emulator;
pub mod events;
pub mod health;
pub mod metering;
pub mod money;
pub mod realtime;
pub mod secrets;
pub mod session;
pub mod store;
pub mod sync;
pub mod telemetry;

/// The version printed by `--version`, sent in heartbeats and shown by `status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
