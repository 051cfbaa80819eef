//! The HTTP routes: `/` (the page), `/fragment` (its refreshing part), `/login`, `/logout`,
//! `/healthz`. Every page response says `no-store` and forbids framing; the page's script
//! and style are inline, so the CSP allows only those.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::auth::{self, Login, Operator};
use crate::config::DashboardConfig;
use crate::db::{Central, DbError};
use crate::queries::{self, Scope, Snapshot};
use crate::view::{self, PageContext};

/// Shared by the handlers.
pub struct App {
    pub cfg: DashboardConfig,
    pub db: Central,
    pub instance: String,
}

/// Binds the listener (a clear error when the port is taken).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "dashboard.listen = {addr}: {e} (choose a free port or stop the other service)"
        )
    })
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/fragment", get(fragment))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(app)
}

/// Serves until `stop` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop)
    .await
}

#[derive(Debug, Deserialize)]
struct Period {
    days: Option<u32>,
}

#[derive(Deserialize)]
struct Credentials {
    operator: String,
    password: String,
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(LOCATION, HeaderValue::from_static(to));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r
}

/// The cause goes to the journal; the browser (maybe not logged in) only learns that central
/// did not answer.
fn unavailable(e: &DbError) -> Response {
    tracing::warn!(error = %e, "central unavailable");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        "<p>The central database did not answer; the cause is in the dashboard's journal \
         (journalctl -u jarvis-dashboard).</p>"
            .into(),
    )
}

fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie_value(h, auth::COOKIE).map(str::to_owned))
        .filter(|t| !t.is_empty())
}

async fn operator(app: &App, headers: &HeaderMap) -> Result<Option<Operator>, DbError> {
    match token(headers) {
        Some(t) => auth::session(&app.db, &t).await,
        None => Ok(None),
    }
}

fn context(app: &App, op: &Operator, days: u32) -> PageContext {
    PageContext {
        operator: op.name.clone(),
        period_days: days,
        refresh_s: app.cfg.dashboard.refresh_s,
        silent_after_s: app.cfg.alerts.silent_after_s,
        kiosk_budget: app.cfg.budgets.kiosk_daily_usd.0,
        gym_budget: app.cfg.budgets.gym_daily_usd.0,
        heartbeat_s: app.cfg.alerts.heartbeat_s,
    }
}

fn scope(app: &App, op: &Operator, days: u32) -> Scope {
    Scope {
        gyms: op.gyms.clone(),
        period_days: days,
        timezone: app.cfg.budgets.timezone.clone(),
        beats_per_day: i32::try_from(86_400 / app.cfg.alerts.heartbeat_s.max(1)).unwrap_or(1440),
    }
}

fn days(p: &Period) -> u32 {
    p.days.unwrap_or(1).clamp(1, 90)
}

async fn page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Response {
    match signed_in_snapshot(&app, &headers, &p, || redirect("/login", None)).await {
        Ok((ctx, snap)) => html(StatusCode::OK, view::page(&ctx, &snap)),
        Err(r) => r,
    }
}

async fn fragment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(p): Query<Period>,
) -> Response {
    let unauthorized = || html(StatusCode::UNAUTHORIZED, String::new());
    match signed_in_snapshot(&app, &headers, &p, unauthorized).await {
        Ok((ctx, snap)) => html(StatusCode::OK, view::fragment(&ctx, &snap)),
        Err(r) => r,
    }
}

/// What the signed-in operator may see for the period asked; `Err` is the response to send
/// instead (`signed_out` when nobody is signed in, 503 when central does not answer).
async fn signed_in_snapshot(
    app: &App,
    headers: &HeaderMap,
    p: &Period,
    signed_out: impl FnOnce() -> Response,
) -> Result<(PageContext, Snapshot), Response> {
    let op = match operator(app, headers).await {
        Ok(Some(op)) => op,
        Ok(None) => return Err(signed_out()),
        Err(e) => return Err(unavailable(&e)),
    };
    let days = days(p);
    let snap = queries::snapshot(&app.db, &scope(app, &op, days))
        .await
        .map_err(|e| unavailable(&e))?;
    Ok((context(app, &op, days), snap))
}

async fn login_form() -> Response {
    html(StatusCode::OK, view::login(None))
}

async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(c): Form<Credentials>,
) -> Response {
    let remote = remote(&headers, peer);
    match auth::login(
        &app.db,
        &app.instance,
        &c.operator,
        &c.password,
        &remote,
        app.cfg.dashboard.session_ttl_s,
    )
    .await
    {
        Ok(Login::Ok(token)) => redirect(
            "/",
            Some(auth::set_cookie(
                &token,
                app.cfg.dashboard.session_ttl_s,
                app.cfg.dashboard.secure_cookie,
            )),
        ),
        Ok(Login::Refused(_)) => html(
            StatusCode::UNAUTHORIZED,
            view::login(Some("Wrong operator or password.")),
        ),
        Err(e) => unavailable(&e),
    }
}

async fn logout(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = token(&headers)
        && let Err(e) = auth::logout(&app.db, &app.instance, &t, &remote(&headers, peer)).await
    {
        return unavailable(&e);
    }
    redirect(
        "/login",
        Some(auth::clear_cookie(app.cfg.dashboard.secure_cookie)),
    )
}

/// The peer, with the proxy's `X-Forwarded-For` when the peer is loopback (the documented
/// deployment puts a TLS proxy on the same host).
fn remote(headers: &HeaderMap, peer: SocketAddr) -> String {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next_back())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match forwarded {
        Some(f) if peer.ip().is_loopback() => format!("{f} via {peer}"),
        _ => peer.to_string(),
    }
}
