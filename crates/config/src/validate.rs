//! The semantic checks serde cannot make: ranges, combinations of keys, secrets kept out of
//! URLs, models without prices. Every problem is collected, not just the first, so one
//! `config check` shows a technician everything to fix.

use jarvis_core::badge::frame::Framing;
use jarvis_core::config_issue::ConfigIssue;

use crate::types::{BadgeSource, Config, VoiceApi};

impl Config {
    /// Every semantic problem the types alone cannot catch.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut bad = |key: &str, problem: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                problem,
            })
        };
        if self.kiosk.id.trim().is_empty() {
            bad(
                "kiosk.id",
                "required: this kiosk's id as in the central `kiosks` table".into(),
            );
        }
        if let Err(problem) = self.kiosk.time_zone() {
            bad("kiosk.timezone", problem);
        }
        if let Err(e) = self
            .log
            .level
            .parse::<tracing_subscriber::filter::EnvFilter>()
        {
            bad(
                "log.level",
                format!(
                    "`{}` is not a log filter ({e}); expected e.g. \"info\"",
                    self.log.level
                ),
            );
        }
        let b = &self.badge;
        if b.min_len == 0 || b.min_len > b.max_len {
            bad(
                "badge.min_len",
                format!("must be between 1 and badge.max_len ({})", b.max_len),
            );
        }
        if b.max_len > 256 {
            bad("badge.max_len", "must be at most 256".into());
        }
        if b.framing == Framing::Fixed && (b.fixed_len == 0 || b.fixed_len > 256) {
            bad(
                "badge.fixed_len",
                "must be between 1 and 256 with badge.framing = \"fixed\"".into(),
            );
        }
        if !matches!(b.serial.stop_bits, 1 | 2) {
            bad("badge.serial.stop_bits", "must be 1 or 2".into());
        }
        if !(5..=8).contains(&b.serial.data_bits) {
            bad("badge.serial.data_bits", "must be 5, 6, 7 or 8".into());
        }
        if b.serial.baud == 0 {
            bad(
                "badge.serial.baud",
                "must be a positive baud rate such as 9600".into(),
            );
        }
        if b.source == BadgeSource::Hid && b.hid.device.trim().is_empty() {
            bad(
                "badge.hid.device",
                "required with badge.source = \"hid\": a device name or /dev/input/by-id path"
                    .into(),
            );
        }
        if b.member_cache_max == 0 {
            bad("badge.member_cache_max", "must be at least 1".into());
        }
        if b.lookup_timeout_ms == 0 {
            bad(
                "badge.lookup_timeout_ms",
                "must be at least 1 millisecond, e.g. 800".into(),
            );
        }
        let a = &self.audio;
        for (key, dev) in [
            ("audio.input_device", &a.input_device),
            ("audio.output_device", &a.output_device),
        ] {
            if dev.trim().is_empty() {
                bad(key, "must be `default` or a substring of a device name (see `jarvis-kiosk devices`)".into());
            }
        }
        for (key, rate) in [
            ("audio.input_sample_rate", a.input_sample_rate),
            ("audio.output_sample_rate", a.output_sample_rate),
        ] {
            if let Some(r) = rate
                && !(8_000..=192_000).contains(&r)
            {
                bad(key, format!("{r} Hz is outside 8000..=192000"));
            }
        }
        for (key, ch) in [
            ("audio.input_channels", a.input_channels),
            ("audio.output_channels", a.output_channels),
        ] {
            if let Some(c) = ch
                && !(1..=8).contains(&c)
            {
                bad(key, format!("{c} channels is outside 1..=8"));
            }
        }
        if let Some(p) = a.period_frames
            && !(32..=16_384).contains(&p)
        {
            bad(
                "audio.period_frames",
                format!("{p} is outside 32..=16384 frames"),
            );
        }
        let o = &self.openai;
        let urls = [
            ("openai.base_url", Some(&o.base_url)),
            ("openai.token_url", o.token_url.as_ref()),
        ];
        for (key, url) in urls {
            if let Some(url) = url
                && let Err(problem) = check_key_url(url)
            {
                bad(key, problem);
            }
        }
        match (&o.api_key_file, &o.token_url) {
            (Some(_), Some(_)) => bad(
                "openai.token_url",
                "set either openai.api_key_file or openai.token_url, not both".into(),
            ),
            (None, Some(_)) if o.token_credential_file.is_none() => bad(
                "openai.token_credential_file",
                "required with openai.token_url: the file holding this kiosk's bearer credential"
                    .into(),
            ),
            _ => {}
        }
        if o.model.trim().is_empty() {
            bad("openai.model", "required, e.g. \"gpt-realtime\"".into());
        }
        if o.voice.trim().is_empty() {
            bad("openai.voice", "required, e.g. \"marin\"".into());
        }
        if o.connect_timeout_s == 0 {
            bad(
                "openai.connect_timeout_s",
                "must be at least 1 second".into(),
            );
        }
        if !(1..=30).contains(&o.ice_disconnect_grace_s) {
            bad(
                "openai.ice_disconnect_grace_s",
                "must be between 1 and 30 seconds (a longer outage should end the call)".into(),
            );
        }
        if o.breaker_failures == 0 {
            bad("openai.breaker_failures", "must be at least 1".into());
        }
        if o.goodbye_phrases.iter().any(|p| p.trim().is_empty()) {
            bad("openai.goodbye_phrases", "phrases must not be empty".into());
        }
        if o.api == VoiceApi::Live {
            let l = &o.live;
            if !l.model.starts_with("gpt-live-") {
                bad(
                    "openai.live.model",
                    format!(
                        "`{}` is not a GPT-Live model: use \"gpt-live-1.1\" or \"gpt-live-1\"",
                        l.model
                    ),
                );
            }
            if l.voice.trim().is_empty() {
                bad("openai.live.voice", "required, e.g. \"marin\"".into());
            }
            if l.delegation_model.trim().is_empty() {
                bad(
                    "openai.live.delegation_model",
                    "required: the Responses model that runs end_session, e.g. \"gpt-5-mini\""
                        .into(),
                );
            }
            if let Some(url) = &l.relay_url
                && let Err(problem) = check_key_url(url)
            {
                bad("openai.live.relay_url", problem);
            }
            match (&o.api_key_file, &l.relay_url) {
                (Some(_), Some(_)) => bad(
                    "openai.live.relay_url",
                    "set either openai.api_key_file or openai.live.relay_url, not both".into(),
                ),
                (None, None) => bad(
                    "openai.live.relay_url",
                    "required with openai.api = \"live\": the broker's Live relay (or, for \
                     development only, openai.api_key_file)"
                        .into(),
                ),
                (None, Some(_)) if o.token_credential_file.is_none() => bad(
                    "openai.token_credential_file",
                    "required with openai.live.relay_url: the file holding this kiosk's bearer \
                     credential"
                        .into(),
                ),
                _ => {}
            }
        }
        let s = &self.session;
        if s.max_duration_s == 0 {
            bad("session.max_duration_s", "must be at least 1 second".into());
        }
        if s.max_duration_s > MAX_REALTIME_SESSION_S {
            bad(
                "session.max_duration_s",
                format!(
                    "{} s is above {MAX_REALTIME_SESSION_S} s, the longest session OpenAI's \
                     Realtime API allows: set at most {MAX_REALTIME_SESSION_S}",
                    s.max_duration_s
                ),
            );
        }
        if s.idle_timeout_s == 0 {
            bad("session.idle_timeout_s", "must be at least 1 second".into());
        }
        if s.max_cost_usd.0.0 == 0 {
            bad(
                "session.max_cost_usd",
                "must be more than 0, e.g. \"1.00\"".into(),
            );
        }
        if s.daily_budget_usd.0 < s.max_cost_usd.0 {
            bad(
                "session.daily_budget_usd",
                "must be at least session.max_cost_usd".into(),
            );
        }
        if self.storage.max_bytes < 1024 * 1024 {
            bad(
                "storage.max_bytes",
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if self.storage.retention_days == 0 {
            bad("storage.retention_days", "must be at least 1 day".into());
        }
        let c = &self.central;
        if let Some(url) = &c.url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                bad("central.url", "must be a postgres:// URL".into());
            } else if url_password(url).is_some() {
                bad("central.url", "must not contain a password: put it in the file named by central.password_file".into());
            }
        }
        if c.heartbeat_s == 0 {
            bad("central.heartbeat_s", "must be at least 1 second".into());
        }
        if c.batch_max_events == 0 {
            bad("central.batch_max_events", "must be at least 1".into());
        }
        if let Some(listen) = &self.health.listen {
            match listen.parse::<std::net::SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => {}
                Ok(_) => bad(
                    "health.listen",
                    "must be a loopback address such as 127.0.0.1:9750".into(),
                ),
                Err(_) => bad(
                    "health.listen",
                    format!("`{listen}` is not an address such as 127.0.0.1:9750"),
                ),
            }
        }
        issues.extend(self.pricing_issues());
        issues
    }

    /// Every price is valid, and the configured models have prices (never billed as $0).
    fn pricing_issues(&self) -> Vec<ConfigIssue> {
        use jarvis_core::metering::{MeteringError, Pricing};
        let issue = |key: &str, e: MeteringError| ConfigIssue {
            key: key.into(),
            problem: e.to_string(),
        };
        match Pricing::from_config(&self.pricing) {
            Err(MeteringError::InvalidPricing(issues)) => issues,
            Err(e) => vec![issue("pricing", e)],
            Ok(p) => {
                let mut issues = Vec::new();
                let o = &self.openai;
                if o.api == VoiceApi::Live {
                    // A name already refused by the Live checks is not reported twice.
                    if o.live.model.starts_with("gpt-live-")
                        && let Err(e) = p.live_rates(&o.live.model)
                    {
                        issues.push(issue("openai.live.model", e));
                    }
                    if !o.live.delegation_model.trim().is_empty()
                        && let Err(e) = p.require_realtime(&o.live.delegation_model)
                    {
                        issues.push(issue("openai.live.delegation_model", e));
                    }
                    return issues;
                }
                if let Err(e) = p.require_realtime(&o.model) {
                    issues.push(issue("openai.model", e));
                }
                if let Err(e) = p.require_transcription(&o.transcription_model) {
                    issues.push(issue("openai.transcription_model", e));
                }
                issues
            }
        }
    }
}

