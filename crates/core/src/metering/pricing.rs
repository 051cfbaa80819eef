//! The price table: shipped defaults for the Realtime and transcription models, replaced or
//! extended per model by the config's `pricing."<model>"` tables.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config_issue::ConfigIssue;
use crate::money::{NanoUsd, UsdAmount};

/// Tokens in the "per 1M tokens" unit OpenAI quotes prices in.
const TOKENS_PER_QUOTE: u64 = 1_000_000;

/// USD per one million tokens (decimal strings), as OpenAI publishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ModelPricing {
    pub text_in: UsdAmount,
    pub text_cached: UsdAmount,
    pub text_out: UsdAmount,
    pub audio_in: UsdAmount,
    pub audio_cached: UsdAmount,
    pub audio_out: UsdAmount,
    pub image_in: UsdAmount,
    pub image_cached: UsdAmount,
    /// For duration-billed transcription models: USD per minute of audio.
    pub per_minute: UsdAmount,
    /// GPT-Live: USD per minute of active voice time, billed per second.
    pub active_per_minute: UsdAmount,
    /// GPT-Live models with standby (`gpt-live-1.1`): USD per minute while inference is paused.
    pub standby_per_minute: UsdAmount,
}

/// Why a usage could not be priced, or a price table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeteringError {
    /// Never priced as $0: spend would go unseen by budgets and finance.
    #[error(
        "no price for model `{model}`: add a `[pricing.\"{model}\"]` table to the config \
         (USD per 1M tokens as strings: text_in, text_cached, text_out, audio_in, audio_cached, \
         audio_out, image_in, image_cached; or per_minute for duration-billed transcription; or \
         active_per_minute and standby_per_minute for GPT-Live)"
    )]
    UnknownModel { model: String },
    /// The model's row has no price for the way OpenAI billed this usage.
    #[error(
        "model `{model}` has no {billing} prices but OpenAI reported {billing}-billed usage: \
         set them in `[pricing.\"{model}\"]` ({fields})"
    )]
    NotBilledThisWay {
        model: String,
        billing: &'static str,
        fields: &'static str,
    },
    /// A `response.done` arrived without `usage`: the response was billed but its cost is
    /// unknown (not expected from GA servers).
    #[error(
        "OpenAI sent a response without usage: its cost is unknown and not counted in the \
         session's cost or the daily budget"
    )]
    NoUsage,
    /// A usage whose cost does not fit, or exceeds [`MAX_USAGE_COST`]: never capped to a
    /// figure that looks real. The raw counts go into the alert so the bill can be checked.
    #[error(
        "usage on model `{model}` is absurd: {what} costs more than {max} (counts as reported: \
         {counts}); it is not counted in the session's cost or the daily budget, check it \
         against OpenAI's usage dashboard",
        max = MAX_USAGE_COST
    )]
    Overflow {
        model: String,
        what: &'static str,
        counts: String,
    },
    #[error("invalid pricing:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    InvalidPricing(Vec<ConfigIssue>),
}

/// The most one usage event (one response, one transcription) may cost: $1,000,000. Real
/// responses cost cents; anything above is a corrupt or absurd report, and keeping every
/// priced amount this small keeps session and daily totals far from any integer limit and
/// within the stores' signed 64-bit columns.
pub const MAX_USAGE_COST: NanoUsd = NanoUsd(1_000_000 * crate::money::NANOS_PER_USD);

/// One model's prices in nano-dollars per token (and per minute of audio for duration-billed
/// transcription). Whole nano-dollars per token keep every cost an exact integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub text_in: u64,
    pub text_cached: u64,
    pub text_out: u64,
    pub audio_in: u64,
    pub audio_cached: u64,
    pub audio_out: u64,
    pub image_in: u64,
    pub image_cached: u64,
    /// Nano-dollars per minute of audio (`whisper-1`, `gpt-realtime-whisper`).
    pub per_minute: NanoUsd,
    /// GPT-Live: nano-dollars per active minute (billed per second).
    pub active_per_minute: NanoUsd,
    /// GPT-Live: nano-dollars per standby minute; 0 for a model without standby.
    pub standby_per_minute: NanoUsd,
}

