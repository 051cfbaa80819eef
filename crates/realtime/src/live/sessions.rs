//! Creating a GPT-Live session from the kiosk (reference §3): the JSON body with the kiosk's
//! SDP offer goes to the broker's relay with the kiosk's credential, or, for development, to
//! `{openai.base_url}/live/sessions` with the API key. Never retried: the request itself starts
//! a billed session, so a retry could bill a second one.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use super::{CreateRequest, Created};
use crate::credentials::{Credentials, SESSION_HEADER};
use crate::http::{CallError, HttpClient, KeyOrigin, Op, bearer, endpoint, send};
use jarvis_config::OpenAiConfig;

/// The voice's default delegation prompt, used when `openai.live.delegation_instructions_file`
/// is not set: the backend's only job at a kiosk is to end the session on a goodbye.
pub const DEFAULT_DELEGATION_INSTRUCTIONS: &str =
    include_str!("../../../../assets/delegation.en.txt");

/// The delegation prompt of `openai.live.delegation_instructions_file`, or the built-in one.
pub fn delegation_instructions(cfg: &OpenAiConfig) -> Result<String, String> {
    match &cfg.live.delegation_instructions_file {
        None => Ok(DEFAULT_DELEGATION_INSTRUCTIONS.to_owned()),
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            format!(
                "openai.live.delegation_instructions_file: cannot read {}: {e} (fix the path or \
                 unset the key to use the built-in instructions)",
                path.display()
            )
        }),
    }
}

/// Posts the create request (`kiosk_session_id` names the kiosk's session at the broker) and
/// reads the `201` answer: the session id and the SDP answer.
pub async fn create(
    http: &HttpClient,
    cfg: &OpenAiConfig,
    creds: &Credentials,
    kiosk_session_id: &str,
    request: &CreateRequest,
) -> Result<Created, CallError> {
    let (url, credential, origin) = match creds {
        Credentials::ApiKey(key) => (
            endpoint(&cfg.base_url, "live/sessions"),
            key,
            KeyOrigin::ApiKey,
        ),
        Credentials::Broker { url, credential } => (url.clone(), credential, KeyOrigin::Relay),
    };
    let mut post = http
        .post(&url)
        .header(AUTHORIZATION, bearer(credential))
        .header(CONTENT_TYPE, "application/json")
        .json(request);
    if origin == KeyOrigin::Relay {
        post = post.header(SESSION_HEADER, kiosk_session_id);
    }
    let (_, body) = send(Op::LiveCreate, &url, cfg, origin, post).await?;
    Created::parse(&body).map_err(|reason| CallError::Malformed {
        op: Op::LiveCreate,
        url,
        reason,
    })
}
