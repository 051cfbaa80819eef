//! GPT-Live voice pricing, without I/O: billed per second at a per-minute rate (reference
//! §9), not per token.
//!
//! - **Rates.** `gpt-live-1`: $0.05 per active minute. `gpt-live-1.1`: the same, plus $0.02
//!   per standby minute (inference paused, call connected).
//! - **Initialisation.** Creating a WebRTC session bills 15 s at once, credited against the
//!   duration once the session runs: a session that never runs costs 15 s, a 90 s session
//!   90 s (not 105), and one shorter than 15 s still 15 s.
//! - **Upper bound.** The server reports only cumulative `usage.seconds`, no active/standby
//!   split. Where the model has a standby rate, every second is priced at the active rate and
//!   the figure is marked [`LiveCost::upper_bound`]: the bill is at most that, never more. The
//!   same holds for the initialisation charge of such a model (its rate is not documented).
//! - **Exactness.** A cost is priced from the cumulative seconds in one division (half-up to
//!   the nano-dollar), never by adding per-update increments, so the final figure replaces
//!   any estimate and the order updates arrive in cannot change it.
//!
//! [`LiveMeter`] follows one session: between `session.usage.updated` events (about once a
//! minute) it estimates from elapsed time, so spending limits still stop a session on time;
//! `session.closed`'s seconds replace the estimate.

use super::ResponseCost;
use super::pricing::{Billing, MAX_USAGE_COST, MeteringError, Pricing, not_billed};
use crate::events::TokenCounts;
use crate::money::NanoUsd;

/// Seconds billed when a WebRTC session is created (credited against its duration).
pub const INITIALIZATION_S: u64 = 15;

/// One Live model's voice prices, nano-dollars per minute ([`super::Pricing::live_rates`]:
/// shipped defaults, overridden by `pricing."<model>".active_per_minute` /
/// `standby_per_minute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveRates {
    /// Active time: speech, silence before the idle timeout, waiting on delegated work.
    pub active_per_minute: NanoUsd,
    /// Standby time (inference paused); `None` for a model without standby (`gpt-live-1`).
    pub standby_per_minute: Option<NanoUsd>,
}

/// A session's voice time as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSeconds {
    /// Created but never running (ICE failed, the kiosk gave up): the initialisation charge.
    NeverStarted,
    /// Cumulative `usage.seconds`, the active/standby split unknown.
    Total(u64),
    /// The split, when the client timed standby itself (`session.paused`/`resumed`).
    Split {
        /// Active seconds.
        active: u64,
        /// Standby seconds.
        standby: u64,
    },
}

/// The voice cost of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveCost {
    /// Exact to the nano-dollar for the seconds given.
    pub cost: NanoUsd,
    /// Seconds billed (at least [`INITIALIZATION_S`]).
    pub billed_seconds: u64,
    /// Seconds that may have been standby were priced at the active rate: the bill is at most
    /// `cost`. Record it with the figure.
    pub upper_bound: bool,
    /// From elapsed time since the last usage report, not from the server's figure.
    pub estimated: bool,
}

/// `seconds × per_minute / 60`, half-up to the nano-dollar.
fn per_second(seconds: u64, per_minute: NanoUsd) -> u128 {
    u128::from(seconds) * u128::from(per_minute.0)
}

