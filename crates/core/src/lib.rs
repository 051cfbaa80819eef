//! The kiosk's logic without I/O: every decision the daemon makes, as plain state machines and
//! functions. Inputs (time included) in, decisions out; no async runtime, no config loader, no
//! database, WebRTC or audio crate (CI checks `cargo tree` for it), so every rule is tested
//! exhaustively here and the adapters stay thin.

pub mod badge;
pub mod breaker;
pub mod clock;
pub mod config_issue;
pub mod events;
pub mod health;
pub mod metering;
pub mod money;
pub mod retry;
pub mod session;
pub mod sync_policy;

/// The kiosk's version (every crate of the workspace shares it): `--version`, heartbeats, `status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
