//! Lock-free "is JARVIS audible right now?" flag shared by playback (writer) and the capture
//! gate and the lead (readers).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jarvis_core::clock;

/// Cheap, cloneable view of whether playback is producing audible sound.
#[derive(Clone, Debug, Default)]
pub struct SpeakingSignal {
    audible_until_ms: Arc<AtomicU64>,
    /// Playback still has speech or a prompt to produce (not yet in the device ring).
    pending: Arc<AtomicBool>,
}

impl SpeakingSignal {
    /// A signal nobody sets: capture without playback (doctor, tests).
    pub fn never() -> Self {
        SpeakingSignal::default()
    }

    /// True while audio that was handed to the device has not finished playing.
    pub fn is_speaking(&self) -> bool {
        self.pending.load(Ordering::Acquire)
            || clock::mono_ms() < self.audible_until_ms.load(Ordering::Acquire)
    }

    /// Called by playback: whether audio is still waiting to be produced.
    pub(crate) fn set_pending(&self, pending: bool) {
        self.pending.store(pending, Ordering::Release);
    }

    /// Called by playback: audible sound is queued until `until_ms` (see [`now_ms`]).
    pub(crate) fn extend_to(&self, until_ms: u64) {
        self.audible_until_ms.fetch_max(until_ms, Ordering::AcqRel);
    }

    /// Called by playback on flush: nothing audible is queued any more.
    pub(crate) fn clear(&self) {
        self.pending.store(false, Ordering::Release);
        self.audible_until_ms.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaking_until_the_deadline_then_cleared() {
        let s = SpeakingSignal::never();
        assert!(!s.is_speaking());
        s.extend_to(clock::mono_ms() + 60_000);
        assert!(s.clone().is_speaking());
        s.extend_to(0);
        assert!(s.is_speaking(), "extend never shortens");
        s.clear();
        assert!(!s.is_speaking());
        s.set_pending(true);
        assert!(s.is_speaking(), "audio still to be produced");
        s.clear();
        assert!(!s.is_speaking());
    }
}
