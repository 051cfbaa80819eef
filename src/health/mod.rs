//! How the daemon shows its health: the status report (the core's health model plus the
//! store's view), the status socket, the `/healthz` + `/metrics` endpoint and its encoder.

mod accept;
pub mod endpoint;
pub mod metrics;
pub mod report;
pub mod socket;

/// The health gauge naming the voice API sessions use (`openai.api`): `status` and `/metrics`.
pub const OPENAI_API_GAUGE: &str = "openai_api";
