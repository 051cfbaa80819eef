//! Money limits: the kiosk's daily budget, per day of the gym's calendar (`kiosk.timezone`).

use crate::money::NanoUsd;

/// Milliseconds in a day of 24 hours.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since 1970-01-01) of a wall-clock time.
pub fn utc_day(wall_ms: i64) -> i64 {
    wall_ms.div_euclid(DAY_MS)
}

/// The gym's calendar: which local day a wall-clock instant falls on.
///
/// Built by the config crate from the system's time zone database (the core reads no files):
/// the UTC offsets of `kiosk.timezone` as a table of transitions, so finding the day is a pure
/// lookup and a DST change moves midnight exactly as the gym's clocks do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    zone: String,
    /// Offset (seconds east of UTC) before the first transition.
    base_offset_s: i32,
    /// `(utc_ms, offset_s)`: from `utc_ms` on, the zone is `offset_s` east of UTC. Ascending.
    transitions: Vec<(i64, i32)>,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::utc()
    }
}

impl Calendar {
    /// Days start at midnight UTC.
    pub fn utc() -> Self {
        Calendar::new("UTC", 0, Vec::new())
    }

    /// A zone named `zone` with `base_offset_s` before the first of `transitions`
    /// (`(utc_ms, offset_s)`, sorted here).
    pub fn new(zone: &str, base_offset_s: i32, mut transitions: Vec<(i64, i32)>) -> Self {
        transitions.sort_unstable();
        Calendar {
            zone: zone.to_owned(),
            base_offset_s,
            transitions,
        }
    }

    /// The zone's name, for `status`, `/metrics` and messages.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The offset from UTC in effect at `wall_ms`, in milliseconds.
    pub fn offset_ms(&self, wall_ms: i64) -> i64 {
        let after = self.transitions.partition_point(|(at, _)| *at <= wall_ms);
        let offset_s = match after {
            0 => self.base_offset_s,
            n => self.transitions[n - 1].1,
        };
        i64::from(offset_s) * 1000
    }

    /// The local day number (days since 1970-01-01 in the zone) of `wall_ms`.
    pub fn day(&self, wall_ms: i64) -> i64 {
        wall_ms
            .saturating_add(self.offset_ms(wall_ms))
            .div_euclid(DAY_MS)
    }