impl Rates {
    /// Converts a config row; `key` is the row's config path for error messages.
    fn from_pricing(key: &str, p: &ModelPricing) -> Result<Rates, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut per_token = |field: &str, amount: UsdAmount| -> u64 {
            let per_quote = amount.0.0;
            if !per_quote.is_multiple_of(TOKENS_PER_QUOTE) {
                issues.push(ConfigIssue {
                    key: format!("{key}.{field}"),
                    problem: format!(
                        "\"{}\" has more than 6 decimals: prices per 1M tokens must be whole \
                         nano-dollars per token so costs stay exact",
                        amount.0.to_decimal_string()
                    ),
                });
            }
            per_quote / TOKENS_PER_QUOTE
        };
        let rates = Rates {
            text_in: per_token("text_in", p.text_in),
            text_cached: per_token("text_cached", p.text_cached),
            text_out: per_token("text_out", p.text_out),
            audio_in: per_token("audio_in", p.audio_in),
            audio_cached: per_token("audio_cached", p.audio_cached),
            audio_out: per_token("audio_out", p.audio_out),
            image_in: per_token("image_in", p.image_in),
            image_cached: per_token("image_cached", p.image_cached),
            per_minute: p.per_minute.0,
            active_per_minute: p.active_per_minute.0,
            standby_per_minute: p.standby_per_minute.0,
        };
        if rates.standby_per_minute.0 > 0 && !rates.bills_seconds() {
            issues.push(ConfigIssue {
                key: format!("{key}.active_per_minute"),
                problem: "a standby rate needs the active rate it pauses from".into(),
            });
        }
        if !rates.bills_tokens()
            && !rates.bills_minutes()
            && !rates.bills_seconds()
            && issues.is_empty()
        {
            issues.push(ConfigIssue {
                key: key.to_owned(),
                problem: "every price is 0: set the model's prices (USD per 1M tokens, \
                          per_minute, or active_per_minute for GPT-Live), or remove the table \
                          to use the shipped defaults"
                    .into(),
            });
        }
        if issues.is_empty() {
            Ok(rates)
        } else {
            Err(issues)
        }
    }

    /// True when some token price is set (Realtime models, token-billed transcription).
    pub fn bills_tokens(&self) -> bool {
        [
            self.text_in,
            self.text_cached,
            self.text_out,
            self.audio_in,
            self.audio_cached,
            self.audio_out,
            self.image_in,
            self.image_cached,
        ]
        .iter()
        .any(|&r| r > 0)
    }

    /// True when a per-minute price is set (duration-billed transcription).
    pub fn bills_minutes(&self) -> bool {
        self.per_minute.0 > 0
    }

    /// True when a GPT-Live voice rate is set (billed per second of session time).
    pub fn bills_seconds(&self) -> bool {
        self.active_per_minute.0 > 0
    }
}

/// The price table in force: shipped defaults, then the config's rows on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    models: BTreeMap<String, Rates>,
}

impl Pricing {
    /// Shipped defaults with the config's `pricing` map applied: a `pricing."<model>"` table
    /// replaces that model's shipped row entirely (prices left out are 0) or adds a new model.
    /// Every invalid price is reported with its key.
    pub fn from_config(
        overrides: &BTreeMap<String, ModelPricing>,
    ) -> Result<Pricing, MeteringError> {
        let mut rows = shipped_defaults();
        rows.extend(overrides.iter().map(|(m, p)| (m.clone(), p.clone())));
        let mut models = BTreeMap::new();
        let mut issues = Vec::new();
        for (model, row) in &rows {
            match Rates::from_pricing(&format!("pricing.\"{model}\""), row) {
                Ok(r) => {
                    models.insert(model.clone(), r);
                }
                Err(mut i) => issues.append(&mut i),
            }
        }
        if issues.is_empty() {
            Ok(Pricing { models })
        } else {
            Err(MeteringError::InvalidPricing(issues))
        }
    }

    /// The model's rates, or a loud error naming the config table to add.
    pub fn rates(&self, model: &str) -> Result<&Rates, MeteringError> {
        self.models
            .get(model)
            .ok_or_else(|| MeteringError::UnknownModel {
                model: model.to_owned(),
            })
    }

    /// Checks up front (at start-up or session start) that a Realtime model is token-priced.
    pub fn require_realtime(&self, model: &str) -> Result<&Rates, MeteringError> {
        let r = self.rates(model)?;
        if r.bills_tokens() {
            Ok(r)
        } else {
            Err(not_billed(model, Billing::Tokens))
        }
    }

    /// Checks up front that a transcription model has some price.
    pub fn require_transcription(&self, model: &str) -> Result<&Rates, MeteringError> {
        self.rates(model)
    }

