//! The one retry schedule of the kiosk: exponential backoff, capped, with jitter so a fleet
//! does not retry in lockstep (`backon`). Each user names its own bounds; none sleeps here.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays between attempts: `min_delay` growing by `factor` up to `max_delay`, forever.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub factor: f32,
    /// Each delay drawn in `[d, 2d)`: spreads a fleet's retries after a shared outage.
    pub jitter: bool,
}

impl RetryPolicy {
    /// Central sync after a transient failure: 200 ms doubling to 60 s.
    pub const CENTRAL_SYNC: RetryPolicy = RetryPolicy::jittered(200, 60_000);
    /// A supervised adapter that failed: 0.5 s doubling to 30 s.
    pub const ADAPTER_RESTART: RetryPolicy = RetryPolicy::jittered(500, 30_000);
    /// A sound card that vanished: 250 ms doubling to 10 s.
    pub const SOUND_CARD_REOPEN: RetryPolicy = RetryPolicy::jittered(250, 10_000);
    /// A scanner that vanished: 100 ms doubling to 1 s, without jitter: a re-plugged scanner
    /// is back within about 100 ms, and polling a missing one once a second costs nothing.
    pub const SCANNER_REOPEN: RetryPolicy = RetryPolicy {
        jitter: false,
        ..RetryPolicy::jittered(100, 1_000)
    };

    const fn jittered(min_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(max_ms),
            factor: 2.0,
            jitter: true,
        }
    }

    /// A new series of delays, for one retrying loop.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            delays: self.builder().build(),
        }
    }

    /// The series with a fixed jitter seed, for reproducible tests.
    #[cfg(test)]
    fn delays_seeded(&self, seed: u64) -> ExponentialBackoff {
        self.builder().with_jitter_seed(seed).build()
    }

    fn builder(&self) -> ExponentialBuilder {
        let b = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_factor(self.factor.max(1.0))
            .without_max_times();
        if self.jitter { b.with_jitter() } else { b }
    }
}

/// One retrying loop's position in its [`RetryPolicy`]'s series.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// The wait before the next attempt; the series never ends (it stays at `max_delay`).
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.policy.max_delay)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        *self = self.policy.backoff();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delays_grow_then_cap() {
        let r = RetryPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            factor: 2.0,
            jitter: true,
        };
        let d: Vec<_> = r.delays_seeded(7).take(8).collect();
        for (i, got) in d.iter().enumerate() {
            let base = Duration::from_millis(100 * (1u64 << i)).min(Duration::from_secs(1));
            assert!(*got >= base && *got < base * 2, "attempt {i}: {got:?}");
        }
    }

    #[test]
    fn scanner_delays_double_from_100ms_and_cap_at_1s_exactly() {
        let mut b = RetryPolicy::SCANNER_REOPEN.backoff();
        let d: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn named_policies_grow_and_are_capped() {
        for (p, min, max) in [
            (RetryPolicy::CENTRAL_SYNC, 200, 60_000),
            (RetryPolicy::ADAPTER_RESTART, 500, 30_000),
            (RetryPolicy::SOUND_CARD_REOPEN, 250, 10_000),
        ] {
            let d: Vec<Duration> = p.delays_seeded(3).take(12).collect();
            assert!(d[0] >= Duration::from_millis(min), "{p:?}: {d:?}");
            assert!(d[1] > d[0], "{p:?}: {d:?}");
            assert!(
                d.iter().all(|d| *d < Duration::from_millis(max) * 2),
                "{p:?}: {d:?}"
            );
            assert!(d[11] >= Duration::from_millis(max), "{p:?}: {d:?}");
        }
    }

    proptest! {
        #[test]
        fn delays_stay_within_jittered_cap(
            min_ms in 1u64..5_000, max_ms in 1u64..120_000, seed in any::<u64>()
        ) {
            let r = RetryPolicy {
                min_delay: Duration::from_millis(min_ms),
                max_delay: Duration::from_millis(max_ms),
                factor: 2.0,
                jitter: true,
            };
            let cap = Duration::from_millis(max_ms.max(min_ms)) * 2;
            for d in r.delays_seeded(seed).take(30) {
                prop_assert!(d >= Duration::from_millis(min_ms) && d < cap);
            }
        }
    }
}