    /// The first instant (UTC ms) of local day `day`: where "today's spend" starts.
    pub fn day_start_ms(&self, day: i64) -> i64 {
        // Offsets stay within ±26 h, so local midnight is within that of UTC midnight; the
        // local day only moves forward across that window (a DST change is an hour).
        let (mut lo, mut hi) = (day * DAY_MS - 26 * 3_600_000, day * DAY_MS + 26 * 3_600_000);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.day(mid) >= day {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

/// Today's spend against `session.daily_budget_usd`. Resets at the gym's midnight.
///
/// Days are given by the caller ([`Calendar::day`]). A clock that jumps ahead (a Pi without
/// a real-time clock boots in the past or the future until NTP syncs) can never leave the
/// budget stuck on a future day: when the clock comes back, the budget returns to the earlier
/// day, keeping everything spent meanwhile (money never un-spends) and what that day had
/// spent before the jump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyBudget {
    budget: NanoUsd,
    spent: NanoUsd,
    day: i64,
    alerted: bool,
    /// The day left for a later one, with its spend and alert, in case the clock comes back.
    left: Option<(i64, NanoUsd, bool)>,
}

impl DailyBudget {
    /// `spent_today` is what the store already holds for `day`.
    pub fn new(budget: NanoUsd, spent_today: NanoUsd, day: i64) -> Self {
        DailyBudget {
            budget,
            spent: spent_today,
            day,
            alerted: false,
            left: None,
        }
    }

    /// Moves to `day` (the day of the wall clock now). A later day starts afresh (spend zero,
    /// alert re-armed); an earlier one means the clock stepped back: the budget returns to it.
    pub fn roll(&mut self, day: i64) {
        if day > self.day {
            self.left = Some((self.day, self.spent, self.alerted));
            self.day = day;
            self.spent = NanoUsd::ZERO;
            self.alerted = false;
        } else if day < self.day {
            let (before, alerted) = match self.left.take() {
                Some((left_day, spent, alerted)) if left_day == day => (spent, alerted),
                _ => (NanoUsd::ZERO, false),
            };
            self.day = day;
            self.spent = before + self.spent;
            self.alerted |= alerted;
        }
    }

    /// The day the budget counts.
    pub fn day(&self) -> i64 {
        self.day
    }

    pub fn add(&mut self, cost: NanoUsd) {
        self.spent += cost;
    }

    pub fn spent(&self) -> NanoUsd {
        self.spent
    }

    /// A new budget from a reload; today's spend is kept, and the alert re-arms if the new
    /// budget is not exhausted.
    pub fn set_budget(&mut self, budget: NanoUsd) {
        self.budget = budget;
        self.alerted &= self.exhausted();
    }

    pub fn budget(&self) -> NanoUsd {
        self.budget
    }

    /// Today's spend has reached the budget: no new session may start.
    pub fn exhausted(&self) -> bool {
        self.spent >= self.budget
    }

    /// Today's spend plus `pending` (cost not recorded yet, such as a GPT-Live estimate) has
    /// reached the budget.
    pub fn exhausted_with(&self, pending: NanoUsd) -> bool {
        self.spent + pending >= self.budget
    }

    /// True once per day, the first time it is asked while the budget is exhausted.
    pub fn take_alert(&mut self) -> bool {
        let fire = self.exhausted() && !self.alerted;
        self.alerted |= fire;
        fire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_day_table() {
        let cases = [
            (0, 0),
            (DAY_MS - 1, 0),
            (DAY_MS, 1),
            (-1, -1),
            (1_763_683_200_000, 20_413),
        ];
        for (wall, day) in cases {
            assert_eq!(utc_day(wall), day, "{wall}");
        }
    }

    #[test]
    fn budget_exhausts_alerts_once_and_resets_at_midnight() {
        let mut b = DailyBudget::new(NanoUsd(100), NanoUsd(60), utc_day(10));
        assert!(!b.exhausted());
        assert!(!b.take_alert());
        b.add(NanoUsd(40));
        assert!(b.exhausted());
        assert!(b.take_alert());
        assert!(!b.take_alert(), "one alert per day");
        b.roll(utc_day(DAY_MS - 1));
        assert!(b.exhausted(), "same day");
        b.roll(utc_day(DAY_MS));
        assert!(!b.exhausted());
        assert_eq!(b.spent(), NanoUsd::ZERO);
        b.add(NanoUsd(100));
        assert!(b.take_alert(), "re-armed on the new day");
    }

    #[test]
    fn clock_stepping_back_keeps_spend() {
        let mut b = DailyBudget::new(NanoUsd(100), NanoUsd(70), 3);
        b.roll(2);
        assert_eq!(b.spent(), NanoUsd(70));
        assert_eq!(b.budget(), NanoUsd(100));
        assert_eq!(b.day(), 2, "never stuck on the later day");
    }

    #[test]
    fn a_clock_jump_into_the_future_is_undone_when_the_clock_comes_back() {
        let today = 20_429;
        let mut b = DailyBudget::new(NanoUsd(100), NanoUsd(60), today);
        // No RTC: the clock jumps years ahead, then NTP brings it back.
        b.roll(today + 2_000);
        assert_eq!(b.spent(), NanoUsd::ZERO);
        b.add(NanoUsd(30));
        b.roll(today);
        assert_eq!(b.day(), today);
        assert_eq!(
            b.spent(),
            NanoUsd(90),
            "today's 60 and the 30 spent meanwhile"
        );
        b.add(NanoUsd(10));
        assert!(b.exhausted());
        // The next real midnight starts a new day as usual.
        b.roll(today + 1);
        assert_eq!(b.spent(), NanoUsd::ZERO);
        assert!(!b.exhausted());
    }

    fn paris() -> Calendar {
        // Europe/Paris around 2026: CET (+1 h), CEST (+2 h) from 2026-03-29 01:00 UTC,
        // CET again from 2026-10-25 01:00 UTC.
        Calendar::new(
            "Europe/Paris",
            3600,
            vec![(1_774_746_000_000, 7200), (1_792_890_000_000, 3600)],
        )
    }

    /// UTC ms of a UTC date and time.
    fn utc(day: i64, h: i64, m: i64) -> i64 {
        day * DAY_MS + h * 3_600_000 + m * 60_000
    }

    #[test]
    fn local_midnight_moves_with_daylight_saving_time() {
        let c = paris();
        // 2026-03-28 is UTC day 20_540; 2026-03-29 is 20_541; 2026-10-25 is 20_751.
        let (mar28, mar29, mar30) = (20_540, 20_541, 20_542);
        // Winter: local midnight is 23:00 UTC the day before.
        assert_eq!(c.day(utc(mar28, 22, 59)), mar28);
        assert_eq!(c.day(utc(mar28, 23, 0)), mar29);
        assert_eq!(c.day_start_ms(mar29), utc(mar28, 23, 0));
        // 2026-03-29 is 23 hours long: the next local midnight is 22:00 UTC.
        assert_eq!(c.day(utc(mar29, 21, 59)), mar29);
        assert_eq!(c.day(utc(mar29, 22, 0)), mar30);
        assert_eq!(c.day_start_ms(mar30), utc(mar29, 22, 0));
        assert_eq!(
            c.day_start_ms(mar30) - c.day_start_ms(mar29),
            23 * 3_600_000
        );
        // 2026-10-25 is 25 hours long: it starts at 22:00 UTC and ends at 23:00 UTC.
        let (oct25, oct26) = (20_751, 20_752);
        assert_eq!(c.day_start_ms(oct25), utc(oct25 - 1, 22, 0));
        assert_eq!(c.day_start_ms(oct26), utc(oct25, 23, 0));
        assert_eq!(
            c.day(utc(oct25, 22, 30)),
            oct25,
            "the repeated hour is still the 25th"
        );
        assert_eq!(c.day(utc(oct25, 23, 0)), oct26);
    }

    #[test]
    fn the_budget_resets_at_the_gyms_midnight_across_dst() {
        let c = paris();
        let mar29 = 20_541;
        let mut b = DailyBudget::new(NanoUsd(100), NanoUsd(0), c.day(utc(mar29 - 1, 12, 0)));
        b.add(NanoUsd(100));
        // 23:30 UTC on the 28th is 00:30 in Paris on the 29th: a new day there, not in UTC.
        b.roll(c.day(utc(mar29 - 1, 23, 30)));
        assert_eq!(b.spent(), NanoUsd::ZERO);
        b.add(NanoUsd(40));
        // 21:30 UTC on the 29th is 23:30 CEST: still the 29th.
        b.roll(c.day(utc(mar29, 21, 30)));
        assert_eq!(b.spent(), NanoUsd(40));
        // 22:00 UTC is midnight CEST: the 30th.
        b.roll(c.day(utc(mar29, 22, 0)));
        assert_eq!(b.spent(), NanoUsd::ZERO);
    }

    proptest::proptest! {
        /// Whatever the clock does, the budget's day is the day of the latest reading, never
        /// a day the clock has left, and the spend never shrinks except at a new day.
        #[test]
        fn the_budget_day_follows_the_clock_and_spend_never_vanishes_on_a_step_back(
            steps in proptest::collection::vec((0i64..4_000, 0u64..50), 1..40),
        ) {
            let mut b = DailyBudget::new(NanoUsd(1_000_000), NanoUsd(0), 20_000);
            for (day_offset, cost) in steps {
                let day = 20_000 + day_offset - 2_000;
                let (before, old_day) = (b.spent(), b.day());
                b.roll(day);
                proptest::prop_assert_eq!(b.day(), day);
                if day <= old_day {
                    proptest::prop_assert!(b.spent() >= before);
                }
                b.add(NanoUsd(cost));
            }
        }

        #[test]
        fn day_start_is_the_first_instant_of_its_day(day in 19_000i64..22_000) {
            let c = paris();
            let start = c.day_start_ms(day);
            proptest::prop_assert_eq!(c.day(start), day);
            proptest::prop_assert_eq!(c.day(start - 1), day - 1);
        }
    }
}
