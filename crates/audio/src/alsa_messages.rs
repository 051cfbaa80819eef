//! alsa-lib writes its errors straight to stderr. Under systemd that is the journal: a kiosk
//! whose sound card is missing would log a dozen raw `ALSA lib ...` lines at every reopen
//! attempt. Each thread that touches ALSA captures them instead, and the caller logs them once,
//! beside its own error that already names the device and the fix.

use std::cell::RefCell;
use std::rc::Rc;

/// This thread's alsa-lib messages since the last [`AlsaMessages::take`].
pub(crate) struct AlsaMessages(Option<Rc<RefCell<alsa::Output>>>);

impl AlsaMessages {
    /// Captures what alsa-lib says on the calling thread from now on.
    pub fn capture() -> Self {
        AlsaMessages(alsa::Output::local_error_handler().ok())
    }

    /// What alsa-lib said since the last call (empty if nothing), then forgets it.
    pub fn take(&mut self) -> String {
        let said = self
            .0
            .as_ref()
            .map(|out| out.borrow().to_string())
            .unwrap_or_default();
        if !said.is_empty() {
            // A fresh buffer: the old one is freed when its last handle drops here.
            self.0 = alsa::Output::local_error_handler().ok();
        }
        said.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_captured_not_printed() {
        let mut messages = AlsaMessages::capture();
        assert!(
            alsa::PCM::new(
                "hw:CARD=jarvis-no-such-card",
                alsa::Direction::Capture,
                false
            )
            .is_err()
        );
        let said = messages.take();
        assert!(said.contains("jarvis-no-such-card"), "{said:?}");
        assert_eq!(messages.take(), "", "taken once");
    }
}
