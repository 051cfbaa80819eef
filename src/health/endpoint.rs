//! The local health endpoint (`health.listen`, loopback only): `/healthz` for a supervisor
//! or load check, `/metrics` for Prometheus (usually through a node exporter's proxy or an
//! agent on the kiosk).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::report::{Observer, StatusReport};
use jarvis_core::health::{AdapterState, HealthSnapshot};

/// A scraper that stalls mid-request is dropped after this long.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// Adapters without which a member cannot be served. Central is not one: events wait in the
/// outbox while it is away.
const ESSENTIAL: [&str; 4] = ["scanner", "audio", "realtime", "store"];

/// Why the endpoint could not listen.
#[derive(Debug, thiserror::Error)]
#[error(
    "health.listen: cannot listen on {addr}: {source} (another program holds the port? pick \
     another 127.0.0.1 port, or remove health.listen to turn the endpoint off)"
)]
pub struct EndpointBindError {
    addr: SocketAddr,
    source: std::io::Error,
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, EndpointBindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| EndpointBindError { addr, source })
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, observer: Observer, shutdown: CancellationToken) {
    let listener = &listener;
    super::accept::each_connection(
        "health endpoint",
        &shutdown,
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        |stream| {
            let observer = observer.clone();
            async move {
                let svc = service_fn(move |req| {
                    let observer = observer.clone();
                    async move { Ok::<_, Infallible>(respond(&observer, &req).await) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIMIT, conn).await {
                    tracing::debug!(error = %e, "health endpoint: connection ended");
                }
            }
        },
    )
    .await;
}

async fn respond(observer: &Observer, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => {
            let readiness = Readiness::of(&observer.health.snapshot());
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::to_string(&readiness).unwrap_or_default();
            reply(status, "application/json", body)
        }
        (&Method::GET, "/metrics") => {
            let report: StatusReport = observer.report().await;
            reply(
                StatusCode::OK,
                super::metrics::CONTENT_TYPE,
                super::metrics::encode(&report),
            )
        }
        (_, "/healthz" | "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "jarvis-kiosk serves /healthz and /metrics\n".into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `/healthz`'s answer: can this kiosk serve the next member?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub lifecycle: String,
    /// What stands in the way, one line each (empty when ready).
    pub problems: Vec<String>,
}

impl Readiness {
    pub fn of(h: &HealthSnapshot) -> Self {
        let mut problems: Vec<String> = ESSENTIAL
            .iter()
            .filter_map(|name| match h.adapters.get(*name) {
                Some(AdapterState::Up | AdapterState::Disabled(_)) => None,
                Some(state) => Some(format!("{name}: {state}")),
                None => Some(format!("{name}: not reported yet")),
            })
            .collect();
        if h.lifecycle == "degraded" || h.lifecycle == "starting" {
            problems.push(format!("lifecycle: {}", h.lifecycle));
        }
        Readiness {
            ready: problems.is_empty(),
            lifecycle: h.lifecycle.clone(),
            problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(lifecycle: &str, adapters: &[(&str, AdapterState)]) -> HealthSnapshot {
        HealthSnapshot {
            lifecycle: lifecycle.into(),
            adapters: adapters
                .iter()
                .map(|(n, s)| ((*n).to_owned(), s.clone()))
                .collect(),
            ..Default::default()
        }
    }

    fn all_up() -> Vec<(&'static str, AdapterState)> {
        ESSENTIAL.iter().map(|n| (*n, AdapterState::Up)).collect()
    }

    #[test]
    fn ready_when_every_essential_adapter_is_up_whatever_central_does() {
        let mut adapters = all_up();
        adapters.push(("central", AdapterState::Degraded("unreachable".into())));
        let r = Readiness::of(&snapshot("idle", &adapters));
        assert!(r.ready, "{r:?}");
        assert!(r.problems.is_empty());
        assert!(Readiness::of(&snapshot("live", &all_up())).ready);
    }

    #[test]
    fn not_ready_names_each_problem() {
        let mut adapters = all_up();
        adapters[0].1 = AdapterState::Degraded("/dev/jarvis-scanner is missing".into());
        adapters.retain(|(n, _)| *n != "audio");
        let r = Readiness::of(&snapshot("degraded", &adapters));
        assert!(!r.ready);
        assert_eq!(
            r.problems,
            [
                "scanner: degraded: /dev/jarvis-scanner is missing",
                "audio: not reported yet",
                "lifecycle: degraded"
            ]
        );
    }

    #[test]
    fn a_scanner_turned_off_by_configuration_is_not_a_problem() {
        let mut adapters = all_up();
        adapters[0].1 = AdapterState::Disabled("badge.source = none".into());
        assert!(Readiness::of(&snapshot("idle", &adapters)).ready);
        assert!(!Readiness::of(&snapshot("starting", &all_up())).ready);
    }
}
