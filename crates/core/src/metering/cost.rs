//! Usage -> cost: one `response.done` usage or one input transcription usage into a
//! [`CostBreakdown`], and exact per-session totals.
//!
//! Cached input is a subset of input (reference §6.1). If OpenAI ever reports more cached than
//! input tokens in a category, the cached count is **clamped** to the input count (all of that
//! input priced at the cached rate) and the result says so: refusing to price would lose a
//! billed response from the session's cost and budget, and the raw usage is stored alongside
//! so the row can be re-priced later.

use serde::{Deserialize, Serialize};

use super::pricing::{
    AudioSeconds, Billing, MAX_USAGE_COST, MeteringError, Pricing, Rates, not_billed,
};
use crate::events::{CostBreakdown, TokenCounts};
use crate::money::NanoUsd;

/// Nanoseconds in one minute, for per-minute transcription prices.
const NANOS_PER_MINUTE: u128 = 60 * 1_000_000_000;

/// The cost of one response, and the token counts it was priced on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseCost {
    /// The four seed categories; `transcription_nusd` is 0 here.
    pub cost: CostBreakdown,
    /// The counts as priced (cached counts clamped to input counts when OpenAI over-reports).
    pub tokens: TokenCounts,
    /// True when some cached count exceeded its input count and was clamped: log it once.
    pub clamped_cached: bool,
}

/// Input transcription usage, exactly as `conversation.item.input_audio_transcription.completed`
/// carries it: token-billed (`gpt-4o-*-transcribe`) or duration-billed (`whisper-1`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptionUsage {
    Tokens {
        #[serde(default)]
        input_tokens: u64,
        #[serde(default)]
        output_tokens: u64,
        #[serde(default)]
        total_tokens: u64,
        /// When absent, all input tokens are taken as audio (an ASR model's input is audio).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_token_details: Option<TranscriptionInputDetails>,
    },
    Duration {
        seconds: AudioSeconds,
    },
}

/// The split of a transcription's input tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptionInputDetails {
    #[serde(default)]
    pub text_tokens: u64,
    #[serde(default)]
    pub audio_tokens: u64,
}

/// Exact sums of products `count × rate`, or `None` past [`MAX_USAGE_COST`].
fn priced(terms: &[(u64, u64)]) -> Option<NanoUsd> {
    terms
        .iter()
        .try_fold(NanoUsd::ZERO, |sum, &(count, rate)| {
            sum.checked_add(NanoUsd::checked_mul(count, rate)?)
        })
        .filter(|n| *n <= MAX_USAGE_COST)
}

impl Rates {
    /// Prices token counts into the four seed categories. Pure and linear in the counts.
    ///
    /// `Err(Overflow)` when a category or the total would exceed [`MAX_USAGE_COST`]: checked
    /// arithmetic, never a capped figure.
    pub fn price_tokens(
        &self,
        model: &str,
        t: &TokenCounts,
    ) -> Result<ResponseCost, MeteringError> {
        let clamped_cached = t.cached_text > t.input_text
            || t.cached_audio > t.input_audio
            || t.cached_image > t.input_image;
        let tokens = TokenCounts {
            cached_text: t.cached_text.min(t.input_text),
            cached_audio: t.cached_audio.min(t.input_audio),
            cached_image: t.cached_image.min(t.input_image),
            ..*t
        };
        let overflow = |what| MeteringError::Overflow {
            model: model.to_owned(),
            what,
            counts: format!("{t:?}"),
        };
        let category = |what, terms: &[(u64, u64)]| priced(terms).ok_or_else(|| overflow(what));
        let cost = CostBreakdown {
            input_text_nusd: category(
                "input text and image",
                &[
                    (tokens.input_text - tokens.cached_text, self.text_in),
                    (tokens.cached_text, self.text_cached),
                    (tokens.input_image - tokens.cached_image, self.image_in),
                    (tokens.cached_image, self.image_cached),
                ],
            )?,
            input_audio_nusd: category(
                "input audio",
                &[
                    (tokens.input_audio - tokens.cached_audio, self.audio_in),
                    (tokens.cached_audio, self.audio_cached),
                ],
            )?,
            output_text_nusd: category("output text", &[(tokens.output_text, self.text_out)])?,
            output_audio_nusd: category("output audio", &[(tokens.output_audio, self.audio_out)])?,
            transcription_nusd: NanoUsd::ZERO,
        };
        let total = [
            cost.input_audio_nusd,
            cost.output_audio_nusd,
            cost.output_text_nusd,
        ]
        .into_iter()
        .try_fold(cost.input_text_nusd, NanoUsd::checked_add)
        .filter(|n| *n <= MAX_USAGE_COST);
        if total.is_none() {
            return Err(overflow("the response"));
        }
        Ok(ResponseCost {
            cost,
            tokens,
            clamped_cached,
        })
    }
}

