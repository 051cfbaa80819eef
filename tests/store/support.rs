//! Shared builders for the store integration tests.

use std::cell::Cell;
use std::path::Path;

use jarvis_core::events::{
    CostBreakdown, EndReason, EventPayload, KioskEvent, MembershipStatus, Severity, TokenCounts,
};
use jarvis_core::money::NanoUsd;
use jarvis_store::{IntegrityCheck, StoreOptions};
use uuid::Uuid;

thread_local! {
    static NOW: Cell<i64> = const { Cell::new(1_795_000_000_000) };
}

/// A clock the test drives (per thread, so parallel tests do not interfere).
pub fn test_clock() -> i64 {
    NOW.with(|c| c.get())
}

pub fn set_now(ms: i64) {
    NOW.with(|c| c.set(ms));
}

pub fn advance(ms: i64) {
    NOW.with(|c| c.set(c.get() + ms));
}

pub fn options(path: &Path) -> StoreOptions {
    StoreOptions {
        path: path.to_path_buf(),
        max_bytes: 256 * 1024 * 1024,
        check: IntegrityCheck::Quick,
        busy_timeout: std::time::Duration::from_secs(5),
        pressure_alert_interval_ms: 60_000,
        clock: test_clock,
    }
}

pub fn started(sid: Uuid, at: i64) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::SessionStarted {
            member_id: Some("m-42".into()),
            badge_hash: None,
            membership: MembershipStatus::Active,
            model: "gpt-realtime".into(),
        },
    )
}

pub fn cost(input_audio: u64, output_audio: u64) -> CostBreakdown {
    CostBreakdown {
        input_audio_nusd: NanoUsd(input_audio),
        output_audio_nusd: NanoUsd(output_audio),
        input_text_nusd: NanoUsd(7),
        output_text_nusd: NanoUsd(11),
        transcription_nusd: NanoUsd(0),
    }
}

pub fn usage(sid: Uuid, at: i64, cost: CostBreakdown) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::ResponseUsage {
            response_id: format!("resp_{at}"),
            model: "gpt-realtime".into(),
            tokens: TokenCounts {
                input_text: 10,
                input_audio: 100,
                cached_audio: 40,
                output_text: 5,
                output_audio: 200,
                ..Default::default()
            },
            cost,
            raw_usage: serde_json::json!({"total_tokens": 315}),
        },
    )
}

pub fn transcription(sid: Uuid, at: i64, nusd: u64) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::TranscriptionUsage {
            item_id: format!("item_{at}"),
            model: "gpt-4o-transcribe".into(),
            cost: CostBreakdown {
                transcription_nusd: NanoUsd(nusd),
                ..Default::default()
            },
            raw_usage: serde_json::json!({"seconds": 3}),
        },
    )
}

pub fn ended(sid: Uuid, at: i64, duration_ms: u64) -> KioskEvent {
    KioskEvent::new(
        Some(sid),
        at,
        EventPayload::SessionEnded {
            reason: EndReason::Goodbye,
            duration_ms,
            tokens: TokenCounts::default(),
            cost: CostBreakdown::default(),
            detail: None,
            live: None,
        },
    )
}

/// A low-importance event of roughly `pad` payload bytes.
pub fn heartbeat(at: i64, pad: usize) -> KioskEvent {
    KioskEvent::new(
        None,
        at,
        EventPayload::Heartbeat {
            health: serde_json::json!({"pad": "x".repeat(pad)}),
        },
    )
}

/// A normal-importance event of roughly `pad` payload bytes.
pub fn alert(at: i64, pad: usize) -> KioskEvent {
    KioskEvent::new(
        None,
        at,
        EventPayload::Alert {
            code: "test".into(),
            severity: Severity::Info,
            message: "y".repeat(pad),
        },
    )
}

pub fn alerts_with_code(events: &[jarvis_store::StoredEvent], code: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(&e.event.payload, EventPayload::Alert { code: c, .. } if c == code))
        .count()
}
