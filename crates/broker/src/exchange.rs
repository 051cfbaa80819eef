//! What every kiosk request goes through, whatever its route: the shared state ([`App`]), who
//! asked ([`Caller`]), the standing and admission checks, and the one audited answer: a
//! refusal, or OpenAI's answer relayed as it came.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
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

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn display_session(s: Option<Uuid>) -> String {
    s.map_or_else(|| "-".into(), |u| u.to_string())
}
