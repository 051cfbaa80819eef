//! `/metrics` (OpenMetrics): requests by action and outcome, the latency the broker adds
//! (everything but the upstream call) and the upstream's own latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Labels {
    pub action: &'static str,
    pub outcome: &'static str,
}

/// The broker's counters and histograms.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    added: Histogram,
    upstream: Histogram,
}

const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jarvis_broker");
        let requests = Family::<Labels, Counter>::default();
        let added = Histogram::new(BUCKETS);
        let upstream = Histogram::new(BUCKETS);
        registry.register(
            "requests",
            "Kiosk requests by action (mint, relay, close) and outcome",
            requests.clone(),
        );
        registry.register(
            "added_latency_seconds",
            "Time the broker adds to a request (central queries, policy), upstream excluded",
            added.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time OpenAI took to answer",
            upstream.clone(),
        );
        Metrics {
            registry,
            requests,
            added,
            upstream,
        }
    }
}

impl Metrics {
    pub fn observe(
        &self,
        action: &'static str,
        outcome: &'static str,
        added_s: f64,
        upstream_s: Option<f64>,
    ) {
        self.requests
            .get_or_create(&Labels { action, outcome })
            .inc();
        self.added.observe(added_s);
        if let Some(u) = upstream_s {
            self.upstream.observe(u);
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out = "# EOF\n".into();
        }
        out
    }
}
