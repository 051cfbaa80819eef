//! Central Postgres against the real server, in one test binary (link time and disk):
//! schema and scripts, the kiosk role's denials, and the sync worker under faults.

mod central_support;
mod support;

#[path = "central/crashed.rs"]
mod crashed;
#[path = "central/directory.rs"]
mod directory;
#[path = "central/live.rs"]
mod live;
#[path = "central/schema.rs"]
mod schema;
#[path = "central/security.rs"]
mod security;
#[path = "central/setup_stall.rs"]
mod setup_stall;
#[path = "central/sync.rs"]
mod sync;
