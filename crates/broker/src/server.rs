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
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::db::{AuditRow, Central};
use crate::metrics::Metrics;
use crate::policy::{self, LimitValues, Refusal, Standing};
use crate::token;
use crate::upstream::{self, Relayed, Upstream};

/// The header a kiosk names its session with (the `SESSION_ID` of its journal).
pub const SESSION_HEADER: &str = "x-jarvis-session-id";

/// Everything a request needs; shared by all of them.
pub struct App {
    pub cfg: BrokerConfig,
    pub instance: String,
    pub central: Central,
    pub upstream: Upstream,
    pub metrics: Metrics,
    pub(crate) limits: LimitValues,
}

impl App {
    pub fn new(cfg: BrokerConfig, central: Central, upstream: Upstream) -> App {
        let limits = LimitValues {
            kiosk_daily: cfg.limits.kiosk_daily_budget_usd.0,
            gym_daily: cfg.limits.gym_daily_budget_usd.0,
            sessions_per_minute: cfg.limits.sessions_per_minute,
        };
        App {
            instance: cfg.instance(),
            cfg,
            central,
            upstream,
            metrics: Metrics::default(),
            limits,
        }
    }
}

/// The routes, ready to serve.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/realtime/client_secrets", post(mint))
        .route("/v1/realtime/calls/{call_id}/hangup", post(hangup))
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

/// Who asked, once known.
pub(crate) struct Caller {
    pub(crate) kiosk_id: Option<String>,
    pub(crate) gym_id: Option<String>,
    pub(crate) kiosk_session: Option<Uuid>,
    /// The OpenAI call or session a close names, audited with a refusal too.
    pub(crate) target: Option<String>,
}

impl Caller {
    pub(crate) fn of(headers: &HeaderMap) -> Caller {
        Caller {
            kiosk_id: None,
            gym_id: None,
            kiosk_session: headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Uuid::parse_str(v.trim()).ok()),
            target: None,
        }
    }

    pub(crate) fn known(&mut self, s: &Standing) {
        self.kiosk_id = Some(s.kiosk_id.clone());
        self.gym_id = Some(s.gym_id.clone());
    }
}

/// Authenticates and reads the caller's standing; `Err` is the refusal to send.
pub(crate) async fn standing(app: &App, headers: &HeaderMap) -> Result<Option<Standing>, Refusal> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(presented) = token::bearer(auth) else {
        return Ok(None);
    };
    app.central
        .standing(&token::hash(presented), &app.cfg.limits.budget_timezone)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the kiosk's standing");
            Refusal::CentralUnavailable
        })
}

/// The checks every new session passes, mint or Live relay: the kiosk's standing in central,
/// then the fleet's budgets and rate limit.
pub(crate) async fn admit(
    app: &App,
    headers: &HeaderMap,
    caller: &mut Caller,
) -> Result<(), Refusal> {
    let s = standing(app, headers).await?;
    if let Some(s) = &s {
        caller.known(s);
    }
    policy::decide(s.as_ref(), &app.limits)
}

async fn mint(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let mut caller = Caller::of(&headers);
    let checked = async {
        admit(&app, &headers, &mut caller).await?;
        policy::apply_session_policy(&body, &app.cfg.session)
    }
    .await;
    let request = match checked {
        Ok(r) => r,
        Err(refusal) => return refuse(&app, "mint", &caller, started, &refusal).await,
    };
    let answer = app.upstream.mint(&request).await;
    relay(&app, "mint", &caller, started, answer, None).await
}

async fn hangup(
    State(app): State<Arc<App>>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let mut caller = Caller::of(&headers);
    let checked = async {
        let s = standing(&app, &headers).await?;
        // Closing is always allowed to a known kiosk (disabled or over budget included).
        match &s {
            Some(s) if !s.token_expired => caller.known(s),
            Some(_) => return Err(Refusal::TokenExpired),
            None => return Err(Refusal::UnknownToken),
        }
        if !upstream::is_call_id(&call_id) {
            return Err(Refusal::BadRequest(
                "the call id is not of the form rtc_…".into(),
            ));
        }
        Ok(())
    }
    .await;
    if let Err(refusal) = checked {
        return refuse(&app, "close", &caller, started, &refusal).await;
    }
    let answer = app.upstream.hangup(&call_id).await;
    relay(&app, "close", &caller, started, answer, Some(call_id)).await
}

