//! Pricing tables and usage -> cost, without I/O, in exact nano-dollars.
//!
//! Every per-token price is a whole number of nano-dollars (a price per 1M tokens with at most
//! six decimals), so a cost is a plain integer sum: per-response costs add up exactly to the
//! session's cost and to what the invoice says, whatever order they are summed in.
//!
//! ```text
//! Pricing::from_config(&cfg.pricing)?          shipped defaults + `pricing."<model>"` overrides
//!     .price_response(model, &tokens)?         one `response.done` usage -> CostBreakdown
//!     .price_transcription(model, &usage)?     one transcription usage -> CostBreakdown
//! SessionMeter                                 exact per-session totals
//! price_live(model, &LiveRates, LiveSeconds)?  GPT-Live voice time -> LiveCost (per second)
//! LiveMeter                                    a Live session: estimate, then the final figure
//! ```

mod cost;
mod live;
mod pricing;

pub use cost::{ResponseCost, SessionMeter, TranscriptionUsage};
pub use live::{
    DelegationUsage, INITIALIZATION_S, LiveCost, LiveMeter, LiveRates, LiveSeconds, price_live,
};
pub use pricing::{
    AudioSeconds, MAX_USAGE_COST, MeteringError, ModelPricing, Pricing, Rates, shipped_defaults,
};
