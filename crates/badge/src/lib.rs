//! Badge scanners: serial and HID readers, keyed badge hashing, member lookup and cache.
//! The frame parser and the member types are the core's (`jarvis_core::badge`).
//!
//! Data flow: a reader thread (serial or HID) turns device bytes into [`Scan`]s with the
//! pure [`jarvis_core::badge::frame::FrameParser`] and sends them on a bounded tokio channel; the lifecycle core
//! receives them, applies debounce and rate limits, and asks [`cache::MemberLookup`] who the
//! member is. Raw badge values stay inside [`Badge`] (masked when printed); anything stored
//! or logged uses the keyed [`jarvis_core::badge::BadgeHash`].

pub mod cache;
pub mod devices;
pub mod doctor;
pub mod hash;
pub mod hid;
pub mod keymap;
pub mod reconnect;
pub mod serial;

use tokio::sync::mpsc;

use jarvis_config::{BadgeConfig, BadgeSource};
use jarvis_core::badge::Badge;
use jarvis_core::health::{AdapterState, Health};

pub use cache::{LookupOutcome, MemberLookup};
pub use doctor::doctor_checks;
pub use hash::BadgeHasher;

/// Health adapter name of the badge scanner, as shown by `status` and `doctor`.
pub const HEALTH_ADAPTER: &str = "scanner";
/// Health counter: discarded runs of scanner input (garbage, overlong, cut-off frames).
pub const COUNTER_DISCARDED: &str = "badge_frames_discarded";
/// Health counter: bytes (serial) or key presses (HID) read from the scanner. Rising with no
/// badges means the framing rules do not match what the scanner sends.
pub const COUNTER_INPUT: &str = "scanner_input_read";
/// Health counter: badges read from the scanner.
pub const COUNTER_SCANS: &str = "badge_scans";
/// Health counter: failed opens and reads of the scanner (each reopen attempt while it is
/// missing counts one).
pub const COUNTER_DEVICE_ERRORS: &str = "scanner_device_errors";
/// Health counter: times the scanner came back after a disconnect.
pub const COUNTER_RECONNECTS: &str = "scanner_reconnects";
/// Health gauge: wall-clock time of the last badge read, in Unix milliseconds.
pub const GAUGE_LAST_SCAN_MS: &str = "scanner_last_scan_ms";

/// One badge read by a scanner: what readers send to the lifecycle core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub badge: Badge,
    /// Monotonic time of the read (`clock::mono_ms`): the session's connect time counts from it.
    pub read_at_ms: u64,
}

/// A running reader thread. Dropping it leaves the thread running until the scan receiver
/// is dropped; [`ReaderHandle::stop`] ends it promptly.
#[derive(Debug)]
pub struct ReaderHandle {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ReaderHandle {
    pub(crate) fn new(
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: std::thread::JoinHandle<()>,
    ) -> Self {
        ReaderHandle { stop, thread }
    }

    /// Asks the thread to stop and waits for it (at most one read timeout, about 100 ms).
    pub fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::error!("badge reader thread panicked");
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts the reader `badge.source` asks for, on its own thread (blocking device reads never
/// run on a tokio worker). Returns `None` for `badge.source = "none"` (health: disabled).
/// The thread never gives up on a missing device: it reports `scanner` as degraded and
/// reopens with backoff. It ends when the receiver of `scans` is dropped or on `stop()`.
pub fn spawn_reader(
    cfg: &BadgeConfig,
    health: &Health,
    scans: mpsc::Sender<Scan>,
) -> std::io::Result<Option<ReaderHandle>> {
    match cfg.source {
        BadgeSource::Serial => serial::spawn(
            serial::SerialSettings::from_config(cfg),
            health.clone(),
            scans,
        )
        .map(Some),
        BadgeSource::Hid => {
            hid::spawn(hid::HidSettings::from_config(cfg), health.clone(), scans).map(Some)
        }
        BadgeSource::None => {
            health.set_adapter(
                HEALTH_ADAPTER,
                AdapterState::Disabled("badge.source = \"none\"".into()),
            );
            Ok(None)
        }
    }
}
