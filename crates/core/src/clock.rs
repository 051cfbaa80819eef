//! The one place the kiosk reads time. The core's logic never calls it: it takes a [`Now`]
//! (or plain milliseconds) as input; the adapters and the daemon read it here, so every
//! timestamp in the store, health and central uses the same clock and tests can replace it.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::session::Now;

/// A wall clock, milliseconds since the Unix epoch. The store takes one so tests can move time.
pub type WallClock = fn() -> i64;

/// Wall-clock milliseconds since the Unix epoch: event timestamps, the budget day, records.
pub fn wall_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Monotonic milliseconds since the first call in this process: timers and durations, which
/// a wall-clock step (NTP, a technician setting the date) must not stretch or shrink.
pub fn mono_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    u64::try_from(ORIGIN.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Both readings, as the session core takes them.
pub fn now() -> Now {
    Now {
        mono_ms: mono_ms(),
        wall_ms: wall_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back_and_wall_is_after_2020() {
        let a = now();
        let b = now();
        assert!(b.mono_ms >= a.mono_ms);
        assert!(a.wall_ms > 1_577_836_800_000, "{}", a.wall_ms);
    }
}