/// Audits and answers a refusal.
pub(crate) async fn refuse(
    app: &App,
    action: &'static str,
    caller: &Caller,
    started: Instant,
    refusal: &Refusal,
) -> Response {
    let row = AuditRow {
        kiosk_id: caller.kiosk_id.clone(),
        gym_id: caller.gym_id.clone(),
        action,
        outcome: "refused",
        reason: Some(refusal.code().to_owned()),
        http_status: refusal.status(),
        latency_ms: millis(started.elapsed()),
        upstream_ms: None,
        kiosk_session_id: caller.kiosk_session,
        openai_session_id: caller.target.clone(),
    };
    tracing::info!(
        kiosk_id = caller.kiosk_id.as_deref().unwrap_or("unknown"),
        session_id = %display_session(caller.kiosk_session),
        action,
        reason = refusal.code(),
        status = refusal.status(),
        "refused"
    );
    app.metrics
        .observe(action, "refused", started.elapsed().as_secs_f64(), None);
    if let Err(e) = app.central.audit(&app.instance, &row).await
        && !matches!(refusal, Refusal::CentralUnavailable)
    {
        tracing::error!(error = %e, "audit row not written");
    }
    let mut response = json_response(refusal.status(), &refusal.body());
    if let Some(s) = refusal.retry_after_s()
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Audits and passes on what OpenAI answered (or why it did not).
pub(crate) async fn relay(
    app: &App,
    action: &'static str,
    caller: &Caller,
    started: Instant,
    answer: Result<Relayed, upstream::UpstreamError>,
    call_id: Option<String>,
) -> Response {
    let (status, outcome, reason, upstream_ms, openai_session, response) = match answer {
        Ok(r) => {
            let ok = r.is_success();
            (
                r.status,
                if ok { "ok" } else { "upstream_error" },
                (!ok).then(|| r.error_reason()),
                Some(r.elapsed),
                call_id
                    .clone()
                    .or_else(|| ok.then(|| r.session_id()).flatten()),
                passthrough(&r),
            )
        }
        Err(e) => (
            e.status(),
            "upstream_error",
            Some(e.code().to_owned()),
            None,
            call_id.clone(),
            json_response(e.status(), &e.body()),
        ),
    };
    let total = started.elapsed();
    let added = total.saturating_sub(upstream_ms.unwrap_or_default());
    let row = AuditRow {
        kiosk_id: caller.kiosk_id.clone(),
        gym_id: caller.gym_id.clone(),
        action,
        outcome,
        reason: reason.clone(),
        http_status: status,
        latency_ms: millis(total),
        upstream_ms: upstream_ms.map(millis),
        kiosk_session_id: caller.kiosk_session,
        openai_session_id: openai_session.clone(),
    };
    app.metrics.observe(
        action,
        outcome,
        added.as_secs_f64(),
        upstream_ms.map(|d| d.as_secs_f64()),
    );
    tracing::info!(
        kiosk_id = caller.kiosk_id.as_deref().unwrap_or("unknown"),
        session_id = %display_session(caller.kiosk_session),
        openai_session_id = openai_session.as_deref().unwrap_or(""),
        action,
        outcome,
        status,
        reason = reason.as_deref().unwrap_or(""),
        added_ms = added.as_secs_f64() * 1000.0,
        "{action} {outcome}"
    );
    if let Err(e) = app.central.audit(&app.instance, &row).await {
        tracing::error!(error = %e, action, "audit row not written: answering 503 (every key and session is audited)");
        if outcome == "ok" && action == "mint" {
            return json_response(503, &Refusal::CentralUnavailable.body());
        }
        if outcome == "ok"
            && action == "relay"
            && let Some(id) = openai_session.as_deref()
        {
            // An unaudited Live session would bill unseen: end it and refuse.
            if let Err(e) = app.upstream.hangup_live(id).await {
                tracing::error!(error = %e, openai_session_id = id, "unaudited Live session not hung up");
            }
            return json_response(503, &Refusal::CentralUnavailable.body());
        }
    }
    response
}

fn passthrough(r: &Relayed) -> Response {
    let mut response = (
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY),
        r.body.clone(),
    )
        .into_response();
    for (name, value) in &r.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, v);
        }
    }
    response
}

fn json_response(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
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

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn display_session(s: Option<Uuid>) -> String {
    s.map_or_else(|| "-".into(), |u| u.to_string())
}

/// Binds `addr` (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
