//! Circuit breaker in front of OpenAI, without I/O: time is an input (monotonic milliseconds).
//!
//! `openai.breaker_failures` consecutive failures (connect errors, timeouts, 401/403, 429,
//! 5xx, malformed answers) open it for `openai.breaker_open_s`, or longer when the server sent
//! a longer `Retry-After`. A failure carrying `Retry-After` opens it at once for that long,
//! even below the threshold: the server asked the kiosk to wait. While open, every caller is
//! told to refuse (the lead plays "JARVIS est indisponible"); once the delay has passed one
//! half-open probe goes through, and its success closes the breaker.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Thresholds, from `openai.breaker_failures` and `openai.breaker_open_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (at least 1).
    pub failures: u32,
    /// How long it stays open before a probe; also how long a probe may stay unanswered.
    pub open_for: Duration,
}

/// The breaker's state, serialisable for health and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed {
        consecutive_failures: u32,
    },
    /// Refusing until `until_ms` (monotonic).
    Open {
        consecutive_failures: u32,
        until_ms: u64,
    },
    /// One probe is in flight since `probe_started_ms`; others are refused.
    HalfOpen {
        consecutive_failures: u32,
        probe_started_ms: u64,
    },
}

impl BreakerState {
    pub fn consecutive_failures(self) -> u32 {
        match self {
            BreakerState::Closed {
                consecutive_failures,
            }
            | BreakerState::Open {
                consecutive_failures,
                ..
            }
            | BreakerState::HalfOpen {
                consecutive_failures,
                ..
            } => consecutive_failures,
        }
    }
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allow,
    /// Go ahead as the half-open probe; report its outcome.
    Probe,
    /// Do not call OpenAI; tell the member JARVIS is unavailable.
    Refuse { retry_in: Duration },
}

/// One failure to report: why, and the server's `Retry-After` if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Short cause for health (`http 429`, `connect timeout`, ...); never a secret.
    pub cause: String,
    pub retry_after: Option<Duration>,
}

/// A snapshot for health gauges, heartbeats and `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerStatus {
    #[serde(flatten)]
    pub state: BreakerState,
    /// Milliseconds until a probe is allowed (open, or half-open with a probe in flight).
    pub retry_in_ms: Option<u64>,
    pub last_failure: Option<String>,
}