    /// Every model the table knows, for `config check` and `doctor`.
    pub fn models(&self) -> impl Iterator<Item = (&str, &Rates)> {
        self.models.iter().map(|(m, r)| (m.as_str(), r))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Billing {
    Tokens,
    Minutes,
    Seconds,
}

pub(crate) fn not_billed(model: &str, billing: Billing) -> MeteringError {
    let (billing, fields) = match billing {
        Billing::Tokens => (
            "token",
            "text_in, text_cached, text_out, audio_in, audio_cached, audio_out",
        ),
        Billing::Minutes => ("per-minute", "per_minute"),
        Billing::Seconds => ("per-second", "active_per_minute, standby_per_minute"),
    };
    MeteringError::NotBilledThisWay {
        model: model.to_owned(),
        billing,
        fields,
    }
}

/// A length of audio as OpenAI reports it for duration-billed transcription
/// (`{"type":"duration","seconds":3.4}`). Negative, NaN or infinite values are refused when
/// the event is decoded, so pricing never sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct AudioSeconds(pub Duration);

impl TryFrom<f64> for AudioSeconds {
    type Error = String;
    fn try_from(s: f64) -> Result<Self, String> {
        Duration::try_from_secs_f64(s)
            .map(AudioSeconds)
            .map_err(|e| format!("`seconds` {s} is not a duration: {e}"))
    }
}

impl From<AudioSeconds> for f64 {
    fn from(s: AudioSeconds) -> f64 {
        s.0.as_secs_f64()
    }
}

/// A price per 1M tokens (or per minute) given in micro-dollars: `usd_micros(400_000)` = $0.40.
const fn usd_micros(micros: u64) -> UsdAmount {
    UsdAmount(NanoUsd(micros * 1_000))
}

/// `(text_in, text_cached, text_out, audio_in, audio_cached, audio_out, image_in, image_cached)`
/// in micro-dollars per 1M tokens.
type TokenRow = [u64; 8];

fn token_row(r: TokenRow) -> ModelPricing {
    ModelPricing {
        text_in: usd_micros(r[0]),
        text_cached: usd_micros(r[1]),
        text_out: usd_micros(r[2]),
        audio_in: usd_micros(r[3]),
        audio_cached: usd_micros(r[4]),
        audio_out: usd_micros(r[5]),
        image_in: usd_micros(r[6]),
        image_cached: usd_micros(r[7]),
        ..ModelPricing::default()
    }
}

/// The prices shipped with this build (USD per 1M tokens, or per minute), from the protocol
/// reference §9 (OpenAI model pages, 2026). Rows marked "partially confirmed" there are
/// best-known figures; override them with `pricing."<model>"` when OpenAI's page differs.
///
/// `gpt-realtime-2` and the `gpt-4o-*-realtime-preview` models have no published image price
/// here: the kiosk sends no images, so their image rates are 0.
pub fn shipped_defaults() -> BTreeMap<String, ModelPricing> {
    const GPT_REALTIME: TokenRow = [
        4_000_000, 400_000, 16_000_000, 32_000_000, 400_000, 64_000_000, 5_000_000, 500_000,
    ];
    const GPT_REALTIME_MINI: TokenRow = [
        600_000, 60_000, 2_400_000, 10_000_000, 300_000, 20_000_000, 800_000, 80_000,
    ];
    const GPT_REALTIME_2: TokenRow = [
        4_000_000, 400_000, 24_000_000, 32_000_000, 400_000, 64_000_000, 0, 0,
    ];
    const GPT_4O_PREVIEW: TokenRow = [
        5_000_000, 2_500_000, 20_000_000, 40_000_000, 2_500_000, 80_000_000, 0, 0,
    ];
    const GPT_4O_PREVIEW_2024_10_01: TokenRow = [
        5_000_000,
        2_500_000,
        20_000_000,
        100_000_000,
        20_000_000,
        200_000_000,
        0,
        0,
    ];
    const GPT_4O_MINI_PREVIEW: TokenRow = [
        600_000, 300_000, 2_400_000, 10_000_000, 300_000, 20_000_000, 0, 0,
    ];
    const GPT_4O_TRANSCRIBE: TokenRow = [2_500_000, 0, 10_000_000, 6_000_000, 0, 0, 0, 0];
    const GPT_4O_MINI_TRANSCRIBE: TokenRow = [1_250_000, 0, 5_000_000, 3_000_000, 0, 0, 0, 0];
    // GPT-Live's default delegation model (`openai.live.delegation_model`), text only: OpenAI's
    // published Responses prices, which the Live reference does not restate (override them with
    // `pricing."gpt-5-mini"` when the page differs).
    const GPT_5_MINI: TokenRow = [250_000, 25_000, 2_000_000, 0, 0, 0, 0, 0];

    let tokens: [(&str, TokenRow); 17] = [
        ("gpt-realtime", GPT_REALTIME),
        ("gpt-realtime-2025-08-28", GPT_REALTIME),
        ("gpt-realtime-1.5", GPT_REALTIME),
        ("gpt-realtime-mini", GPT_REALTIME_MINI),
        ("gpt-realtime-mini-2025-10-06", GPT_REALTIME_MINI),
        ("gpt-realtime-mini-2025-12-15", GPT_REALTIME_MINI),
        ("gpt-realtime-2", GPT_REALTIME_2),
        ("gpt-4o-realtime-preview", GPT_4O_PREVIEW),
        ("gpt-4o-realtime-preview-2025-06-03", GPT_4O_PREVIEW),
        ("gpt-4o-realtime-preview-2024-12-17", GPT_4O_PREVIEW),
        (
            "gpt-4o-realtime-preview-2024-10-01",
            GPT_4O_PREVIEW_2024_10_01,
        ),
        ("gpt-4o-mini-realtime-preview", GPT_4O_MINI_PREVIEW),
        (
            "gpt-4o-mini-realtime-preview-2024-12-17",
            GPT_4O_MINI_PREVIEW,
        ),
        ("gpt-4o-transcribe", GPT_4O_TRANSCRIBE),
        ("gpt-4o-mini-transcribe", GPT_4O_MINI_TRANSCRIBE),
        ("gpt-4o-mini-transcribe-2025-12-15", GPT_4O_MINI_TRANSCRIBE),
        ("gpt-5-mini", GPT_5_MINI),
    ];
    let per_minute = |micros: u64| ModelPricing {
        per_minute: usd_micros(micros),
        ..ModelPricing::default()
    };
    let mut rows: BTreeMap<String, ModelPricing> = tokens
        .into_iter()
        .map(|(m, r)| (m.to_owned(), token_row(r)))
        .collect();
    rows.insert("whisper-1".into(), per_minute(6_000));
    rows.insert("gpt-realtime-whisper".into(), per_minute(17_000));
    // GPT-Live voice time, per minute billed per second: $0.05 active; 1.1 adds $0.02 standby.
    let live = |active: u64, standby: u64| ModelPricing {
        active_per_minute: usd_micros(active),
        standby_per_minute: usd_micros(standby),
        ..ModelPricing::default()
    };
    rows.insert("gpt-live-1".into(), live(50_000, 0));
    rows.insert("gpt-live-1.1".into(), live(50_000, 20_000));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> UsdAmount {
        UsdAmount(s.parse().unwrap())
    }

    #[test]
    fn shipped_defaults_are_valid_and_cover_the_reference_models() {
        let p = Pricing::from_config(&BTreeMap::new()).unwrap();
        for m in [
            "gpt-realtime",
            "gpt-realtime-1.5",
            "gpt-realtime-mini",
            "gpt-realtime-2",
            "gpt-4o-realtime-preview-2025-06-03",
            "gpt-4o-realtime-preview-2024-12-17",
            "gpt-4o-realtime-preview-2024-10-01",
            "gpt-4o-mini-realtime-preview",
        ] {
            assert!(p.require_realtime(m).is_ok(), "{m}");
        }
        for m in [
            "whisper-1",
            "gpt-4o-transcribe",
            "gpt-4o-mini-transcribe",
            "gpt-realtime-whisper",
        ] {
            assert!(p.require_transcription(m).is_ok(), "{m}");
        }
    }

    #[test]
    fn gpt_realtime_rates_match_the_reference_table() {
        let p = Pricing::from_config(&BTreeMap::new()).unwrap();
        let r = p.rates("gpt-realtime").unwrap();
        assert_eq!((r.text_in, r.text_cached, r.text_out), (4_000, 400, 16_000));
        assert_eq!(
            (r.audio_in, r.audio_cached, r.audio_out),
            (32_000, 400, 64_000)
        );
        let w = p.rates("whisper-1").unwrap();
        assert_eq!(w.per_minute, NanoUsd(6_000_000));
        assert!(!w.bills_tokens());
        let mini = p.rates("gpt-realtime-mini").unwrap();
        assert_eq!((mini.audio_in, mini.audio_cached), (10_000, 300));
        let old = p.rates("gpt-4o-realtime-preview-2024-10-01").unwrap();
        assert_eq!(
            (old.audio_in, old.audio_cached, old.audio_out),
            (100_000, 20_000, 200_000)
        );
        assert_eq!(p.rates("gpt-realtime-2").unwrap().text_out, 24_000);
    }

    #[test]
    fn unknown_model_is_a_loud_error_naming_the_config_key() {
        let p = Pricing::from_config(&BTreeMap::new()).unwrap();
        let err = p.rates("gpt-realtime-9").unwrap_err();
        assert_eq!(
            err,
            MeteringError::UnknownModel {
                model: "gpt-realtime-9".into()
            }
        );
        assert!(
            err.to_string().contains("[pricing.\"gpt-realtime-9\"]"),
            "{err}"
        );
    }

    #[test]
    fn config_rows_replace_and_extend_the_defaults() {
        let mut o = BTreeMap::new();
        o.insert(
            "gpt-realtime".into(),
            ModelPricing {
                text_in: usd("3.00"),
                audio_out: usd("50"),
                ..Default::default()
            },
        );
        o.insert(
            "my-asr".into(),
            ModelPricing {
                per_minute: usd("0.01"),
                ..Default::default()
            },
        );
        let p = Pricing::from_config(&o).unwrap();
        let r = p.rates("gpt-realtime").unwrap();
        assert_eq!((r.text_in, r.audio_out, r.audio_in), (3_000, 50_000, 0));
        assert_eq!(p.rates("my-asr").unwrap().per_minute, NanoUsd(10_000_000));
        assert!(p.rates("gpt-realtime-mini").is_ok(), "others untouched");
    }

    #[test]
    fn bad_config_rows_are_refused_with_their_keys() {
        let mut o = BTreeMap::new();
        o.insert("zero".into(), ModelPricing::default());
        o.insert(
            "fine".into(),
            ModelPricing {
                text_in: usd("0.0000005"),
                audio_in: usd("1"),
                ..Default::default()
            },
        );
        let Err(MeteringError::InvalidPricing(issues)) = Pricing::from_config(&o) else {
            panic!("expected invalid pricing");
        };
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["pricing.\"fine\".text_in", "pricing.\"zero\""]);
        assert!(issues[0].problem.contains("6 decimals"), "{}", issues[0]);
    }

    #[test]
    fn realtime_use_of_a_minute_priced_model_is_refused() {
        let p = Pricing::from_config(&BTreeMap::new()).unwrap();
        let err = p.require_realtime("whisper-1").unwrap_err();
        assert!(matches!(err, MeteringError::NotBilledThisWay { .. }));
        assert!(err.to_string().contains("pricing.\"whisper-1\""), "{err}");
    }

    #[test]
    fn live_models_are_priced_per_second_and_overridable() {
        let p = Pricing::from_config(&BTreeMap::new()).unwrap();
        let one = p.live_rates("gpt-live-1").unwrap();
        assert_eq!(
            (one.active_per_minute, one.standby_per_minute),
            (NanoUsd(50_000_000), None)
        );
        let r11 = p.live_rates("gpt-live-1.1").unwrap();
        assert_eq!(r11.standby_per_minute, Some(NanoUsd(20_000_000)));
        let err = p.live_rates("gpt-realtime").unwrap_err();
        assert!(err.to_string().contains("active_per_minute"), "{err}");
        let mut o = BTreeMap::new();
        o.insert(
            "gpt-live-1".into(),
            ModelPricing {
                active_per_minute: usd("0.06"),
                ..Default::default()
            },
        );
        o.insert(
            "standby-only".into(),
            ModelPricing {
                standby_per_minute: usd("0.02"),
                ..Default::default()
            },
        );
        let Err(MeteringError::InvalidPricing(issues)) = Pricing::from_config(&o) else {
            panic!("expected invalid pricing");
        };
        assert_eq!(issues[0].key, "pricing.\"standby-only\".active_per_minute");
        o.remove("standby-only");
        let p = Pricing::from_config(&o).unwrap();
        assert_eq!(
            p.live_rates("gpt-live-1").unwrap().active_per_minute,
            NanoUsd(60_000_000)
        );
    }

    #[test]
    fn audio_seconds_refuse_nonsense() {
        assert!(AudioSeconds::try_from(-1.0).is_err());
        assert!(AudioSeconds::try_from(f64::NAN).is_err());
        assert!(AudioSeconds::try_from(f64::INFINITY).is_err());
        assert_eq!(
            AudioSeconds::try_from(3.4).unwrap().0,
            Duration::from_secs_f64(3.4)
        );
    }
}
