//! Central Postgres sync: batching and retry policy (no I/O), writer, heartbeats.
