//! `jarvis-broker`: the fleet's session broker. Kiosks hold no OpenAI key: each presents its
//! own bearer token, and the broker checks it (and the kiosk's enablement, budgets and rate)
//! against the central Postgres, mints the ephemeral key with the organisation's key and the
//! fleet's session policy (or relays a GPT-Live SDP offer, since Live has no ephemeral keys),
//! and audits every mint, relay, close and refusal in `broker_audit`.
//!
//! Stateless: all state is in central, so any number of instances serve the same kiosks.
//!
//! - [`config`]: layered configuration (`JARVIS_BROKER__*`).
//! - [`token`]: kiosk tokens and their hashes.
//! - [`policy`]: the decisions, without I/O (refusals, the session the fleet imposes).
//! - [`db`]: central (the standing query, the audit row, kiosk administration).
//! - [`upstream`]: OpenAI with the org key, answers relayed as they came.
//! - [`live`]: the GPT-Live relay routes; [`live_policy`]: the fleet's Live session policy (no I/O).
//! - `realtime` and [`live`]: the routes of each API; `exchange`: what every kiosk request goes
//!   through (state, caller, checks, the audited answer).
//! - [`server`]: the router and the service; [`metrics`]: `/metrics`. Logs: `jarvis_service::telemetry`; every
//!   request line carries `KIOSK_ID` and `SESSION_ID`, so `journalctl -u jarvis-broker SESSION_ID=…`
//!   finds a kiosk's session on the broker too.

pub mod config;
pub mod db;
mod exchange;
pub mod live;
pub mod live_policy;
pub mod metrics;
pub mod policy;
mod realtime;
pub mod server;
pub mod token;
pub mod upstream;
