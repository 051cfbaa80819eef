//! Half-duplex echo control (pure): while JARVIS is speaking, and for a short tail after it
//! stops (room echo, the device buffer still draining), microphone frames are replaced by
//! silence so the Realtime API never hears JARVIS's own voice and answers itself.
//!
//! The price is that a member cannot interrupt JARVIS by voice while it speaks (barge-in only
//! works with `echo_control = "off"` on a headset-like setup, or with real AEC).

/// Decides, frame by frame, whether the microphone is muted. Time is an input (milliseconds on
/// any monotonic clock).
#[derive(Debug, Clone)]
pub struct HalfDuplexGate {
    tail_ms: u64,
    muted_until_ms: Option<u64>,
}

impl HalfDuplexGate {
    /// `tail_ms` is `audio.half_duplex_tail_ms`.
    pub fn new(tail_ms: u64) -> Self {
        HalfDuplexGate {
            tail_ms,
            muted_until_ms: None,
        }
    }

    /// True when the frame captured at `now_ms` must be muted, given whether JARVIS is speaking.
    pub fn is_muted(&mut self, speaking: bool, now_ms: u64) -> bool {
        if speaking {
            self.muted_until_ms = Some(now_ms.saturating_add(self.tail_ms));
            return true;
        }
        match self.muted_until_ms {
            Some(until) if now_ms < until => true,
            Some(_) => {
                self.muted_until_ms = None;
                false
            }
            None => false,
        }
    }

    /// Zeroes `frame` when muted; returns whether it did.
    pub fn apply(&mut self, frame: &mut [f32], speaking: bool, now_ms: u64) -> bool {
        let muted = self.is_muted(speaking, now_ms);
        if muted {
            frame.fill(0.0);
        }
        muted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn open_when_nobody_speaks() {
        let mut g = HalfDuplexGate::new(300);
        let mut f = [0.5; 4];
        assert!(!g.apply(&mut f, false, 0));
        assert_eq!(f, [0.5; 4]);
    }

    #[test]
    fn muted_while_speaking_and_for_the_tail() {
        let mut g = HalfDuplexGate::new(300);
        let mut f = [0.5; 4];
        assert!(g.apply(&mut f, true, 1_000));
        assert_eq!(f, [0.0; 4]);
        assert!(g.is_muted(false, 1_020));
        assert!(g.is_muted(false, 1_299));
        assert!(!g.is_muted(false, 1_300));
        assert!(!g.is_muted(false, 1_301));
    }

    #[test]
    fn the_tail_restarts_from_the_last_speech() {
        let mut g = HalfDuplexGate::new(100);
        g.is_muted(true, 0);
        g.is_muted(true, 500);
        assert!(g.is_muted(false, 599));
        assert!(!g.is_muted(false, 600));
    }

    #[test]
    fn zero_tail_opens_immediately() {
        let mut g = HalfDuplexGate::new(0);
        assert!(g.is_muted(true, 10));
        assert!(!g.is_muted(false, 10));
    }

    proptest! {
        /// Muted exactly when speech happened within the last `tail` ms.
        #[test]
        fn matches_the_reference(tail in 0u64..1_000, steps in proptest::collection::vec((any::<bool>(), 0u64..200), 1..200)) {
            let mut g = HalfDuplexGate::new(tail);
            let mut now = 0;
            let mut last_speech: Option<u64> = None;
            for (speaking, dt) in steps {
                now += dt;
                if speaking { last_speech = Some(now); }
                let expected = speaking || last_speech.is_some_and(|t| now < t + tail);
                prop_assert_eq!(g.is_muted(speaking, now), expected);
            }
        }
    }
}
