//! The Realtime routes: an ephemeral key minted with the org key under the fleet's session
//! policy, and a kiosk's call hung up.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::exchange::{App, Caller, admit, refuse, relay, standing};
use crate::policy::{self, Refusal};
use crate::upstream;

/// `POST /v1/realtime/client_secrets`: checks, policy, mint upstream, relay the answer.
pub(crate) async fn mint(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
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

/// `POST /v1/realtime/calls/{call_id}/hangup`: a known kiosk ends a call.
pub(crate) async fn hangup(
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
