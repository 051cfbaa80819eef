//! From config sections to the settings the core takes. The core never reads the config: it
//! takes milliseconds, nano-dollars and resolved frame rules, converted here in one place.

use std::time::Duration;

use jarvis_core::badge::frame::{DEFAULT_IDLE_RESET, FrameKind, FrameRules, Framing};
use jarvis_core::breaker::BreakerSettings;
use jarvis_core::config_issue::ConfigIssue;
use jarvis_core::metering::Pricing;
use jarvis_core::session::{
    Backend, DEFAULT_CLOSE_TIMEOUT_MS, DEFAULT_GOODBYE_GRACE_MS, DEFAULT_HANGUP_DELAY_MS,
    DEFAULT_LOOKUP_TIMEOUT_MS, Settings,
};

use crate::types::{BadgeConfig, Config, OpenAiConfig, VoiceApi};

impl BadgeConfig {
    /// The rules for a serial scanner, straight from `[badge]`.
    pub fn frame_rules(&self) -> FrameRules {
        let framing = match self.framing {
            Framing::Line => FrameKind::Line,
            Framing::StxEtx => FrameKind::StxEtx,
            Framing::Fixed => FrameKind::Fixed(self.fixed_len.max(1)),
        };
        FrameRules {
            framing,
            strip_prefix: self.strip_prefix.clone(),
            strip_suffix: self.strip_suffix.clone(),
            charset: self.charset,
            case: self.case,
            leading_zeros: self.leading_zeros,
            min_len: self.min_len.max(1),
            max_len: self.max_len.max(self.min_len.max(1)),
            idle_reset: DEFAULT_IDLE_RESET,
        }
    }

    /// The rules for a keyboard wedge: Enter ends every frame whatever `badge.framing` says.
    pub fn keyboard_wedge_rules(&self) -> FrameRules {
        FrameRules {
            framing: FrameKind::Line,
            ..self.frame_rules()
        }
    }
}

impl OpenAiConfig {
    /// The circuit breaker's thresholds (at least one failure).
    pub fn breaker_settings(&self) -> BreakerSettings {
        BreakerSettings {
            failures: self.breaker_failures.max(1),
            open_for: Duration::from_secs(self.breaker_open_s),
        }
    }
}

impl Config {
    /// What the session core needs, in milliseconds and nano-dollars. Fails only when the
    /// GPT-Live model has no voice price (`config check` reports the same).
    pub fn session_settings(&self) -> Result<Settings, ConfigIssue> {
        let s = &self.session;
        let (model, backend) = match self.openai.api {
            VoiceApi::Realtime => (self.openai.model.clone(), Backend::Realtime),
            VoiceApi::Live => {
                let model = &self.openai.live.model;
                let issue = |e: jarvis_core::metering::MeteringError| ConfigIssue {
                    key: "openai.live.model".into(),
                    problem: e.to_string(),
                };
                let pricing = Pricing::from_config(&self.pricing).map_err(issue)?;
                pricing.live_rates(model).map_err(issue)?;
                let rates = pricing
                    .models()
                    .filter_map(|(m, _)| Some((m.to_owned(), pricing.live_rates(m).ok()?)))
                    .collect();
                (model.clone(), Backend::Live { rates })
            }
        };
        Ok(Settings {
            model,
            transcription_model: self.openai.transcription_model.clone(),
            max_duration_ms: s.max_duration_s.saturating_mul(1000),
            idle_timeout_ms: s.idle_timeout_s.saturating_mul(1000),
            max_cost: s.max_cost_usd.0,
            daily_budget: s.daily_budget_usd.0,
            calendar: self.kiosk.calendar(),
            cooldown_ms: s.cooldown_s.saturating_mul(1000),
            debounce_ms: self.badge.debounce_s.saturating_mul(1000),
            max_sessions_per_hour: self.badge.max_sessions_per_hour,
            on_scan_during_session: self.badge.on_scan_during_session,
            unknown_member: self.badge.unknown_member,
            goodbye_phrases: self.openai.goodbye_phrases.clone(),
            connect_timeout_ms: self.openai.connect_timeout_s.saturating_mul(1000),
            lookup_timeout_ms: DEFAULT_LOOKUP_TIMEOUT_MS,
            goodbye_grace_ms: DEFAULT_GOODBYE_GRACE_MS,
            hangup_delay_ms: DEFAULT_HANGUP_DELAY_MS,
            backend,
            close_timeout_ms: DEFAULT_CLOSE_TIMEOUT_MS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::badge::frame::{Charset, LeadingZeros, LetterCase};
    use jarvis_core::money::NanoUsd;
    use jarvis_core::session::{Lifecycle, Now, SessionMachine};

    #[test]
    fn badge_frame_rules_map_every_key() {
        let cfg = BadgeConfig {
            framing: Framing::Fixed,
            fixed_len: 8,
            strip_prefix: "P".into(),
            strip_suffix: "S".into(),
            charset: Charset::Digits,
            case: LetterCase::Keep,
            leading_zeros: LeadingZeros::Strip,
            min_len: 5,
            max_len: 9,
            ..BadgeConfig::default()
        };
        let r = cfg.frame_rules();
        assert_eq!(r.framing, FrameKind::Fixed(8));
        assert_eq!((r.min_len, r.max_len), (5, 9));
        assert_eq!(r.strip_prefix, "P");
        assert_eq!(cfg.keyboard_wedge_rules().framing, FrameKind::Line);
        let stx = BadgeConfig {
            framing: Framing::StxEtx,
            ..BadgeConfig::default()
        };
        assert_eq!(stx.frame_rules().framing, FrameKind::StxEtx);
    }

    #[test]
    fn settings_come_from_config() {
        let mut cfg = Config::default();
        cfg.session.max_duration_s = 120;
        cfg.session.cooldown_s = 7;
        cfg.badge.debounce_s = 2;
        cfg.openai.connect_timeout_s = 4;
        let s = cfg.session_settings().unwrap();
        assert_eq!(s.max_duration_ms, 120_000);
        assert_eq!(s.idle_timeout_ms, 60_000);
        assert_eq!(s.cooldown_ms, 7_000);
        assert_eq!(s.debounce_ms, 2_000);
        assert_eq!(s.connect_timeout_ms, 4_000);
        assert_eq!(s.max_cost, NanoUsd(1_000_000_000));
        assert_eq!(s.daily_budget, NanoUsd(20_000_000_000));
        assert_eq!(s.model, "gpt-realtime");
        assert_eq!(s.goodbye_phrases[0], "au revoir");
        let m = SessionMachine::new(
            s,
            NanoUsd(5),
            Now {
                mono_ms: 0,
                wall_ms: 0,
            },
            uuid::Uuid::now_v7,
        );
        assert_eq!(m.lifecycle(), Lifecycle::Idle);
        assert_eq!(m.spent_today(), NanoUsd(5));
        assert_eq!(m.current_session(), None);
    }

    #[test]
    fn breaker_settings_come_from_the_openai_section() {
        let c = OpenAiConfig::default().breaker_settings();
        assert_eq!(c.failures, 3);
        assert_eq!(c.open_for, Duration::from_secs(60));
    }

    #[test]
    fn defaults_are_the_session_cores() {
        // But the calendar: the core knows no zone, the config defaults to the system's.
        let cfg = Config::default();
        let expected = Settings {
            calendar: cfg.kiosk.calendar(),
            ..Settings::default()
        };
        assert_eq!(cfg.session_settings().unwrap(), expected);
    }
}