/// Prices a session's voice time for `model` (named in errors).
pub fn price_live(
    model: &str,
    rates: &LiveRates,
    seconds: LiveSeconds,
) -> Result<LiveCost, MeteringError> {
    let has_standby = rates.standby_per_minute.is_some();
    let (active, standby, upper_bound) = match seconds {
        LiveSeconds::NeverStarted => (0, 0, has_standby),
        LiveSeconds::Total(s) => (s, 0, has_standby),
        LiveSeconds::Split { active, standby } => {
            if standby > 0 && !has_standby {
                return Err(MeteringError::NotBilledThisWay {
                    model: model.to_owned(),
                    billing: "standby",
                    fields: "a standby rate (the model has no standby)",
                });
            }
            (active, standby, false)
        }
    };
    let used = active.saturating_add(standby);
    // The initialisation charge covers the first 15 s; a shorter session still pays them,
    // at the active rate (an upper bound when the model has a standby rate).
    let shortfall = INITIALIZATION_S.saturating_sub(used);
    let upper_bound = upper_bound || (shortfall > 0 && has_standby);
    let active = active.saturating_add(shortfall);
    let numerator = per_second(active, rates.active_per_minute)
        + per_second(standby, rates.standby_per_minute.unwrap_or_default());
    let nanos = (numerator + 30) / 60;
    let overflow = || MeteringError::Overflow {
        model: model.to_owned(),
        what: "the session's voice time",
        counts: format!("active {active} s, standby {standby} s"),
    };
    let cost = u64::try_from(nanos).map(NanoUsd).map_err(|_| overflow())?;
    if cost > MAX_USAGE_COST {
        return Err(overflow());
    }
    Ok(LiveCost {
        cost,
        billed_seconds: active.saturating_add(standby),
        upper_bound,
        estimated: false,
    })
}

/// A delegated response's token usage (the nested `response.completed` → `response.usage`,
/// standard Responses shape: `input_tokens` includes `input_tokens_details.cached_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelegationUsage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
}

impl Pricing {
    /// A GPT-Live model's voice rates (`pricing."<model>".active_per_minute`, and
    /// `standby_per_minute` where the model has standby), or a loud error naming the table.
    pub fn live_rates(&self, model: &str) -> Result<LiveRates, MeteringError> {
        let r = self.rates(model)?;
        if !r.bills_seconds() {
            return Err(not_billed(model, Billing::Seconds));
        }
        Ok(LiveRates {
            active_per_minute: r.active_per_minute,
            standby_per_minute: (r.standby_per_minute.0 > 0).then_some(r.standby_per_minute),
        })
    }

    /// Prices one delegated response as text tokens of the delegation model (its
    /// `pricing."<model>"` row: `text_in`, `text_cached`, `text_out`); an unpriced delegation
    /// model is a loud error, never $0.
    pub fn price_delegation(
        &self,
        model: &str,
        usage: &DelegationUsage,
    ) -> Result<ResponseCost, MeteringError> {
        let tokens = TokenCounts {
            input_text: usage.input_tokens,
            cached_text: usage.cached_tokens,
            output_text: usage.output_tokens,
            ..TokenCounts::default()
        };
        self.price_response(model, &tokens)
    }
}

/// One Live session's voice cost over time: estimate between usage reports, the server's
/// final figure at the close. Time is an input (ms on any monotonic clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMeter {
    model: String,
    rates: LiveRates,
    started_at_ms: Option<u64>,
    reported_s: Option<u64>,
    final_s: Option<u64>,
}

impl LiveMeter {
    /// A session of `model` created (the initialisation charge is owed from now).
    pub fn new(model: &str, rates: LiveRates) -> Self {
        Self {
            model: model.to_owned(),
            rates,
            started_at_ms: None,
            reported_s: None,
            final_s: None,
        }
    }

    /// `session.started` arrived at `at_ms`: the session runs.
    pub fn started(&mut self, at_ms: u64) {
        self.started_at_ms.get_or_insert(at_ms);
    }

    /// `session.usage.updated`: cumulative, so the largest figure wins (never summed).
    pub fn usage(&mut self, seconds: u64) {
        self.reported_s = Some(self.reported_s.map_or(seconds, |r| r.max(seconds)));
    }

    /// `session.closed`: the final seconds replace every estimate.
    pub fn closed(&mut self, seconds: u64) {
        self.usage(seconds);
        self.final_s = self.reported_s;
    }

