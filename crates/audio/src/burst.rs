//! How much the output device takes at once (pure: time is an input).
//!
//! The playback thread refills the ring each time it wakes up; what the device drains between
//! two wake-ups must already be in the ring, or the device plays silence. A card with 20 ms
//! periods takes 20 ms per wake-up; a large-period HDMI or USB card, or a sink paced in 100 ms
//! steps, takes 100 ms at once. The configured period says neither, so the thread measures:
//! [`DeviceBurst`] keeps the largest amount drained at once over the last one to two windows,
//! and the ring is kept that full plus a margin. "At once" is what drained between two
//! wake-ups, summed over wake-ups that follow each other within [`BURST_GAP_MS`] (the thread
//! may wake in the middle of a burst: the burst is still the whole). The first
//! [`WARM_UP_MS`] are not measured: opening a device fills its buffers at once (the 64 KiB
//! pipe in front of a `pv` sink takes 340 ms), which says nothing of how it drains after.

/// Wake-ups closer than this belong to the same burst (the thread wakes at least every 5 ms
/// while playing).
pub const BURST_GAP_MS: u64 = 4;
/// Time after the first observation during which drains are not measured.
pub const WARM_UP_MS: u64 = 1_000;

/// Largest amount the device drained at once, over a sliding window.
#[derive(Debug, Clone)]
pub struct DeviceBurst {
    floor: u64,
    window_ms: u64,
    /// Total drained and time at the last observation.
    last: Option<(u64, u64)>,
    measure_from_ms: u64,
    run: u64,
    window_start_ms: u64,
    current_max: u64,
    previous_max: u64,
}

impl DeviceBurst {
    /// `floor_frames`: never report less (the device's period); `window_ms`: how long a
    /// measured burst is remembered (between one and two windows).
    pub fn new(floor_frames: u64, window_ms: u64) -> Self {
        DeviceBurst {
            floor: floor_frames,
            window_ms,
            last: None,
            measure_from_ms: 0,
            run: 0,
            window_start_ms: 0,
            current_max: 0,
            previous_max: 0,
        }
    }

    /// Records the device's running total of frames drained, read at a wake-up at `now_ms`.
    pub fn observe(&mut self, drained_total: u64, now_ms: u64) {
        if now_ms.saturating_sub(self.window_start_ms) >= self.window_ms {
            self.previous_max = self.current_max;
            self.current_max = 0;
            self.window_start_ms = now_ms;
        }
        match self.last {
            None => self.measure_from_ms = now_ms.saturating_add(WARM_UP_MS),
            Some((total, at)) => {
                let drained = drained_total.saturating_sub(total);
                if drained > 0 && now_ms.saturating_sub(at) < BURST_GAP_MS {
                    self.run += drained;
                } else {
                    self.run = drained;
                }
                if now_ms >= self.measure_from_ms {
                    self.current_max = self.current_max.max(self.run);
                }
            }
        }
        self.last = Some((drained_total, now_ms));
    }

    /// Frames the ring must hold at a wake-up so the device never runs dry before the next.
    pub fn frames(&self) -> u64 {
        self.floor.max(self.current_max).max(self.previous_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_at_the_period_and_learns_bursts_after_the_warm_up() {
        let mut b = DeviceBurst::new(960, 2_000);
        assert_eq!(b.frames(), 960);
        b.observe(0, 0);
        b.observe(16_384, 1);
        assert_eq!(b.frames(), 960, "the device's buffers filling at open");
        b.observe(16_384 + 960, WARM_UP_MS);
        assert_eq!(b.frames(), 960);
        b.observe(16_384 + 960 + 4_800, WARM_UP_MS + 100);
        assert_eq!(b.frames(), 4_800, "a 100 ms burst");
    }

    #[test]
    fn a_burst_split_by_a_wake_up_counts_whole() {
        let mut b = DeviceBurst::new(960, 2_000);
        b.observe(0, 0);
        let t = WARM_UP_MS + 20;
        b.observe(960, t);
        b.observe(960 + 1_920, t + 80);
        b.observe(960 + 4_800, t + 81);
        assert_eq!(b.frames(), 4_800);
        b.observe(960 + 4_800 + 960, t + 90);
        b.observe(960 + 4_800 + 1_920, t + 110);
        assert_eq!(b.frames(), 4_800, "steady drains do not add up");
    }

    #[test]
    fn a_burst_is_forgotten_after_two_quiet_windows() {
        let mut b = DeviceBurst::new(960, 1_000);
        b.observe(0, 0);
        b.observe(0, WARM_UP_MS);
        b.observe(4_800, WARM_UP_MS + 100);
        let mut total = 4_800;
        for t in (120..=1_900).step_by(20) {
            total += 960;
            b.observe(total, WARM_UP_MS + t);
        }
        assert_eq!(b.frames(), 4_800, "still within the previous window");
        for t in (1_920..=2_100).step_by(20) {
            total += 960;
            b.observe(total, WARM_UP_MS + t);
        }
        assert_eq!(b.frames(), 960);
    }

    proptest! {
        /// The measure is at least the floor and at least every drain of the last window.
        #[test]
        fn covers_every_recent_drain(drains in proptest::collection::vec((0u64..10_000, 1u64..200), 1..200)) {
            let mut b = DeviceBurst::new(480, 1_000);
            let (mut total, mut now) = (0u64, WARM_UP_MS);
            b.observe(total, 0);
            for (d, dt) in drains {
                total += d;
                now += dt;
                b.observe(total, now);
                prop_assert!(b.frames() >= d.max(480));
            }
        }
    }
}