impl Pricing {
    /// Prices one `response.done` usage of a Realtime model.
    ///
    /// Image input has no seed column, so its cost is counted in `input_text_nusd` (the
    /// non-audio input); the four categories still add up to the model's cost.
    pub fn price_response(
        &self,
        model: &str,
        tokens: &TokenCounts,
    ) -> Result<ResponseCost, MeteringError> {
        self.require_realtime(model)?.price_tokens(model, tokens)
    }

    /// Prices one input transcription usage into `transcription_nusd` (other fields 0).
    ///
    /// Duration-billed usage is charged pro rata to the nanosecond and rounded half up to the
    /// nearest nano-dollar, per transcribed item.
    pub fn price_transcription(
        &self,
        model: &str,
        usage: &TranscriptionUsage,
    ) -> Result<CostBreakdown, MeteringError> {
        let r = self.rates(model)?;
        let nusd = match *usage {
            TranscriptionUsage::Tokens {
                input_tokens,
                output_tokens,
                input_token_details,
                ..
            } => {
                if !r.bills_tokens() {
                    return Err(not_billed(model, Billing::Tokens));
                }
                let d = input_token_details.unwrap_or(TranscriptionInputDetails {
                    text_tokens: 0,
                    audio_tokens: input_tokens,
                });
                priced(&[
                    (d.audio_tokens, r.audio_in),
                    (d.text_tokens, r.text_in),
                    (output_tokens, r.text_out),
                ])
                .ok_or_else(|| MeteringError::Overflow {
                    model: model.to_owned(),
                    what: "the transcription",
                    counts: format!("{usage:?}"),
                })?
            }
            TranscriptionUsage::Duration { seconds } => {
                if !r.bills_minutes() {
                    return Err(not_billed(model, Billing::Minutes));
                }
                let scaled = u128::from(r.per_minute.0) * seconds.0.as_nanos();
                let rounded = (scaled + NANOS_PER_MINUTE / 2) / NANOS_PER_MINUTE;
                u64::try_from(rounded)
                    .ok()
                    .map(NanoUsd)
                    .filter(|n| *n <= MAX_USAGE_COST)
                    .ok_or_else(|| MeteringError::Overflow {
                        model: model.to_owned(),
                        what: "the transcription",
                        counts: format!("{usage:?}"),
                    })?
            }
        };
        Ok(CostBreakdown {
            transcription_nusd: nusd,
            ..CostBreakdown::default()
        })
    }
}

/// Exact running totals of one session: token counts and cost (the `session_ended` row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionMeter {
    tokens: TokenCounts,
    cost: CostBreakdown,
    responses: u32,
}

impl SessionMeter {
    /// Adds one priced response.
    pub fn add_response(&mut self, r: &ResponseCost) {
        self.tokens += r.tokens;
        self.cost += r.cost;
        self.responses += 1;
    }

    /// Adds one priced transcription (its `transcription_nusd`).
    pub fn add_transcription(&mut self, cost: &CostBreakdown) {
        self.cost += *cost;
    }

