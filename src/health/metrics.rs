//! `/metrics`: the status report in the OpenMetrics text format Prometheus scrapes.
//!
//! The values live in [`jarvis_core::health::HealthSnapshot`] and the store; a scrape turns one
//! [`StatusReport`] into metrics through a `prometheus-client` collector, so the daemon
//! keeps a single source of truth and the encoder handles names, escaping and `# EOF`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::report::StatusReport;
use jarvis_core::money::{NANOS_PER_USD, NanoUsd};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every name starts with this.
const PREFIX: &str = "jarvis_kiosk";

/// Lifecycle states, all exported (0 or 1) so a dashboard can graph time spent in each.
const LIFECYCLE_STATES: [&str; 7] = [
    "idle",
    "looking_up",
    "connecting",
    "live",
    "ending",
    "cooldown",
    "degraded",
];

/// Health counters that say an adapter had to reconnect, and the adapter they belong to.
const RECONNECT_COUNTERS: [(&str, &str); 3] = [
    (jarvis_badge::COUNTER_RECONNECTS, "scanner"),
    (jarvis_audio::counters::REOPENS, "audio"),
    (jarvis_sync::COUNTER_RECONNECTS, "central"),
];

/// The report as OpenMetrics text.
pub fn encode(report: &StatusReport) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(ReportCollector(report.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail; an error here would be a bug in a collector.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding /metrics");
    }
    out
}

fn usd(amount: NanoUsd) -> f64 {
    amount.0 as f64 / NANOS_PER_USD as f64
}

#[derive(Debug)]
struct ReportCollector(StatusReport);

/// One family: a descriptor, then one sample per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut metric = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn one<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    value.encode(encoder.encode_descriptor(name, help, None, value.metric_type())?)
}

fn flag(on: bool) -> ConstGauge {
    ConstGauge::new(i64::from(on))
}

