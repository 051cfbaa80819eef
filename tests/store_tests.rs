//! Integration tests of the local store (`crates/store`) against real SQLite files, in one test
//! binary: each binary links the whole crate, so one instead of four saves build time and disk.

#[path = "store/bound.rs"]
mod bound;
#[path = "store/crash.rs"]
mod crash;
#[path = "store/crashed_sessions.rs"]
mod crashed_sessions;
#[path = "store/live.rs"]
mod live;
#[path = "store/member_cache.rs"]
mod member_cache;
#[path = "store/outbox.rs"]
mod outbox;
#[path = "store/recovery.rs"]
mod recovery;
#[path = "store/support.rs"]
mod support;