/// The circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    config: BreakerSettings,
    state: BreakerState,
    last_failure: Option<String>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Breaker {
    pub fn new(config: BreakerSettings) -> Breaker {
        Breaker {
            config,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
            last_failure: None,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// When the next probe may go (`None` while closed): once the open period is over, or
    /// once a probe that never reported (its session was dropped) is given up on.
    fn probe_at(&self) -> Option<u64> {
        match self.state {
            BreakerState::Closed { .. } => None,
            BreakerState::Open { until_ms, .. } => Some(until_ms),
            BreakerState::HalfOpen {
                probe_started_ms, ..
            } => Some(probe_started_ms.saturating_add(ms(self.config.open_for))),
        }
    }

    /// Asks whether a connection attempt may start at `now_ms`.
    pub fn admit(&mut self, now_ms: u64) -> Admission {
        let Some(probe_at) = self.probe_at() else {
            return Admission::Allow;
        };
        if now_ms >= probe_at {
            self.state = BreakerState::HalfOpen {
                consecutive_failures: self.state.consecutive_failures(),
                probe_started_ms: now_ms,
            };
            Admission::Probe
        } else {
            Admission::Refuse {
                retry_in: Duration::from_millis(probe_at - now_ms),
            }
        }
    }

    /// A connection reached OpenAI and was accepted: closes the breaker.
    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed {
            consecutive_failures: 0,
        };
    }

    /// A connection attempt failed at `now_ms`.
    pub fn record_failure(&mut self, now_ms: u64, failure: &Failure) {
        let failures = self.state.consecutive_failures().saturating_add(1);
        let was_probe = matches!(self.state, BreakerState::HalfOpen { .. });
        let open_until = match self.state {
            BreakerState::Open { until_ms, .. } => Some(until_ms),
            _ => None,
        };
        self.last_failure = Some(failure.cause.clone());
        let retry_after = failure.retry_after.map(ms);
        let open_for = if was_probe || failures >= self.config.failures {
            Some(ms(self.config.open_for).max(retry_after.unwrap_or(0)))
        } else {
            retry_after
        };
        self.state = match (open_for, open_until) {
            (None, None) => BreakerState::Closed {
                consecutive_failures: failures,
            },
            (wait, until) => BreakerState::Open {
                consecutive_failures: failures,
                until_ms: now_ms
                    .saturating_add(wait.unwrap_or(0))
                    .max(until.unwrap_or(0)),
            },
        };
    }

    /// The state as health shows it.
    pub fn status(&self, now_ms: u64) -> BreakerStatus {
        let retry_in_ms = self.probe_at().map(|at| at.saturating_sub(now_ms));
        BreakerStatus {
            state: self.state,
            retry_in_ms,
            last_failure: self.last_failure.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const OPEN_MS: u64 = 60_000;

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(BreakerSettings {
            failures,
            open_for: Duration::from_millis(OPEN_MS),
        })
    }

    fn fail(cause: &str) -> Failure {
        Failure {
            cause: cause.into(),
            retry_after: None,
        }
    }

    fn fail_after(secs: u64) -> Failure {
        Failure {
            cause: "http 429".into(),
            retry_after: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn opens_after_the_configured_consecutive_failures() {
        let mut b = breaker(3);
        for t in [0, 10] {
            assert_eq!(b.admit(t), Admission::Allow);
            b.record_failure(t, &fail("connect timeout"));
        }
        assert_eq!(b.admit(20), Admission::Allow);
        b.record_failure(20, &fail("http 503"));
        assert_eq!(
            b.admit(30),
            Admission::Refuse {
                retry_in: Duration::from_millis(OPEN_MS - 10)
            }
        );
        assert_eq!(b.status(30).last_failure.as_deref(), Some("http 503"));
    }

    #[test]
    fn success_resets_the_count() {
        let mut b = breaker(2);
        b.record_failure(0, &fail("x"));
        b.record_success();
        b.record_failure(1, &fail("x"));
        assert_eq!(b.admit(2), Admission::Allow);
    }

    #[test]
    fn half_open_probe_then_close_or_reopen() {
        let mut b = breaker(1);
        b.record_failure(0, &fail("http 500"));
        assert!(matches!(b.admit(OPEN_MS - 1), Admission::Refuse { .. }));
        assert_eq!(b.admit(OPEN_MS), Admission::Probe);
        assert!(
            matches!(b.admit(OPEN_MS + 1), Admission::Refuse { .. }),
            "one probe at a time"
        );
        b.record_failure(OPEN_MS + 5, &fail("http 500"));
        assert_eq!(
            b.admit(OPEN_MS + 6),
            Admission::Refuse {
                retry_in: Duration::from_millis(OPEN_MS - 1)
            }
        );
        assert_eq!(b.admit(2 * OPEN_MS + 5), Admission::Probe);
        b.record_success();
        assert_eq!(b.admit(2 * OPEN_MS + 6), Admission::Allow);
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
    }

    #[test]
    fn abandoned_probe_is_replaced_after_the_open_delay() {
        let mut b = breaker(1);
        b.record_failure(0, &fail("x"));
        assert_eq!(b.admit(OPEN_MS), Admission::Probe);
        assert!(matches!(b.admit(2 * OPEN_MS - 1), Admission::Refuse { .. }));
        assert_eq!(b.admit(2 * OPEN_MS), Admission::Probe);
    }

    #[test]
    fn retry_after_opens_at_once_for_that_long() {
        let mut b = breaker(5);
        b.record_failure(0, &fail_after(7));
        assert_eq!(
            b.admit(1_000),
            Admission::Refuse {
                retry_in: Duration::from_millis(6_000)
            }
        );
        assert_eq!(b.admit(7_000), Admission::Probe);
    }

    #[test]
    fn a_longer_retry_after_beats_the_open_delay() {
        let mut b = breaker(1);
        b.record_failure(0, &fail_after(600));
        assert_eq!(
            b.admit(OPEN_MS),
            Admission::Refuse {
                retry_in: Duration::from_millis(600_000 - OPEN_MS)
            }
        );
        let mut short = breaker(1);
        short.record_failure(0, &fail_after(1));
        assert!(
            matches!(short.admit(1_000), Admission::Refuse { .. }),
            "at the threshold the open delay is the floor"
        );
    }

    #[test]
    fn a_late_failure_never_shortens_an_open_period() {
        let mut b = breaker(1);
        b.record_failure(0, &fail_after(600));
        b.record_failure(10, &fail("late"));
        assert_eq!(b.status(10).retry_in_ms, Some(600_000 - 10));
    }

    #[test]
    fn status_serialises_for_health() {
        let mut b = breaker(1);
        assert_eq!(
            serde_json::to_value(b.status(0)).unwrap(),
            json!({"state":"closed","consecutive_failures":0,"retry_in_ms":null,"last_failure":null})
        );
        b.record_failure(1_000, &fail("http 401"));
        let v = serde_json::to_value(b.status(2_000)).unwrap();
        assert_eq!(
            v,
            json!({"state":"open","consecutive_failures":1,"until_ms":61_000,
                   "retry_in_ms":59_000,"last_failure":"http 401"})
        );
        let back: BreakerStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back, b.status(2_000));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit,
        Success,
        Failure(Option<u64>),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Admit),
            1 => Just(Op::Success),
            2 => prop::option::of(0u64..200).prop_map(Op::Failure),
            2 => (0u64..100_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_for_any_history(threshold in 1u32..5, ops in prop::collection::vec(op(), 0..80)) {
            let mut b = breaker(threshold);
            let mut now = 0u64;
            let mut streak = 0u32;
            let mut max_wait_ms = OPEN_MS;
            for op in ops {
                match op {
                    Op::Wait(d) => now += d,
                    Op::Success => {
                        b.record_success();
                        streak = 0;
                        prop_assert_eq!(b.admit(now), Admission::Allow);
                    }
                    Op::Failure(retry) => {
                        b.record_failure(now, &Failure {
                            cause: "x".into(),
                            retry_after: retry.map(Duration::from_secs),
                        });
                        streak += 1;
                        max_wait_ms = max_wait_ms.max(retry.unwrap_or(0) * 1_000);
                        if streak >= threshold {
                            let refused = matches!(b.state(), BreakerState::Open { .. });
                            prop_assert!(refused, "open after {} failures", streak);
                        }
                    }
                    Op::Admit => match b.admit(now) {
                        Admission::Allow => {
                            let closed = matches!(b.state(), BreakerState::Closed { .. });
                            prop_assert!(closed);
                            prop_assert!(streak < threshold);
                        }
                        Admission::Probe => {
                            let half = matches!(b.state(), BreakerState::HalfOpen { .. });
                            prop_assert!(half);
                            // A second caller right away is refused.
                            let refused = matches!(b.admit(now), Admission::Refuse { .. });
                            prop_assert!(refused);
                        }
                        Admission::Refuse { retry_in } => {
                            prop_assert!(retry_in > Duration::ZERO);
                            prop_assert!(retry_in <= Duration::from_millis(max_wait_ms));
                        }
                    },
                }
                let s = b.status(now);
                prop_assert_eq!(s.state.consecutive_failures(), streak);
            }
        }
    }
}