impl Collector for ReportCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.0;
        let h = &r.health;
        family(
            &mut e,
            "build_info",
            "Version and kiosk id of the running daemon (always 1).",
            [(
                vec![
                    ("version", h.version.clone()),
                    ("kiosk_id", h.kiosk_id.clone()),
                ],
                ConstGauge::new(1),
            )],
        )?;
        one(
            &mut e,
            "start_time_seconds",
            "When the daemon started, in Unix seconds.",
            ConstGauge::new(h.started_at_ms as f64 / 1000.0),
        )?;
        family(
            &mut e,
            "lifecycle",
            "1 for the lifecycle state the kiosk is in.",
            LIFECYCLE_STATES
                .iter()
                .map(|s| (vec![("state", (*s).to_owned())], flag(h.lifecycle == *s))),
        )?;
        family(
            &mut e,
            "adapter_up",
            "1 when the adapter does its job (or is turned off by configuration).",
            h.adapters
                .iter()
                .map(|(name, state)| (vec![("adapter", name.clone())], flag(state.is_ok()))),
        )?;
        family(
            &mut e,
            "openai_api_info",
            "The OpenAI voice API sessions use (openai.api: realtime or live; always 1).",
            [(
                vec![(
                    "api",
                    r.health
                        .gauges
                        .get(super::OPENAI_API_GAUGE)
                        .and_then(|v| v.as_str())
                        .unwrap_or("realtime")
                        .to_owned(),
                )],
                ConstGauge::new(1),
            )],
        )?;
        one(
            &mut e,
            "session_live",
            "1 while a session is in progress.",
            flag(h.current_session.is_some()),
        )?;
        one(
            &mut e,
            "session_billed_seconds",
            "GPT-Live voice seconds billed so far in the session in progress (estimated \
             between OpenAI's usage reports; 0 for Realtime).",
            ConstGauge::new(
                h.current_session
                    .as_ref()
                    .and_then(|s| s.billed_seconds)
                    .unwrap_or(0) as i64,
            ),
        )?;
        one(
            &mut e,
            "session_cost_usd",
            "Cost so far of the session in progress, in US dollars.",
            ConstGauge::new(h.current_session.as_ref().map_or(0.0, |s| usd(s.cost))),
        )?;
        family(
            &mut e,
            "sessions_ended",
            "Sessions ended since start-up, by end reason.",
            h.sessions_ended
                .iter()
                .map(|(reason, n)| (vec![("reason", reason.clone())], ConstCounter::new(*n))),
        )?;
        one(
            &mut e,
            "sessions_cost_usd",
            "What the sessions ended since start-up cost, in US dollars.",
            ConstCounter::new(usd(h.sessions_cost)),
        )?;
        one(
            &mut e,
            "spent_today_usd",
            "OpenAI spend recorded today (the day of budget_time_zone_info), bounded by \
             session.daily_budget_usd.",
            ConstGauge::new(usd(h.spent_today)),
        )?;
        family(
            &mut e,
            "budget_time_zone_info",
            "The time zone whose midnight resets the daily budget (kiosk.timezone; always 1).",
            [(
                vec![("zone", h.budget_time_zone.clone())],
                ConstGauge::new(1),
            )],
        )?;
        if let Some(o) = &r.outbox {
            one(
                &mut e,
                "outbox_backlog",
                "Events waiting to be synced to central.",
                ConstGauge::new(o.pending),
            )?;
            one(
                &mut e,
                "outbox_backlog_age_seconds",
                "Age of the oldest event waiting to be synced (0 when none).",
                ConstGauge::new(
                    o.oldest_pending_ms
                        .map_or(0.0, |t| (r.generated_at_ms - t).max(0) as f64 / 1000.0),
                ),
            )?;
            one(
                &mut e,
                "outbox_dead_letters",
                "Events central refused for good (see `jarvis-kiosk outbox dead-letters`).",
                ConstGauge::new(o.dead),
            )?;
            one(
                &mut e,
                "outbox_dropped_events",
                "Low-priority events dropped by the storage.max_bytes bound.",
                ConstCounter::new(o.dropped),
            )?;
        }
        one(
            &mut e,
            "audio_overruns",
            "Capture overruns: microphone samples lost because the capture thread fell behind.",
            ConstCounter::new(counter(r, jarvis_audio::counters::OVERRUNS)),
        )?;
        family(
            &mut e,
            "reconnects",
            "Times an adapter reconnected to its device or server.",
            RECONNECT_COUNTERS.iter().map(|(name, adapter)| {
                (
                    vec![("adapter", (*adapter).to_owned())],
                    ConstCounter::new(counter(r, name)),
                )
            }),
        )?;
        family(
            &mut e,
            "breaker_state",
            "1 for the state of the Realtime circuit breaker.",
            ["closed", "open", "half_open"]
                .into_iter()
                .map(|s| (vec![("state", s.to_owned())], flag(breaker_state(r) == s))),
        )?;
        family(
            &mut e,
            "events",
            "Every other health counter, by name.",
            h.counters
                .iter()
                .filter(|(name, _)| !is_named_above(name))
                .map(|(name, n)| (vec![("counter", name.clone())], ConstCounter::new(*n))),
        )?;
        Ok(())
    }
}

fn counter(r: &StatusReport, name: &str) -> u64 {
    r.health.counters.get(name).copied().unwrap_or(0)
}

fn is_named_above(name: &str) -> bool {
    name == jarvis_audio::counters::OVERRUNS || RECONNECT_COUNTERS.iter().any(|(n, _)| *n == name)
}