    pub fn tokens(&self) -> TokenCounts {
        self.tokens
    }

    pub fn cost(&self) -> CostBreakdown {
        self.cost
    }

    /// Responses priced so far.
    pub fn responses(&self) -> u32 {
        self.responses
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn pricing() -> Pricing {
        Pricing::from_config(&BTreeMap::new()).unwrap()
    }

    /// The S1 `response.done` example (reference §8).
    fn s1_example() -> TokenCounts {
        TokenCounts {
            input_text: 119,
            input_audio: 13,
            cached_text: 64,
            output_text: 30,
            output_audio: 91,
            ..Default::default()
        }
    }

    #[test]
    fn reproduces_the_reference_worked_check() {
        let r = pricing()
            .price_response("gpt-realtime", &s1_example())
            .unwrap();
        assert_eq!(r.cost.model_total(), NanoUsd(6_965_600));
        assert_eq!(r.cost.model_total().to_string(), "$0.0069656");
        assert_eq!(r.cost.input_text_nusd, NanoUsd(55 * 4_000 + 64 * 400));
        assert_eq!(r.cost.input_audio_nusd, NanoUsd(13 * 32_000));
        assert_eq!(r.cost.output_text_nusd, NanoUsd(30 * 16_000));
        assert_eq!(r.cost.output_audio_nusd, NanoUsd(91 * 64_000));
        assert_eq!(r.cost.transcription_nusd, NanoUsd::ZERO);
        assert!(!r.clamped_cached);
    }

    #[test]
    fn reproduces_the_goodbye_example_cost() {
        // Reference §11.2: $0.0267216 on gpt-realtime prices.
        let t = TokenCounts {
            input_text: 1450,
            input_audio: 220,
            cached_text: 1280,
            cached_audio: 64,
            output_text: 42,
            output_audio: 310,
            ..Default::default()
        };
        let r = pricing().price_response("gpt-realtime", &t).unwrap();
        assert_eq!(r.cost.total(), NanoUsd(26_721_600));
    }

    #[test]
    fn image_tokens_are_priced_inside_input_text() {
        let t = TokenCounts {
            input_image: 100,
            cached_image: 40,
            ..Default::default()
        };
        let r = pricing().price_response("gpt-realtime-1.5", &t).unwrap();
        assert_eq!(r.cost.input_text_nusd, NanoUsd(60 * 5_000 + 40 * 500));
        assert_eq!(r.cost.model_total(), r.cost.input_text_nusd);
    }

    #[test]
    fn cached_above_input_is_clamped_and_flagged() {
        let t = TokenCounts {
            input_audio: 10,
            cached_audio: 25,
            ..Default::default()
        };
        let r = pricing().price_response("gpt-realtime", &t).unwrap();
        assert!(r.clamped_cached);
        assert_eq!(r.tokens.cached_audio, 10);
        assert_eq!(r.cost.input_audio_nusd, NanoUsd(10 * 400));
    }

    #[test]
    fn unknown_model_is_never_priced_as_zero() {
        let err = pricing()
            .price_response("gpt-realtime-next", &s1_example())
            .unwrap_err();
        assert!(matches!(err, MeteringError::UnknownModel { .. }));
        assert!(
            err.to_string().contains("pricing.\"gpt-realtime-next\""),
            "{err}"
        );
    }

    #[test]
    fn token_billed_transcription() {
        // Reference §11.3: 33 audio tokens in, 12 text tokens out on gpt-4o-mini-transcribe.
        let u: TranscriptionUsage = serde_json::from_str(
            r#"{"type":"tokens","total_tokens":45,"input_tokens":33,
                "input_token_details":{"text_tokens":0,"audio_tokens":33},"output_tokens":12}"#,
        )
        .unwrap();
        let c = pricing()
            .price_transcription("gpt-4o-mini-transcribe", &u)
            .unwrap();
        assert_eq!(c.transcription_nusd, NanoUsd(33 * 3_000 + 12 * 5_000));
        assert_eq!(c.model_total(), NanoUsd::ZERO);
        assert_eq!(c.total(), c.transcription_nusd);
    }

