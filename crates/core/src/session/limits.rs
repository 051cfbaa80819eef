//! Money limits: the kiosk's daily budget (per UTC day of the wall clock).

use crate::money::NanoUsd;

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day number (days since 1970-01-01) of a wall-clock time.
pub fn utc_day(wall_ms: i64) -> i64 {
    wall_ms.div_euclid(DAY_MS)
}

/// Today's spend against `session.daily_budget_usd`. Resets at UTC midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyBudget {
    budget: NanoUsd,
    spent: NanoUsd,
    day: i64,
    alerted: bool,
}

impl DailyBudget {
    /// `spent_today` is what the store already holds for the UTC day of `wall_ms`.
    pub fn new(budget: NanoUsd, spent_today: NanoUsd, wall_ms: i64) -> Self {
        DailyBudget {
            budget,
            spent: spent_today,
            day: utc_day(wall_ms),
            alerted: false,
        }
    }

    /// Starts a new day (spend zero, alert re-armed) when `wall_ms` is past midnight UTC.
    /// A clock stepping back to an earlier day keeps today's spend: money never un-spends.
    pub fn roll(&mut self, wall_ms: i64) {
        let day = utc_day(wall_ms);
        if day > self.day {
            self.day = day;
            self.spent = NanoUsd::ZERO;
            self.alerted = false;
        }
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

    /// True once per UTC day, the first time it is asked while the budget is exhausted.
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
        let mut b = DailyBudget::new(NanoUsd(100), NanoUsd(60), 10);
        assert!(!b.exhausted());
        assert!(!b.take_alert());
        b.add(NanoUsd(40));
        assert!(b.exhausted());
        assert!(b.take_alert());
        assert!(!b.take_alert(), "one alert per day");
        b.roll(DAY_MS - 1);
        assert!(b.exhausted(), "same day");
        b.roll(DAY_MS);
        assert!(!b.exhausted());
        assert_eq!(b.spent(), NanoUsd::ZERO);
        b.add(NanoUsd(100));
        assert!(b.take_alert(), "re-armed on the new day");
    }

    #[test]
    fn clock_stepping_back_keeps_spend() {
        let mut b = DailyBudget::new(NanoUsd(100), NanoUsd(70), DAY_MS * 3);
        b.roll(DAY_MS * 2);
        assert_eq!(b.spent(), NanoUsd(70));
        assert_eq!(b.budget(), NanoUsd(100));
    }
}
