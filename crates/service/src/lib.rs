//! What the fleet's central services (`jarvis-broker`, `jarvis-dashboard`) share beyond the
//! central connection (`jarvis_sync::conn`, `jarvis_sync::shared`): their log set-up.

pub mod telemetry;