/// OpenAI ends a Realtime session after 60 minutes, so a longer limit could never be reached.
pub const MAX_REALTIME_SESSION_S: u64 = 3600;

/// A URL a key or credential is sent to: `https://`, or plain `http://` only to a loopback host
/// (127.0.0.0/8, `::1`, `localhost`), so a key never crosses a network in clear.
fn check_key_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("`{url}` is not an https:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "`{url}` is plain http to `{host}`, which would send the key in clear: use https://, \
             or http:// only to a loopback host (127.0.0.1, ::1, localhost)"
        ))
    }
}

/// The password part of a URL, if any (`postgres://user:secret@host`).
///
/// Split by hand rather than with a URL parser: libpq's multi-host URLs (`@host1:5432,host2`)
/// and URLs a parser rejects must still have their password found and refused.
/// Realtime API settings that mean nothing to GPT-Live, with what to do instead.
const REALTIME_ONLY: [(&str, &str); 5] = [
    ("openai.model", "set openai.live.model instead"),
    ("openai.voice", "set openai.live.voice instead"),
    (
        "openai.turn_detection",
        "GPT-Live does its own turn-taking: remove it",
    ),
    (
        "openai.transcription_model",
        "GPT-Live transcribes built in: remove it",
    ),
    (
        "openai.token_url",
        "GPT-Live has no ephemeral keys: set openai.live.relay_url (the broker's relay)",
    ),
];