/// The breaker's state as the driver publishes it (closed until a connection is tried).
fn breaker_state(r: &StatusReport) -> &str {
    r.health
        .gauges
        .get("breaker")
        .and_then(|b| b.get("state"))
        .and_then(|s| s.as_str())
        .unwrap_or("closed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_core::health::{AdapterState, CurrentSession, HealthSnapshot};
    use jarvis_store::OutboxStats;

    fn report() -> StatusReport {
        let mut h = HealthSnapshot {
            kiosk_id: "lyon-\"3\"".into(),
            version: "1.2.3".into(),
            started_at_ms: 1_795_219_200_000,
            lifecycle: "live".into(),
            current_session: Some(CurrentSession {
                session_id: uuid::Uuid::from_u128(1),
                first_name: Some("Camille".into()),
                started_at_ms: 1_795_219_260_000,
                cost: NanoUsd(12_500_000),
                billed_seconds: Some(42),
            }),
            sessions_cost: NanoUsd(1_500_000_000),
            spent_today: NanoUsd(2_250_000_000),
            budget_time_zone: "Europe/Paris".into(),
            ..Default::default()
        };
        h.sessions_ended.insert("member_goodbye".into(), 3);
        h.sessions_ended.insert("idle_timeout".into(), 1);
        h.adapters.insert("audio".into(), AdapterState::Up);
        h.adapters
            .insert("scanner".into(), AdapterState::Degraded("unplugged".into()));
        h.adapters
            .insert("central".into(), AdapterState::Disabled("no url".into()));
        h.counters
            .insert(jarvis_audio::counters::OVERRUNS.into(), 7);
        h.counters
            .insert(jarvis_badge::COUNTER_RECONNECTS.into(), 2);
        h.counters
            .insert(jarvis_audio::counters::CONCEALED.into(), 5);
        h.gauges.insert(
            "breaker".into(),
            serde_json::json!({"state": "open", "consecutive_failures": 3, "until_ms": 9}),
        );
        StatusReport {
            generated_at_ms: 1_795_219_300_000,
            health: h,
            recent_sessions: Vec::new(),
            outbox: Some(OutboxStats {
                pending: 12,
                oldest_pending_ms: Some(1_795_219_240_000),
                synced: 100,
                dead: 1,
                ..Default::default()
            }),
            store_error: None,
        }
    }

    fn sample(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(name, _)| name == series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    #[test]
    fn exports_sessions_costs_backlog_overruns_and_reconnects() {
        let text = encode(&report());
        let cases = [
            (
                r#"jarvis_kiosk_sessions_ended_total{reason="member_goodbye"}"#,
                3.0,
            ),
            (
                r#"jarvis_kiosk_sessions_ended_total{reason="idle_timeout"}"#,
                1.0,
            ),
            ("jarvis_kiosk_sessions_cost_usd_total", 1.5),
            (r#"jarvis_kiosk_openai_api_info{api="realtime"}"#, 1.0),
            ("jarvis_kiosk_spent_today_usd", 2.25),
            (
                r#"jarvis_kiosk_budget_time_zone_info{zone="Europe/Paris"}"#,
                1.0,
            ),
            ("jarvis_kiosk_session_live", 1.0),
            ("jarvis_kiosk_session_billed_seconds", 42.0),
            ("jarvis_kiosk_session_cost_usd", 0.0125),
            ("jarvis_kiosk_outbox_backlog", 12.0),
            ("jarvis_kiosk_outbox_backlog_age_seconds", 60.0),
            ("jarvis_kiosk_outbox_dead_letters", 1.0),
            ("jarvis_kiosk_audio_overruns_total", 7.0),
            (r#"jarvis_kiosk_reconnects_total{adapter="scanner"}"#, 2.0),
            (r#"jarvis_kiosk_reconnects_total{adapter="central"}"#, 0.0),
            (r#"jarvis_kiosk_adapter_up{adapter="audio"}"#, 1.0),
            (r#"jarvis_kiosk_adapter_up{adapter="scanner"}"#, 0.0),
            (r#"jarvis_kiosk_adapter_up{adapter="central"}"#, 1.0),
            (r#"jarvis_kiosk_lifecycle{state="live"}"#, 1.0),
            (r#"jarvis_kiosk_lifecycle{state="idle"}"#, 0.0),
            (r#"jarvis_kiosk_breaker_state{state="open"}"#, 1.0),
            (
                r#"jarvis_kiosk_events_total{counter="audio_concealed"}"#,
                5.0,
            ),
            ("jarvis_kiosk_start_time_seconds", 1_795_219_200.0),
        ];
        for (series, want) in cases {
            assert_eq!(sample(&text, series), want, "{series}");
        }
    }

    #[test]
    fn is_well_formed_openmetrics() {
        let text = encode(&report());
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains(r#"kiosk_id="lyon-\"3\"""#),
            "label values are escaped: {text}"
        );
        assert!(
            !text.contains("audio_overruns\""),
            "a counter with its own metric is not repeated under events"
        );
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(typed.insert(name.to_owned()), "{name} typed twice");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            assert!(line.starts_with("jarvis_kiosk_"), "{line}");
            let (_, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        }
    }

    #[test]
    fn an_idle_kiosk_without_a_store_answer_still_exports_its_health() {
        let mut r = report();
        r.health.current_session = None;
        r.outbox = None;
        let text = encode(&r);
        assert_eq!(sample(&text, "jarvis_kiosk_session_live"), 0.0);
        assert!(!text.contains("outbox_backlog"));
        assert_eq!(
            sample(&text, r#"jarvis_kiosk_reconnects_total{adapter="audio"}"#),
            0.0
        );
    }
}
