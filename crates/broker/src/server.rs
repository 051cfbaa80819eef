//! The HTTP service: OpenAI-shaped endpoints for kiosks, `/healthz` and `/metrics`.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/realtime/client_secrets` | kiosk bearer token → checks → a key minted with the org key |
//! | `POST /v1/realtime/calls/{call_id}/hangup` | kiosk bearer token → hang-up with the org key |
//! | `POST /v1/live/sessions` | kiosk bearer token → checks → GPT-Live session created with the org key and the fleet's `[live]` policy ([`crate::live`]) |
//! | `POST /v1/live/sessions/{session_id}/hangup` | kiosk bearer token → its own Live session hung up with the org key |
//! | `GET /healthz` | 200 when central answers within a second, else 503 |
//! | `GET /metrics` | OpenMetrics |
//!
//! A kiosk points `openai.token_url` at the first route; it derives the second from it.
//! Every request ends in one `broker_audit` row and one log line with `kiosk_id` and
//! `session_id` (the kiosk's, from `X-Jarvis-Session-Id`, and OpenAI's).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use crate::exchange::{App, SESSION_HEADER};

/// The routes, ready to serve.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/realtime/client_secrets", post(crate::realtime::mint))
        .route(
            "/v1/realtime/calls/{call_id}/hangup",
            post(crate::realtime::hangup),
        )
        .route("/v1/live/sessions", post(crate::live::create))
        .route(
            "/v1/live/sessions/{session_id}/hangup",
            post(crate::live::hang_up),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Serves on `listener` until `shutdown` resolves; also ages the audit out hourly.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let retention = tokio::spawn(retention_loop(app.clone()));
    let result = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    retention.abort();
    result
}

async fn retention_loop(app: Arc<App>) {
    let days = app.cfg.audit.retention_days;
    if days == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match app.central.prune_audit(days).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, days, "audit rows past retention deleted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit retention failed; retried in an hour"),
        }
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.central.ping(Duration::from_secs(1)).await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("central: {e}\n")).into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// Binds `addr` (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
