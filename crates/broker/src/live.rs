//! The GPT-Live relay. GPT-Live has no ephemeral keys: a trusted backend must create each
//! session with the org key (reference §2), so the kiosk POSTs here exactly what it would POST
//! to OpenAI's `/v1/live/sessions` (`{session, transport:{type:"webrtc", sdp}}`) with its own
//! token. The broker runs the mint's checks (token, enablement, budgets, rate: one standing
//! query, [`crate::policy::decide`]), imposes the fleet's `[live]` policy ([`live_policy::apply`]),
//! creates the session upstream and relays the answer (`201 {session:{id}, transport:{sdp}}`,
//! or OpenAI's error with its status and `Retry-After`) as it came. A kiosk hangs up only the
//! sessions relayed for it. Each request is one `broker_audit` row (`relay` or `close`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::exchange::{App, Caller, admit, refuse, relay, standing};
use crate::live_policy;
use crate::policy::Refusal;
use crate::upstream;

/// `POST /v1/live/sessions`: checks, policy, create upstream, relay the answer.
pub async fn create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let mut caller = Caller::of(&headers);
    let checked = async {
        admit(&app, &headers, &mut caller).await?;
        live_policy::apply(&body, &app.cfg.live)
    }
    .await;
    let request = match checked {
        Ok(r) => r,
        Err(refusal) => return refuse(&app, "relay", &caller, started, &refusal).await,
    };
    let answer = app.upstream.create_live(&request).await;
    relay(&app, "relay", &caller, started, answer, None).await
}

/// `POST /v1/live/sessions/{session_id}/hangup`: a known kiosk ends one of its own sessions
/// (disabled or over budget included: ending spend is always allowed).
pub async fn hang_up(
    State(app): State<Arc<App>>,
    Path(session_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let mut caller = Caller::of(&headers);
    if upstream::is_call_id(&session_id) {
        caller.target = Some(session_id.clone());
    }
    let checked = async {
        let s = standing(&app, &headers).await?;
        let kiosk_id = match &s {
            Some(s) if !s.token_expired => {
                caller.known(s);
                s.kiosk_id.clone()
            }
            Some(_) => return Err(Refusal::TokenExpired),
            None => return Err(Refusal::UnknownToken),
        };
        if !upstream::is_call_id(&session_id) {
            return Err(Refusal::BadRequest(
                "the session id is not of the form live_…".into(),
            ));
        }
        let owner = app.central.relayed_to(&session_id).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read whom the Live session was relayed for");
            Refusal::CentralUnavailable
        })?;
        if owner.as_deref() != Some(kiosk_id.as_str()) {
            return Err(Refusal::UnknownSession);
        }
        Ok(())
    }
    .await;
    if let Err(refusal) = checked {
        return refuse(&app, "close", &caller, started, &refusal).await;
    }
    let answer = app.upstream.hangup_live(&session_id).await;
    relay(&app, "close", &caller, started, answer, Some(session_id)).await
}
