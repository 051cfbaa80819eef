//! A GPT-Live session's money inside the lifecycle, without I/O: the voice meter (estimate
//! from elapsed time between the server's cumulative reports, its final figure at the close),
//! the delegated responses, and what each recorded fact adds to the kiosk's spend.
//!
//! Voice figures are cumulative, so an event records the figure and, apart, the increment
//! over the last recorded figure (`charged_nusd`, never negative): the local daily budget sums
//! increments, central keeps the largest figure.

use crate::events::{EventPayload, LiveTotals};
use crate::metering::{LiveCost, LiveMeter, LiveRates, LiveSeconds, MeteringError, price_live};
use crate::money::NanoUsd;

/// One Live session's account.
#[derive(Debug, Clone)]
pub(super) struct LiveAccount {
    model: String,
    rates: LiveRates,
    meter: LiveMeter,
    /// `POST /v1/live/sessions` answered 201: the initialisation charge is owed.
    created: bool,
    /// The voice figure last recorded in an event.
    recorded_voice: NanoUsd,
    delegation: NanoUsd,
    /// `session.closed`'s figure arrived.
    closed: bool,
}

impl LiveAccount {
    pub(super) fn new(model: &str, rates: LiveRates) -> Self {
        LiveAccount {
            model: model.to_owned(),
            rates,
            meter: LiveMeter::new(model, rates),
            created: false,
            recorded_voice: NanoUsd::ZERO,
            delegation: NanoUsd::ZERO,
            closed: false,
        }
    }

    /// The session runs another model than configured: meter that one (before it started).
    pub(super) fn switch_model(&mut self, model: &str, rates: LiveRates) {
        self.model = model.to_owned();
        self.rates = rates;
        self.meter = LiveMeter::new(model, rates);
    }

    pub(super) fn created(&mut self) {
        self.created = true;
    }

