//! When a peer connection has failed: the connect deadline, silence on the wire, ICE state.
//!
//! Pure state machine: the I/O task feeds it what happened and when, and asks for the next
//! deadline and whether the connection must be declared closed.

use std::time::{Duration, Instant};

use str0m::IceConnectionState;

use super::CloseReason;

/// How far the connection got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for ICE + DTLS.
    Connecting,
    /// DTLS is up; the data channel is not open yet.
    Connected,
    /// The `oai-events` data channel is open: the session is usable.
    Open,
}

/// Tracks the connect deadline and inbound silence.
#[derive(Debug, Clone)]
pub struct Liveness {
    started: Instant,
    connect_timeout: Duration,
    idle_timeout: Duration,
    last_rx: Instant,
    phase: Phase,
}

impl Liveness {
    /// Starts the clock at `now` (when the answer was applied).
    pub fn new(now: Instant, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            started: now,
            connect_timeout,
            idle_timeout,
            last_rx: now,
            phase: Phase::Connecting,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A datagram arrived at `at`.
    pub fn on_packet(&mut self, at: Instant) {
        self.last_rx = self.last_rx.max(at);
    }

    /// DTLS is up. Returns true the first time only.
    pub fn on_connected(&mut self) -> bool {
        if self.phase == Phase::Connecting {
            self.phase = Phase::Connected;
            true
        } else {
            false
        }
    }

    /// The events channel opened. Returns true the first time only.
    pub fn on_channel_open(&mut self) -> bool {
        if self.phase == Phase::Open {
            return false;
        }
        self.phase = Phase::Open;
        true
    }

    /// ICE changed state; a disconnect ends the session.
    pub fn on_ice(&self, state: IceConnectionState) -> Option<CloseReason> {
        (state == IceConnectionState::Disconnected).then_some(CloseReason::IceDisconnected)
    }

    /// The instant at which [`Liveness::check`] may next report a failure.
    pub fn next_deadline(&self) -> Instant {
        match self.phase {
            Phase::Connecting | Phase::Connected => self.started + self.connect_timeout,
            Phase::Open => self.last_rx + self.idle_timeout,
        }
    }

    /// Whether the connection must be declared closed at `now`.
    pub fn check(&self, now: Instant) -> Option<CloseReason> {
        if now < self.next_deadline() {
            return None;
        }
        Some(match self.phase {
            Phase::Connecting => CloseReason::ConnectTimeout {
                after: self.connect_timeout,
                dtls_up: false,
            },
            Phase::Connected => CloseReason::ConnectTimeout {
                after: self.connect_timeout,
                dtls_up: true,
            },
            Phase::Open => CloseReason::Idle {
                silent_for: now.saturating_duration_since(self.last_rx),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CT: Duration = Duration::from_secs(5);
    const IT: Duration = Duration::from_secs(3);

    #[test]
    fn connect_timeout_names_how_far_it_got() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, CT, IT);
        assert_eq!(l.check(t0 + CT - Duration::from_millis(1)), None);
        assert_eq!(
            l.check(t0 + CT),
            Some(CloseReason::ConnectTimeout {
                after: CT,
                dtls_up: false
            })
        );
        assert!(l.on_connected());
        assert!(!l.on_connected());
        assert_eq!(
            l.check(t0 + CT),
            Some(CloseReason::ConnectTimeout {
                after: CT,
                dtls_up: true
            })
        );
    }

    #[test]
    fn packets_before_open_do_not_extend_the_connect_deadline() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, CT, IT);
        l.on_packet(t0 + Duration::from_secs(4));
        assert!(l.check(t0 + CT).is_some());
    }

    #[test]
    fn open_session_closes_after_silence() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, CT, IT);
        l.on_connected();
        assert!(l.on_channel_open());
        assert!(!l.on_channel_open());
        assert_eq!(l.phase(), Phase::Open);
        let t1 = t0 + Duration::from_secs(10);
        l.on_packet(t1);
        l.on_packet(t0);
        assert_eq!(l.next_deadline(), t1 + IT);
        assert_eq!(l.check(t1 + IT - Duration::from_millis(1)), None);
        assert_eq!(
            l.check(t1 + IT + Duration::from_millis(5)),
            Some(CloseReason::Idle {
                silent_for: IT + Duration::from_millis(5)
            })
        );
    }

    #[test]
    fn ice_disconnect_closes_other_states_do_not() {
        let l = Liveness::new(Instant::now(), CT, IT);
        assert_eq!(
            l.on_ice(IceConnectionState::Disconnected),
            Some(CloseReason::IceDisconnected)
        );
        for s in [
            IceConnectionState::New,
            IceConnectionState::Checking,
            IceConnectionState::Connected,
            IceConnectionState::Completed,
        ] {
            assert_eq!(l.on_ice(s), None);
        }
    }

    proptest! {
        #[test]
        fn never_closes_before_its_deadline(
            steps in proptest::collection::vec((0u64..4000, 0u8..3), 0..40),
        ) {
            let t0 = Instant::now();
            let mut l = Liveness::new(t0, CT, IT);
            let mut now = t0;
            for (dt, what) in steps {
                now += Duration::from_millis(dt);
                match what {
                    0 => l.on_packet(now),
                    1 => { l.on_connected(); }
                    _ => { l.on_channel_open(); }
                }
                let deadline = l.next_deadline();
                prop_assert_eq!(l.check(now).is_some(), now >= deadline);
                prop_assert!(l.check(deadline).is_some());
            }
        }
    }
}