    /// What the session has cost by `now_ms`: the final figure once closed; else the larger
    /// of the last report and the whole seconds elapsed since `session.started` (rounded up,
    /// so a limit stops the session no later than the bill says it should).
    pub fn cost_at(&self, now_ms: u64) -> Result<LiveCost, MeteringError> {
        let (seconds, estimated) = match (self.final_s, self.started_at_ms) {
            (Some(s), _) => (LiveSeconds::Total(s), false),
            (None, None) => (LiveSeconds::NeverStarted, false),
            (None, Some(start)) => {
                let elapsed = now_ms.saturating_sub(start).div_ceil(1000);
                let reported = self.reported_s.unwrap_or(0);
                (
                    LiveSeconds::Total(elapsed.max(reported)),
                    elapsed > reported,
                )
            }
        };
        let mut cost = price_live(&self.model, &self.rates, seconds)?;
        cost.estimated = estimated;
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shipped(model: &str) -> LiveRates {
        super::super::Pricing::from_config(&std::collections::BTreeMap::new())
            .unwrap()
            .live_rates(model)
            .unwrap()
    }

    fn live1() -> LiveRates {
        shipped("gpt-live-1")
    }

    fn live11() -> LiveRates {
        shipped("gpt-live-1.1")
    }

    fn usd(s: &str) -> NanoUsd {
        s.parse().unwrap()
    }

    #[test]
    fn openais_example_and_the_initialisation_charge() {
        // 90 s at $0.05/min = $0.075, not 105 s.
        let c = price_live("gpt-live-1", &live1(), LiveSeconds::Total(90)).unwrap();
        assert_eq!(
            (c.cost, c.billed_seconds, c.upper_bound),
            (usd("0.075"), 90, false)
        );
        // Never running: 15 s. Shorter than 15 s: still 15 s.
        for s in [
            LiveSeconds::NeverStarted,
            LiveSeconds::Total(0),
            LiveSeconds::Total(4),
        ] {
            let c = price_live("gpt-live-1", &live1(), s).unwrap();
            assert_eq!((c.cost, c.billed_seconds), (usd("0.0125"), 15), "{s:?}");
        }
        // One second past the charge: 16 × 0.05/60 = 0.01333… → half-up to the nano-dollar.
        let c = price_live("gpt-live-1", &live1(), LiveSeconds::Total(16)).unwrap();
        assert_eq!(c.cost, NanoUsd(13_333_333));
        let c = price_live("gpt-live-1", &live1(), LiveSeconds::Total(17)).unwrap();
        assert_eq!(c.cost, NanoUsd(14_166_667));
    }

    #[test]
    fn standby_is_cheaper_and_an_unknown_split_is_an_upper_bound() {
        let total = price_live("gpt-live-1.1", &live11(), LiveSeconds::Total(120)).unwrap();
        assert_eq!((total.cost, total.upper_bound), (usd("0.10"), true));
        let split = LiveSeconds::Split {
            active: 60,
            standby: 60,
        };
        let exact = price_live("gpt-live-1.1", &live11(), split).unwrap();
        assert_eq!((exact.cost, exact.upper_bound), (usd("0.07"), false));
        // gpt-live-1 has no standby: its total is exact, a standby figure is an error.
        assert!(
            !price_live("gpt-live-1", &live1(), LiveSeconds::Total(120))
                .unwrap()
                .upper_bound
        );
        let err = price_live("gpt-live-1", &live1(), split).unwrap_err();
        assert!(err.to_string().contains("gpt-live-1"), "{err}");
        // The 1.1 initialisation charge's rate is not documented: an upper bound too.
        let never = price_live("gpt-live-1.1", &live11(), LiveSeconds::NeverStarted).unwrap();
        assert!(never.upper_bound);
    }

    #[test]
    fn absurd_seconds_are_an_overflow_not_a_capped_figure() {
        let err = price_live("gpt-live-1", &live1(), LiveSeconds::Total(u64::MAX)).unwrap_err();
        assert!(matches!(err, MeteringError::Overflow { .. }), "{err:?}");
        let err = price_live(
            "gpt-live-1",
            &live1(),
            LiveSeconds::Total(10_000_000_000_000),
        )
        .unwrap_err();
        assert!(matches!(err, MeteringError::Overflow { .. }), "{err:?}");
    }

    #[test]
    fn the_meter_estimates_between_reports_and_the_close_replaces_it() {
        let mut m = LiveMeter::new("gpt-live-1", live1());
        let never = m.cost_at(60_000).unwrap();
        assert_eq!((never.billed_seconds, never.estimated), (15, false));
        m.started(1_000);
        // 30.2 s in: estimated 31 s from elapsed time.
        let est = m.cost_at(31_200).unwrap();
        assert_eq!((est.billed_seconds, est.estimated), (31, true));
        m.usage(60);
        m.usage(45);
        assert_eq!(
            m.cost_at(50_000).unwrap().billed_seconds,
            60,
            "a stale report never lowers it"
        );
        assert!(!m.cost_at(50_000).unwrap().estimated);
        m.closed(62);
        let fin = m.cost_at(10_000_000).unwrap();
        assert_eq!((fin.billed_seconds, fin.estimated), (62, false));
    }

    #[test]
    fn delegation_tokens_are_priced_as_the_delegation_models_text() {
        let mut rows = std::collections::BTreeMap::new();
        rows.insert(
            "gpt-5-mini".to_owned(),
            super::super::ModelPricing {
                text_in: crate::money::UsdAmount(usd("0.25")),
                text_cached: crate::money::UsdAmount(usd("0.025")),
                text_out: crate::money::UsdAmount(usd("2.00")),
                ..Default::default()
            },
        );
        let p = super::super::Pricing::from_config(&rows).unwrap();
        let u = DelegationUsage {
            input_tokens: 1_450,
            cached_tokens: 1_280,
            output_tokens: 42,
        };
        // 170 × 250 + 1280 × 25 + 42 × 2000 nano-dollars.
        let c = p.price_delegation("gpt-5-mini", &u).unwrap();
        assert_eq!(c.cost.total(), NanoUsd(42_500 + 32_000 + 84_000));
        let err = p.price_delegation("gpt-5-nano", &u).unwrap_err();
        assert!(
            err.to_string().contains("[pricing.\"gpt-5-nano\"]"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn more_seconds_never_cost_less(a in 0u64..1_000_000, b in 0u64..1_000_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            for rates in [live1(), live11()] {
                let l = price_live("m", &rates, LiveSeconds::Total(lo)).unwrap();
                let h = price_live("m", &rates, LiveSeconds::Total(hi)).unwrap();
                prop_assert!(l.cost <= h.cost);
                prop_assert!(l.billed_seconds >= INITIALIZATION_S);
            }
        }

        #[test]
        fn the_upper_bound_bounds_every_split(active in 0u64..1_000_000, standby in 0u64..1_000_000) {
            let total = price_live("m", &live11(), LiveSeconds::Total(active + standby)).unwrap();
            let split = price_live("m", &live11(), LiveSeconds::Split { active, standby }).unwrap();
            prop_assert!(total.upper_bound && !split.upper_bound);
            prop_assert!(split.cost <= total.cost);
            if standby == 0 {
                prop_assert_eq!(split.cost, total.cost);
            }
        }

        /// Per second: pricing the total equals adding the parts, within the half-up rounding.
        #[test]
        fn seconds_add_up_within_a_nano_dollar(a in 15u64..1_000_000, b in 15u64..1_000_000) {
            let p = |s| price_live("m", &live1(), LiveSeconds::Total(s)).unwrap().cost.0;
            let sum = p(a) + p(b);
            prop_assert!(p(a + b).abs_diff(sum) <= 1, "{} vs {}", p(a + b), sum);
        }

        /// Reports in any order: the meter's figure is the largest one, and never below the
        /// last report; the close fixes it whatever the clock says.
        #[test]
        fn the_meter_is_order_insensitive(reports in proptest::collection::vec(0u64..100_000, 0..12), now in 0u64..200_000_000) {
            let mut fwd = LiveMeter::new("gpt-live-1", live1());
            let mut rev = fwd.clone();
            fwd.started(0);
            rev.started(0);
            for r in &reports { fwd.usage(*r); }
            for r in reports.iter().rev() { rev.usage(*r); }
            let (f, r) = (fwd.cost_at(now).unwrap(), rev.cost_at(now).unwrap());
            prop_assert_eq!(f, r);
            let top = reports.iter().copied().max().unwrap_or(0);
            prop_assert!(f.billed_seconds >= top.max(INITIALIZATION_S));
            fwd.closed(top);
            prop_assert_eq!(fwd.cost_at(now).unwrap().billed_seconds, top.max(INITIALIZATION_S));
        }
    }
}