/// GPT-Live settings, which the Realtime API ignores.
const LIVE_ONLY: [&str; 5] = [
    "openai.live.model",
    "openai.live.voice",
    "openai.live.delegation_model",
    "openai.live.delegation_instructions_file",
    "openai.live.relay_url",
];

impl Config {
    /// Settings given (in the file or the environment: `given` says which) for the other voice
    /// API than `openai.api` selects: a technician who switched APIs learns which keys to move,
    /// instead of the kiosk silently ignoring them.
    pub fn api_issues(&self, given: &dyn Fn(&str) -> bool) -> Vec<ConfigIssue> {
        let issue = |key: &str, problem: String| ConfigIssue {
            key: key.into(),
            problem,
        };
        match self.openai.api {
            VoiceApi::Live => REALTIME_ONLY
                .iter()
                .filter(|(key, _)| given(key))
                .map(|(key, fix)| {
                    issue(
                        key,
                        format!("a Realtime API setting, but openai.api = \"live\": {fix}"),
                    )
                })
                .collect(),
            VoiceApi::Realtime => LIVE_ONLY
                .iter()
                .filter(|key| given(key))
                .map(|key| {
                    issue(
                        key,
                        "applies only with openai.api = \"live\" (the Realtime API is selected)"
                            .into(),
                    )
                })
                .collect(),
        }
    }
}

fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::metering::ModelPricing;

    #[test]
    fn config_validation_reports_unpriced_models_and_bad_prices() {
        let mut cfg = Config::default();
        cfg.kiosk.id = "k1".into();
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        cfg.openai.model = "gpt-realtime-9".into();
        cfg.openai.transcription_model = "asr-x".into();
        cfg.pricing.insert("cheap".into(), ModelPricing::default());
        let keys: Vec<String> = cfg.validate().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["pricing.\"cheap\""]);
        cfg.pricing.clear();
        let issues = cfg.validate();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["openai.model", "openai.transcription_model"]);
        assert!(
            issues[0].problem.contains("[pricing.\"gpt-realtime-9\"]"),
            "{}",
            issues[0]
        );
    }

    #[test]
    fn plain_http_is_refused_unless_the_host_is_loopback() {
        let mut cfg = Config::default();
        cfg.kiosk.id = "k1".into();
        let allowed = [
            "https://api.openai.com/v1",
            "http://127.0.0.1:8080/v1",
            "http://127.9.8.7/v1",
            "http://localhost:9000",
            "http://LOCALHOST/v1",
            "http://[::1]:8080/v1",
            "http://user@127.0.0.1:1/v1",
        ];
        for url in allowed {
            cfg.openai.base_url = url.into();
            cfg.openai.token_url = Some(url.into());
            cfg.openai.token_credential_file = Some(crate::secrets::SecretPath("/run/cred".into()));
            assert!(cfg.validate().is_empty(), "{url}: {:?}", cfg.validate());
        }
        let refused = [
            "http://api.openai.com/v1",
            "http://10.0.0.1:8080/v1",
            "http://localhost.evil.com/v1",
            "http://127.0.0.1.nip.io/v1",
            "http://[::2]/v1",
            "http://127.0.0.1@broker.example/v1",
            "ftp://127.0.0.1/v1",
            "api.openai.com",
        ];
        for url in refused {
            cfg.openai.base_url = url.into();
            cfg.openai.token_url = Some(url.into());
            let issues = cfg.validate();
            let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
            assert_eq!(keys, ["openai.base_url", "openai.token_url"], "{url}");
            assert!(issues[0].problem.contains(url), "{}", issues[0]);
        }
    }

    #[test]
    fn ice_disconnect_grace_is_bounded() {
        let mut cfg = Config::default();
        cfg.kiosk.id = "k1".into();
        for (grace, ok) in [(0, false), (1, true), (5, true), (30, true), (31, false)] {
            cfg.openai.ice_disconnect_grace_s = grace;
            let keys: Vec<String> = cfg.validate().into_iter().map(|i| i.key).collect();
            let want: &[&str] = if ok {
                &[]
            } else {
                &["openai.ice_disconnect_grace_s"]
            };
            assert_eq!(keys, want, "{grace}");
        }
    }

    #[test]
    fn max_duration_above_openais_session_limit_is_refused_naming_it() {
        let mut cfg = Config::default();
        cfg.kiosk.id = "k1".into();
        cfg.session.max_duration_s = 3600;
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        cfg.session.max_duration_s = 3601;
        let issues = cfg.validate();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].key, "session.max_duration_s");
        assert!(issues[0].problem.contains("3600"), "{}", issues[0]);
    }

    #[test]
    fn url_password_finds_a_non_empty_password_even_where_a_url_parser_gives_up() {
        let cases = [
            ("postgres://user:secret@host/db", Some("secret")),
            (
                "postgresql://user:secret@host:5432/db?sslmode=require",
                Some("secret"),
            ),
            ("postgres://user:p@ss@host/db", Some("p@ss")),
            ("postgres://user@host/db", None),
            ("postgres://host/db", None),
            ("postgres://user:@host/db", None),
            ("postgres://", None),
            ("postgresql://user:pw@host1:5432,host2:5432/db", Some("pw")),
            ("postgres://user:pw@host:notaport/db", Some("pw")),
            ("postgres://user:pw@/db", Some("pw")),
            ("postgres://user:pw@ho st/db", Some("pw")),
            ("not a url", None),
        ];
        for (url, want) in cases {
            assert_eq!(url_password(url), want, "{url}");
        }
    }
}