    #[test]
    fn token_transcription_without_details_counts_input_as_audio() {
        let u = TranscriptionUsage::Tokens {
            input_tokens: 10,
            output_tokens: 0,
            total_tokens: 10,
            input_token_details: None,
        };
        let c = pricing()
            .price_transcription("gpt-4o-transcribe", &u)
            .unwrap();
        assert_eq!(c.transcription_nusd, NanoUsd(10 * 6_000));
    }

    #[test]
    fn duration_billed_transcription_rounds_half_up() {
        let u: TranscriptionUsage =
            serde_json::from_str(r#"{"type":"duration","seconds":3.4}"#).unwrap();
        // whisper-1: $0.006/min = 100_000 n$/s -> 3.4 s = 340_000 n$.
        let c = pricing().price_transcription("whisper-1", &u).unwrap();
        assert_eq!(c.transcription_nusd, NanoUsd(340_000));
        // gpt-realtime-whisper: $0.017/min; 1 s = 283_333.33 n$ -> 283_333.
        let one = TranscriptionUsage::Duration {
            seconds: AudioSeconds(Duration::from_secs(1)),
        };
        let c = pricing()
            .price_transcription("gpt-realtime-whisper", &one)
            .unwrap();
        assert_eq!(c.transcription_nusd, NanoUsd(283_333));
        let two = TranscriptionUsage::Duration {
            seconds: AudioSeconds(Duration::from_secs(2)),
        };
        let c = pricing()
            .price_transcription("gpt-realtime-whisper", &two)
            .unwrap();
        assert_eq!(c.transcription_nusd, NanoUsd(566_667));
    }

    #[test]
    fn transcription_billed_the_wrong_way_is_an_error() {
        let tokens = TranscriptionUsage::Tokens {
            input_tokens: 5,
            output_tokens: 1,
            total_tokens: 6,
            input_token_details: None,
        };
        let err = pricing()
            .price_transcription("whisper-1", &tokens)
            .unwrap_err();
        assert!(err.to_string().contains("pricing.\"whisper-1\""), "{err}");
        let secs = TranscriptionUsage::Duration {
            seconds: AudioSeconds(Duration::from_secs(1)),
        };
        assert!(
            pricing()
                .price_transcription("gpt-4o-transcribe", &secs)
                .is_err()
        );
    }

    #[test]
    fn negative_duration_is_refused_at_decode() {
        let r: Result<TranscriptionUsage, _> =
            serde_json::from_str(r#"{"type":"duration","seconds":-2}"#);
        assert!(r.is_err());
    }

    #[test]
    fn session_meter_sums_responses_and_transcriptions() {
        let p = pricing();
        let mut m = SessionMeter::default();
        let r = p.price_response("gpt-realtime", &s1_example()).unwrap();
        m.add_response(&r);
        m.add_response(&r);
        let u = TranscriptionUsage::Duration {
            seconds: AudioSeconds(Duration::from_secs(60)),
        };
        m.add_transcription(&p.price_transcription("whisper-1", &u).unwrap());
        assert_eq!(m.responses(), 2);
        assert_eq!(m.cost().model_total(), NanoUsd(2 * 6_965_600));
        assert_eq!(m.cost().transcription_nusd, NanoUsd(6_000_000));
        assert_eq!(m.cost().total(), NanoUsd(2 * 6_965_600 + 6_000_000));
        assert_eq!(m.tokens().output_audio, 182);
    }

    #[test]
    fn absurd_usage_is_an_overflow_error_naming_the_raw_counts_never_a_capped_cost() {
        let p = pricing();
        let absurd = TokenCounts {
            output_audio: u64::MAX / 2,
            ..TokenCounts::default()
        };
        let err = p.price_response("gpt-realtime", &absurd).unwrap_err();
        assert!(matches!(err, MeteringError::Overflow { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&(u64::MAX / 2).to_string()), "{text}");
        assert!(text.contains("gpt-realtime"), "{text}");
        // Just above the ceiling in one category, and in the total across categories.
        let audio_out = p.rates("gpt-realtime").unwrap().audio_out;
        let over = MAX_USAGE_COST.0 / audio_out + 1;
        let one = TokenCounts {
            output_audio: over,
            ..TokenCounts::default()
        };
        assert!(p.price_response("gpt-realtime", &one).is_err());
        let split = TokenCounts {
            output_audio: over / 2 + 1,
            input_audio: 0,
            output_text: MAX_USAGE_COST.0 / p.rates("gpt-realtime").unwrap().text_out / 2 + 1,
            ..TokenCounts::default()
        };
        assert!(p.price_response("gpt-realtime", &split).is_err());
        let huge_minutes = TranscriptionUsage::Duration {
            seconds: AudioSeconds(Duration::MAX),
        };
        assert!(matches!(
            p.price_transcription("whisper-1", &huge_minutes),
            Err(MeteringError::Overflow { .. })
        ));
        let huge_tokens = TranscriptionUsage::Tokens {
            input_tokens: u64::MAX,
            output_tokens: 0,
            total_tokens: u64::MAX,
            input_token_details: None,
        };
        assert!(matches!(
            p.price_transcription("gpt-4o-transcribe", &huge_tokens),
            Err(MeteringError::Overflow { .. })
        ));
    }

    /// Consistent usage: cached counts never exceed input counts.
    fn usage() -> impl Strategy<Value = TokenCounts> {
        (
            (0u64..1_000_000, 0u64..1_000_000, 0u64..100_000),
            (0u64..=100, 0u64..=100, 0u64..=100),
            (0u64..1_000_000, 0u64..1_000_000),
        )
            .prop_map(|((it, ia, ii), (pt, pa, pi), (ot, oa))| TokenCounts {
                input_text: it,
                input_audio: ia,
                input_image: ii,
                cached_text: it * pt / 100,
                cached_audio: ia * pa / 100,
                cached_image: ii * pi / 100,
                output_text: ot,
                output_audio: oa,
            })
    }

    fn model() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "gpt-realtime",
            "gpt-realtime-mini",
            "gpt-realtime-2",
            "gpt-4o-realtime-preview-2024-10-01",
            "gpt-4o-mini-realtime-preview",
        ])
    }

