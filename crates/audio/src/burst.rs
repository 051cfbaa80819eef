//! How much the output device takes at once (pure: time is an input).
//!
//! The playback thread refills the ring each time it wakes up; what the device drains between
//! two wake-ups must already be in the ring, or the device plays silence. A card with 20 ms
//! periods takes 20 ms per wake-up; a large-period HDMI or USB card, or a sink paced in 100 ms
//! steps, takes 100 ms at once. The configured period says neither, so the thread measures:
//! [`DeviceBurst`] keeps the largest amount drained between two wake-ups over the last one to
//! two windows, and the ring is kept that full plus a margin.

/// Largest amount the device drained between two observations, over a sliding window.
#[derive(Debug, Clone)]
pub struct DeviceBurst {
    floor: u64,
    window_ms: u64,
    last_total: Option<u64>,
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
            last_total: None,
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
        if let Some(last) = self.last_total {
            self.current_max = self.current_max.max(drained_total.saturating_sub(last));
        }
        self.last_total = Some(drained_total);
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
    fn starts_at_the_period_and_learns_bursts() {
        let mut b = DeviceBurst::new(960, 2_000);
        assert_eq!(b.frames(), 960);
        b.observe(0, 0);
        b.observe(960, 20);
        assert_eq!(b.frames(), 960);
        b.observe(960 + 4_800, 120);
        assert_eq!(b.frames(), 4_800, "a 100 ms burst");
    }

    #[test]
    fn a_burst_is_forgotten_after_two_quiet_windows() {
        let mut b = DeviceBurst::new(960, 1_000);
        b.observe(0, 0);
        b.observe(4_800, 100);
        let mut total = 4_800;
        for t in (120..=1_900).step_by(20) {
            total += 960;
            b.observe(total, t);
        }
        assert_eq!(b.frames(), 4_800, "still within the previous window");
        for t in (1_920..=2_100).step_by(20) {
            total += 960;
            b.observe(total, t);
        }
        assert_eq!(b.frames(), 960);
    }

    proptest! {
        /// The measure is at least the floor and at least every drain of the last window.
        #[test]
        fn covers_every_recent_drain(drains in proptest::collection::vec((0u64..10_000, 1u64..200), 1..200)) {
            let mut b = DeviceBurst::new(480, 1_000);
            let (mut total, mut now) = (0u64, 0u64);
            b.observe(total, now);
            for (d, dt) in drains {
                total += d;
                now += dt;
                b.observe(total, now);
                prop_assert!(b.frames() >= d.max(480));
            }
        }
    }
}
