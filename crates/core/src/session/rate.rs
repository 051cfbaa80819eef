//! Per-badge scan hygiene: debounce (one physical scan often reads several times) and the
//! rolling-hour session limit (`badge.max_sessions_per_hour`).

use std::collections::{HashMap, VecDeque};

use super::inputs::BadgeKey;

/// One rolling hour, in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;

/// Remembers when each badge was last read and when it started sessions. Memory stays
/// bounded: entries older than the debounce window and the rolling hour are pruned.
#[derive(Debug, Clone)]
pub struct BadgeGate {
    debounce_ms: u64,
    max_per_hour: u32,
    last_read: HashMap<BadgeKey, u64>,
    starts: HashMap<BadgeKey, VecDeque<u64>>,
}

impl BadgeGate {
    /// `max_per_hour = 0` means no limit.
    pub fn new(debounce_ms: u64, max_per_hour: u32) -> Self {
        BadgeGate {
            debounce_ms,
            max_per_hour,
            last_read: HashMap::new(),
            starts: HashMap::new(),
        }
    }

    /// New limits from a reload; the reads and starts already counted still count.
    pub fn set_limits(&mut self, debounce_ms: u64, max_per_hour: u32) {
        self.debounce_ms = debounce_ms;
        self.max_per_hour = max_per_hour;
    }

    /// Notes a read of `badge` at `now_ms` and says whether it is a new scan (`false`: the same
    /// badge was read within the debounce window, so this read is part of the previous scan).
    /// Every read extends the window, so a badge held against the reader stays one scan.
    pub fn read(&mut self, badge: &BadgeKey, now_ms: u64) -> bool {
        let fresh = match self.last_read.get(badge) {
            Some(&at) => now_ms.saturating_sub(at) >= self.debounce_ms,
            None => true,
        };
        self.last_read.insert(badge.clone(), now_ms);
        fresh
    }

    /// Whether `badge` may start another session now.
    pub fn may_start(&self, badge: &BadgeKey, now_ms: u64) -> bool {
        if self.max_per_hour == 0 {
            return true;
        }
        let recent = self.starts.get(badge).map_or(0, |s| {
            s.iter()
                .filter(|&&at| now_ms.saturating_sub(at) < HOUR_MS)
                .count()
        });
        recent < self.max_per_hour as usize
    }

    /// Notes that `badge` started a session at `now_ms`.
    pub fn started(&mut self, badge: &BadgeKey, now_ms: u64) {
        if self.max_per_hour > 0 {
            self.starts
                .entry(badge.clone())
                .or_default()
                .push_back(now_ms);
        }
    }

    /// Forgets reads older than the debounce window and starts older than an hour.
    pub fn prune(&mut self, now_ms: u64) {
        let debounce = self.debounce_ms;
        self.last_read
            .retain(|_, &mut at| now_ms.saturating_sub(at) < debounce);
        self.starts.retain(|_, s| {
            while s
                .front()
                .is_some_and(|&at| now_ms.saturating_sub(at) >= HOUR_MS)
            {
                s.pop_front();
            }
            !s.is_empty()
        });
    }

    /// How many badges are remembered (for tests and health gauges).
    pub fn tracked(&self) -> usize {
        self.last_read.len().max(self.starts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &str) -> BadgeKey {
        BadgeKey::new(s)
    }

    #[test]
    fn same_badge_within_debounce_is_one_scan() {
        let mut g = BadgeGate::new(3_000, 6);
        let a = key("A");
        assert!(g.read(&a, 0));
        assert!(!g.read(&a, 1_000));
        assert!(!g.read(&a, 3_500), "each read extends the window");
        assert!(g.read(&a, 6_500));
        assert!(g.read(&key("B"), 6_600), "another badge is its own scan");
    }

    #[test]
    fn zero_debounce_makes_every_read_a_scan() {
        let mut g = BadgeGate::new(0, 6);
        assert!(g.read(&key("A"), 5));
        assert!(g.read(&key("A"), 5));
    }

    #[test]
    fn rolling_hour_limit_table() {
        // (starts already made at these times, check time, allowed?)
        let cases: &[(&[u64], u64, bool)] = &[
            (&[], 0, true),
            (&[0], 10, true),
            (&[0, 10], 20, false),
            (&[0, 10], HOUR_MS - 1, false),
            (&[0, 10], HOUR_MS, true),
            (&[0, 10], HOUR_MS + 10, true),
        ];
        for (starts, at, allowed) in cases {
            let mut g = BadgeGate::new(0, 2);
            for &s in *starts {
                g.started(&key("A"), s);
            }
            assert_eq!(g.may_start(&key("A"), *at), *allowed, "{starts:?} at {at}");
            assert!(g.may_start(&key("B"), *at));
        }
    }

    #[test]
    fn zero_limit_means_unlimited() {
        let mut g = BadgeGate::new(0, 0);
        for t in 0..100 {
            g.started(&key("A"), t);
        }
        assert!(g.may_start(&key("A"), 100));
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn prune_forgets_old_entries_but_keeps_live_ones() {
        let mut g = BadgeGate::new(3_000, 2);
        g.read(&key("A"), 0);
        g.started(&key("A"), 0);
        g.read(&key("B"), HOUR_MS - 1_000);
        g.started(&key("B"), HOUR_MS - 1_000);
        g.prune(HOUR_MS);
        assert_eq!(g.tracked(), 1);
        assert!(!g.read(&key("B"), HOUR_MS), "B still debounced after prune");
    }

    proptest! {
        #[test]
        fn never_more_than_the_limit_per_rolling_hour(
            gaps in proptest::collection::vec(0u64..900_000, 1..60),
            limit in 1u32..5,
        ) {
            let mut g = BadgeGate::new(0, limit);
            let a = key("A");
            let mut now = 0;
            let mut started = Vec::new();
            for gap in gaps {
                now += gap;
                g.prune(now);
                if g.may_start(&a, now) {
                    g.started(&a, now);
                    started.push(now);
                }
                let in_hour = started.iter().filter(|&&t| now - t < HOUR_MS).count();
                prop_assert!(in_hour <= limit as usize);
            }
        }
    }
}