    proptest! {
        #[test]
        fn per_response_costs_sum_to_the_cost_of_summed_usage(
            m in model(),
            responses in prop::collection::vec(usage(), 0..20),
        ) {
            let p = pricing();
            let mut meter = SessionMeter::default();
            let mut summed = TokenCounts::default();
            for t in &responses {
                meter.add_response(&p.price_response(m, t).unwrap());
                summed += *t;
            }
            let whole = p.price_response(m, &summed).unwrap();
            prop_assert_eq!(meter.cost(), whole.cost);
            prop_assert_eq!(meter.tokens(), summed);
        }

        /// Against an exact u128 model: priced exactly when within the ceiling, an error
        /// otherwise; never a capped figure.
        #[test]
        fn any_usage_is_priced_exactly_or_refused(
            m in model(),
            counts in prop::array::uniform8(prop_oneof![
                0u64..1_000_000,
                any::<u64>(),
                (u64::MAX / 100_000)..(u64::MAX / 1_000),
            ]),
        ) {
            let t = TokenCounts {
                input_text: counts[0],
                input_audio: counts[1],
                input_image: counts[2],
                cached_text: counts[3].min(counts[0]),
                cached_audio: counts[4].min(counts[1]),
                cached_image: counts[5].min(counts[2]),
                output_text: counts[6],
                output_audio: counts[7],
            };
            let p = pricing();
            let r = p.rates(m).unwrap();
            let w = |n: u64, rate: u64| u128::from(n) * u128::from(rate);
            let exact = w(t.input_text - t.cached_text, r.text_in)
                + w(t.cached_text, r.text_cached)
                + w(t.input_audio - t.cached_audio, r.audio_in)
                + w(t.cached_audio, r.audio_cached)
                + w(t.input_image - t.cached_image, r.image_in)
                + w(t.cached_image, r.image_cached)
                + w(t.output_text, r.text_out)
                + w(t.output_audio, r.audio_out);
            match p.price_response(m, &t) {
                Ok(c) => {
                    prop_assert!(exact <= u128::from(MAX_USAGE_COST.0));
                    prop_assert_eq!(u128::from(c.cost.model_total().0), exact);
                }
                Err(e) => {
                    prop_assert!(matches!(e, MeteringError::Overflow { .. }), "{}", e);
                    prop_assert!(exact > u128::from(MAX_USAGE_COST.0));
                }
            }
        }

        #[test]
        fn categories_add_up_to_the_model_cost(m in model(), t in usage()) {
            let p = pricing();
            let r = p.rates(m).unwrap();
            let c = p.price_response(m, &t).unwrap().cost;
            let by_formula = (t.input_text - t.cached_text) * r.text_in
                + t.cached_text * r.text_cached
                + (t.input_audio - t.cached_audio) * r.audio_in
                + t.cached_audio * r.audio_cached
                + (t.input_image - t.cached_image) * r.image_in
                + t.cached_image * r.image_cached
                + t.output_text * r.text_out
                + t.output_audio * r.audio_out;
            prop_assert_eq!(c.model_total(), NanoUsd(by_formula));
            prop_assert_eq!(c.total(), c.model_total());
        }

        #[test]
        fn more_usage_never_costs_less(m in model(), a in usage(), b in usage()) {
            let p = pricing();
            let mut both = a;
            both += b;
            let ca = p.price_response(m, &a).unwrap().cost;
            let cab = p.price_response(m, &both).unwrap().cost;
            prop_assert!(cab.input_text_nusd >= ca.input_text_nusd);
            prop_assert!(cab.input_audio_nusd >= ca.input_audio_nusd);
            prop_assert!(cab.output_text_nusd >= ca.output_text_nusd);
            prop_assert!(cab.output_audio_nusd >= ca.output_audio_nusd);
            prop_assert!(cab.total() >= ca.total());
        }

        #[test]
        fn caching_never_costs_more_than_fresh_input(m in model(), t in usage()) {
            let p = pricing();
            let uncached = TokenCounts { cached_text: 0, cached_audio: 0, cached_image: 0, ..t };
            let fresh = p.price_response(m, &uncached).unwrap().cost.total();
            prop_assert!(p.price_response(m, &t).unwrap().cost.total() <= fresh);
        }

        #[test]
        fn over_reported_cache_is_clamped_never_underflows(
            m in model(),
            input in 0u64..1000,
            cached in 0u64..5000,
        ) {
            let t = TokenCounts { input_audio: input, cached_audio: cached, ..Default::default() };
            let r = pricing().price_response(m, &t).unwrap();
            prop_assert_eq!(r.clamped_cached, cached > input);
            prop_assert!(r.tokens.cached_audio <= r.tokens.input_audio);
        }

        #[test]
        fn duration_cost_is_monotonic_and_close_to_exact(a in 0u64..3_600_000, b in 0u64..3_600_000) {
            let p = pricing();
            let price = |ms: u64| {
                let u = TranscriptionUsage::Duration { seconds: AudioSeconds(Duration::from_millis(ms)) };
                p.price_transcription("gpt-realtime-whisper", &u).unwrap().transcription_nusd.0
            };
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(price(lo) <= price(hi));
            // 17_000_000 n$/min = 17_000_000 / 60_000 n$/ms; rounding is at most half a nano.
            let exact_x2 = 2 * 17_000_000u128 * u128::from(hi) / 60_000;
            prop_assert!((2 * u128::from(price(hi))).abs_diff(exact_x2) <= 2);
        }
    }
}
