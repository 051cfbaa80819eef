//! When a peer connection has failed: the connect deadline, silence on the wire, ICE state
//! (a disconnect is fatal only if ICE has not reconnected within a grace period).
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

/// What an ICE state change did to the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcePath {
    /// ICE lost the path: the grace period starts.
    Lost,
    /// ICE found a path again this long after losing it.
    Back { after: Duration },
    /// Nothing that matters to the call.
    Unchanged,
}

/// Tracks the connect deadline and inbound silence.
#[derive(Debug, Clone)]
pub struct Liveness {
    started: Instant,
    connect_timeout: Duration,
    idle_timeout: Duration,
    last_rx: Instant,
    phase: Phase,
    ice_grace: Duration,
    /// Since when ICE has been `Disconnected`, until it reconnects.
    disconnected_since: Option<Instant>,
}

/// How long ICE may stay `Disconnected` (a Wi-Fi hiccup) before the call counts as lost.
pub const DEFAULT_ICE_GRACE: Duration = Duration::from_secs(5);

impl Liveness {
    /// Starts the clock at `now` (when the answer was applied).
    pub fn new(now: Instant, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            started: now,
            connect_timeout,
            idle_timeout,
            last_rx: now,
            phase: Phase::Connecting,
            ice_grace: DEFAULT_ICE_GRACE,
            disconnected_since: None,
        }
    }

    /// Sets how long ICE may stay disconnected before the connection is declared closed.
    pub fn with_ice_grace(mut self, grace: Duration) -> Self {
        self.ice_grace = grace;
        self
    }

    /// How long since the clock started (the answer was applied).
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
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

    /// ICE changed state at `at`: a disconnect starts the grace period, a working path again
    /// (`Connected`, `Completed`) ends it; `Checking` is still looking. Says what changed, for
    /// the log.
    pub fn on_ice(&mut self, state: IceConnectionState, at: Instant) -> IcePath {
        let working = matches!(
            state,
            IceConnectionState::Connected | IceConnectionState::Completed
        );
        match (state, self.disconnected_since) {
            (IceConnectionState::Disconnected, None) => {
                self.disconnected_since = Some(at);
                IcePath::Lost
            }
            (_, Some(since)) if working => {
                self.disconnected_since = None;
                IcePath::Back {
                    after: at.saturating_duration_since(since),
                }
            }
            _ => IcePath::Unchanged,
        }
    }

    /// How long ICE may stay disconnected.
    pub fn ice_grace(&self) -> Duration {
        self.ice_grace
    }

    /// The instant at which [`Liveness::check`] may next report a failure.
    pub fn next_deadline(&self) -> Instant {
        let phase = match self.phase {
            Phase::Connecting | Phase::Connected => self.started + self.connect_timeout,
            Phase::Open => self.last_rx + self.idle_timeout,
        };
        match self.disconnected_since {
            Some(since) => phase.min(since + self.ice_grace),
            None => phase,
        }
    }

    /// Whether the connection must be declared closed at `now`.
    pub fn check(&self, now: Instant) -> Option<CloseReason> {
        if now < self.next_deadline() {
            return None;
        }
        if self
            .disconnected_since
            .is_some_and(|since| now >= since + self.ice_grace)
        {
            return Some(CloseReason::IceDisconnected);
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

    const GRACE: Duration = Duration::from_secs(4);

    fn open(t0: Instant) -> Liveness {
        let mut l = Liveness::new(t0, CT, Duration::from_secs(60)).with_ice_grace(GRACE);
        l.on_connected();
        l.on_channel_open();
        l
    }

    #[test]
    fn ice_disconnect_closes_only_after_the_grace_period() {
        let t0 = Instant::now();
        let mut l = open(t0);
        let t1 = t0 + Duration::from_secs(1);
        l.on_ice(IceConnectionState::Disconnected, t1);
        // A second report of the same state does not restart the grace period.
        l.on_ice(
            IceConnectionState::Disconnected,
            t1 + Duration::from_secs(2),
        );
        assert_eq!(l.next_deadline(), t1 + GRACE);
        assert_eq!(l.check(t1 + GRACE - Duration::from_millis(1)), None);
        assert_eq!(l.check(t1 + GRACE), Some(CloseReason::IceDisconnected));
    }

    #[test]
    fn ice_reconnecting_within_the_grace_period_keeps_the_call() {
        let t0 = Instant::now();
        for back in [IceConnectionState::Connected, IceConnectionState::Completed] {
            let mut l = open(t0);
            assert_eq!(
                l.on_ice(IceConnectionState::Disconnected, t0),
                IcePath::Lost
            );
            assert_eq!(
                l.on_ice(back, t0 + Duration::from_secs(3)),
                IcePath::Back {
                    after: Duration::from_secs(3)
                }
            );
            assert_eq!(l.check(t0 + GRACE * 2), None, "{back:?}");
        }
    }

    #[test]
    fn checking_again_is_not_a_path_yet() {
        let t0 = Instant::now();
        let mut l = open(t0);
        l.on_ice(IceConnectionState::Disconnected, t0);
        assert_eq!(
            l.on_ice(IceConnectionState::Checking, t0 + Duration::from_secs(1)),
            IcePath::Unchanged
        );
        assert_eq!(l.check(t0 + GRACE), Some(CloseReason::IceDisconnected));
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