    /// `session.started` arrived at `now_ms`.
    pub(super) fn started(&mut self, now_ms: u64) {
        self.created = true;
        self.meter.started(now_ms);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    /// A server figure (`session.usage.updated`, or `session.closed` when `closed`): the event
    /// to record and what it adds to today's spend.
    pub(super) fn report(
        &mut self,
        seconds: u64,
        closed: bool,
        raw_usage: serde_json::Value,
    ) -> Result<(EventPayload, NanoUsd), MeteringError> {
        self.created = true;
        let priced = price_live(&self.model, &self.rates, LiveSeconds::Total(seconds))?;
        if closed {
            self.meter.closed(seconds);
            self.closed = true;
        } else {
            self.meter.usage(seconds);
        }
        let charged = self.charge(priced.cost);
        Ok((
            EventPayload::LiveUsage {
                model: self.model.clone(),
                seconds,
                billed_seconds: priced.billed_seconds,
                voice_nusd: priced.cost,
                upper_bound: priced.upper_bound,
                closed,
                charged_nusd: charged,
                raw_usage,
            },
            charged,
        ))
    }

    /// A delegated response's cost (recorded and charged by the caller as it comes).
    pub(super) fn delegated(&mut self, cost: NanoUsd) {
        self.delegation += cost;
    }

    /// The voice cost at `now_ms`: the final figure once closed, else the larger of the last
    /// report and the elapsed time; nothing before the session was created.
    fn voice_at(&self, now_ms: u64) -> Result<LiveCost, MeteringError> {
        if !self.created {
            return Ok(LiveCost {
                cost: NanoUsd::ZERO,
                billed_seconds: 0,
                upper_bound: false,
                estimated: false,
            });
        }
        self.meter.cost_at(now_ms)
    }

    /// What the session has cost by `now_ms`, voice and delegation. A figure too large to
    /// price counts as unlimited, so the limits stop the session.
    pub(super) fn spend_at(&self, now_ms: u64) -> NanoUsd {
        match self.voice_at(now_ms) {
            Ok(voice) => voice.cost.max(self.recorded_voice) + self.delegation,
            Err(_) => NanoUsd(u64::MAX),
        }
    }

    /// Spend at `now_ms` that no recorded event has charged yet (the estimate's lead).
    pub(super) fn pending_at(&self, now_ms: u64) -> NanoUsd {
        NanoUsd(
            self.spend_at(now_ms)
                .0
                .saturating_sub(self.recorded_voice.0 + self.delegation.0),
        )
    }

    /// Voice seconds billed so far, estimated between reports (for `status` and `/metrics`).
    pub(super) fn billed_seconds_at(&self, now_ms: u64) -> u64 {
        self.voice_at(now_ms).map_or(0, |c| c.billed_seconds)
    }

    /// The session's totals at its end (`now_ms`), charging what the last recorded figure
    /// did not. Without `session.closed`, the voice cost is the estimate, marked so.
    pub(super) fn finish(&mut self, now_ms: u64) -> LiveTotals {
        let voice = self.voice_at(now_ms).unwrap_or(LiveCost {
            cost: self.recorded_voice,
            billed_seconds: 0,
            upper_bound: true,
            estimated: true,
        });
        let voice_nusd = voice.cost.max(self.recorded_voice);
        let charged_nusd = self.charge(voice_nusd);
        LiveTotals {
            billed_seconds: voice.billed_seconds,
            voice_nusd,
            delegation_nusd: self.delegation,
            upper_bound: voice.upper_bound,
            estimated: self.created && !self.closed,
            charged_nusd,
        }
    }

    /// Records `figure` as the session's voice cost; returns the increment (never negative).
    fn charge(&mut self, figure: NanoUsd) -> NanoUsd {
        let charged = NanoUsd(figure.0.saturating_sub(self.recorded_voice.0));
        self.recorded_voice = self.recorded_voice.max(figure);
        charged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metering::Pricing;
    use std::collections::BTreeMap;

    fn account(model: &str) -> LiveAccount {
        let rates = Pricing::from_config(&BTreeMap::new())
            .unwrap()
            .live_rates(model)
            .unwrap();
        LiveAccount::new(model, rates)
    }

    fn usd(s: &str) -> NanoUsd {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_is_owed_before_the_session_is_created() {
        let mut a = account("gpt-live-1");
        assert_eq!(a.spend_at(60_000), NanoUsd::ZERO);
        let t = a.finish(60_000);
        assert_eq!(
            (t.voice_nusd, t.billed_seconds, t.estimated),
            (NanoUsd::ZERO, 0, false)
        );
    }

    #[test]
    fn a_created_session_that_never_starts_owes_the_initialisation_charge() {
        let mut a = account("gpt-live-1");
        a.created();
        assert_eq!(a.spend_at(5_000), usd("0.0125"));
        let t = a.finish(5_000);
        assert_eq!((t.voice_nusd, t.billed_seconds), (usd("0.0125"), 15));
        assert_eq!(t.charged_nusd, usd("0.0125"));
    }

    #[test]
    fn the_estimate_runs_ahead_of_reports_and_the_close_replaces_it() {
        let mut a = account("gpt-live-1");
        a.started(1_000);
        // 90 s elapsed, nothing reported: estimate 90 s = $0.075, none of it charged yet.
        assert_eq!(a.spend_at(91_000), usd("0.075"));
        assert_eq!(a.pending_at(91_000), usd("0.075"));
        let (ev, charged) = a
            .report(60, false, serde_json::json!({"seconds": 60}))
            .unwrap();
        assert_eq!(charged, usd("0.05"));
        assert!(
            matches!(ev, EventPayload::LiveUsage { voice_nusd, closed: false, .. } if voice_nusd == usd("0.05"))
        );
        assert_eq!(a.pending_at(91_000), usd("0.025"));
        // The close says 88 s: lower than the estimate, and final.
        let (_, charged) = a
            .report(88, true, serde_json::json!({"seconds": 88}))
            .unwrap();
        assert_eq!(charged, usd("0.023333333"));
        assert_eq!(a.spend_at(500_000), usd("0.073333333"));
        let t = a.finish(500_000);
        assert_eq!(
            (t.voice_nusd, t.billed_seconds, t.estimated),
            (usd("0.073333333"), 88, false)
        );
        assert_eq!(t.charged_nusd, NanoUsd::ZERO);
    }

    #[test]
    fn without_a_close_the_end_charges_the_estimate_and_says_so() {
        let mut a = account("gpt-live-1.1");
        a.started(0);
        a.report(60, false, serde_json::Value::Null).unwrap();
        a.delegated(usd("0.02"));
        let t = a.finish(75_500);
        // 76 s (rounded up) at the active rate: an upper bound for 1.1.
        assert_eq!(t.billed_seconds, 76);
        assert_eq!(t.voice_nusd, usd("0.063333333"));
        assert!(t.estimated && t.upper_bound);
        assert_eq!(t.charged_nusd, usd("0.013333333"));
        assert_eq!(t.total(), usd("0.083333333"));
    }

    #[test]
    fn reports_out_of_order_never_lower_the_figure_or_charge_twice() {
        let mut a = account("gpt-live-1");
        a.started(0);
        let (_, c1) = a.report(120, false, serde_json::Value::Null).unwrap();
        let (_, c2) = a.report(60, false, serde_json::Value::Null).unwrap();
        assert_eq!((c1, c2), (usd("0.1"), NanoUsd::ZERO));
        assert_eq!(a.spend_at(1_000), usd("0.1"));
    }
}
