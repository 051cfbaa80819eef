//! Central Postgres sync: writer, heartbeats, member directory. The batching and retry
//! policy is the core's (`jarvis_core::sync_policy`).
//!
//! The local outbox is the source of truth; this worker ships it to the central
//! `kiosk_events` table exactly once (UUID event ids + `ON CONFLICT DO NOTHING`) and in
//! sequence order, marking events synced only after the statement that inserted them
//! committed. The central schema lives in `sql/central/` (applied by
//! `scripts/central-migrate.sh`), kiosks are registered by `scripts/central-add-kiosk.sh`.
//!
//! Wiring in the daemon:
//! * [`run`]`(cfg, store, health, shutdown)`, under the daemon's supervisor, ships the outbox
//!   and writes heartbeats; it never fails: problems show as `central` degraded.
//! * [`members::CentralDirectory`] is the core's `MemberDirectory` for central.
//! * [`doctor::check`] is the `doctor` line.

pub mod conn;
pub mod doctor;
pub mod heartbeat;
pub mod isolate;
pub mod members;
pub mod schema;
pub mod shared;
pub mod worker;
pub mod writer;

pub use worker::{COUNTER_RECONNECTS, SyncSettings, run, run_with_target};
