//! The echo canceller's safety net (pure): when its far-end reference loses alignment with the
//! microphone (the output callback ran late and the reference ran dry, or the microphone
//! overran and lost samples), AEC3 must find the echo path again, and until it has, JARVIS's
//! own voice leaks into the microphone and can make the Realtime API interrupt JARVIS. For a
//! recovery window after each such disruption the microphone is gated as in half duplex while
//! JARVIS is audible; outside it, the member can interrupt JARVIS at any time.

use super::gate::HalfDuplexGate;

/// How long after a disruption the microphone is gated while JARVIS speaks: AEC3 re-estimates
/// the echo path delay in well under a second of far-end speech.
pub const RECOVERY_MS: u64 = 1_500;

/// Decides, frame by frame, whether a disruption's recovery window mutes the microphone.
/// Time is an input (milliseconds on any monotonic clock).
#[derive(Debug, Clone)]
pub struct EchoGuard {
    gate: HalfDuplexGate,
    until_ms: Option<u64>,
    pending: bool,
    engaged: u64,
}

impl EchoGuard {
    /// `tail_ms` is how long after JARVIS stops the gate stays shut (the room's echo tail).
    pub fn new(tail_ms: u64) -> Self {
        EchoGuard {
            gate: HalfDuplexGate::new(tail_ms),
            until_ms: None,
            pending: false,
            engaged: 0,
        }
    }

    /// The reference and the microphone lost alignment; the window opens at the next frame.
    pub fn disrupted(&mut self) {
        self.pending = true;
    }

    /// True when the frame captured at `now_ms` must be muted, given whether JARVIS is speaking.
    pub fn is_muted(&mut self, speaking: bool, now_ms: u64) -> bool {
        if std::mem::take(&mut self.pending) {
            if !self.is_open(now_ms) {
                self.engaged += 1;
            }
            self.until_ms = Some(now_ms.saturating_add(RECOVERY_MS));
        }
        // The gate follows JARVIS all the time, so its tail is right when a window opens.
        let gated = self.gate.is_muted(speaking, now_ms);
        match self.until_ms {
            Some(until) if now_ms < until => gated,
            Some(_) => {
                self.until_ms = None;
                false
            }
            None => false,
        }
    }

    /// Recovery windows opened so far (a disruption inside an open window extends it).
    pub fn engaged(&self) -> u64 {
        self.engaged
    }

    fn is_open(&self, now_ms: u64) -> bool {
        self.until_ms.is_some_and(|until| now_ms < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn without_a_disruption_the_member_is_always_heard() {
        let mut g = EchoGuard::new(300);
        for t in (0..10_000).step_by(20) {
            assert!(!g.is_muted(t % 2_000 < 1_000, t));
        }
        assert_eq!(g.engaged(), 0);
    }

    #[test]
    fn after_a_disruption_jarvis_gates_the_microphone_until_the_window_ends() {
        let mut g = EchoGuard::new(300);
        g.disrupted();
        assert!(g.is_muted(true, 1_000));
        assert!(g.is_muted(true, 2_000));
        // JARVIS stopped: the tail still mutes, then the member is heard inside the window.
        assert!(g.is_muted(false, 2_200));
        assert!(!g.is_muted(false, 2_400));
        // The window (1.5 s from 1 000) is over: JARVIS speaking no longer gates.
        assert!(!g.is_muted(true, 2_500));
        assert_eq!(g.engaged(), 1);
    }

    #[test]
    fn a_disruption_inside_a_window_extends_it_and_counts_once() {
        let mut g = EchoGuard::new(300);
        g.disrupted();
        assert!(g.is_muted(true, 0));
        g.disrupted();
        assert!(g.is_muted(true, 1_000));
        assert!(g.is_muted(true, 2_400), "extended to 2 500");
        assert!(!g.is_muted(true, 2_500));
        assert_eq!(g.engaged(), 1);
    }

    proptest! {
        /// Whatever happens, the guard never mutes while JARVIS is silent past the tail, and
        /// never outside a window.
        #[test]
        fn mutes_only_inside_a_window_while_jarvis_is_audible_or_just_was(
            steps in proptest::collection::vec((any::<bool>(), any::<bool>(), 1u64..200), 1..300)
        ) {
            let mut g = EchoGuard::new(300);
            let mut now = 0u64;
            let mut last_disruption: Option<u64> = None;
            let mut last_speaking: Option<u64> = None;
            for (disrupt, speaking, dt) in steps {
                now += dt;
                if disrupt {
                    g.disrupted();
                    last_disruption = Some(now);
                }
                if speaking {
                    last_speaking = Some(now);
                }
                let muted = g.is_muted(speaking, now);
                let in_window = last_disruption.is_some_and(|d| now < d + RECOVERY_MS);
                let near_jarvis = last_speaking.is_some_and(|s| now < s + 300);
                if muted {
                    prop_assert!(in_window && near_jarvis);
                }
                if in_window && speaking {
                    prop_assert!(muted);
                }
            }
        }
    }
}
