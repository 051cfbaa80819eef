//! Per-session ephemeral OpenAI keys (reference §2.1), minted either with the kiosk's own API
//! key (`openai.api_key_file` -> `POST {openai.base_url}/realtime/client_secrets`) or by a
//! token broker (`openai.token_url`, authenticated with the kiosk's bearer credential from
//! `openai.token_credential_file`), so a fleet's kiosks need not hold the org key.
//!
//! The broker receives the same JSON body as OpenAI's endpoint and must answer the same JSON
//! (`{"value":"ek_…","expires_at":…,"session":{…}}`); it may override the session.
//! Keys are [`Secret`]s: their Debug and Display print `[redacted]`.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use super::http::{CallError, HttpClient, KeyOrigin, Op, bearer, endpoint, send};
use super::protocol::Session;
use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::{Secret, SecretError};

/// Lifetime asked for an ephemeral key. It only gates *starting* the call, which follows at
/// once; the conversation itself may last longer (reference §2.1).
pub const EPHEMERAL_KEY_TTL: Duration = Duration::from_secs(120);

/// The header naming the kiosk's session at the broker.
pub const SESSION_HEADER: &str = "x-jarvis-session-id";

/// Where this kiosk's ephemeral keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The OpenAI API key from `openai.api_key_file`.
    ApiKey(Secret),
    /// A token broker at `openai.token_url`, with the kiosk's bearer credential.
    Broker { url: String, credential: Secret },
}

/// Why the credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "openai.api_key_file: no OpenAI credential configured: set openai.api_key_file (a file \
         holding the API key) or openai.token_url and openai.token_credential_file (a token broker)"
    )]
    NotConfigured,
    #[error(
        "openai.token_credential_file: required with openai.token_url (the file holding this \
         kiosk's bearer credential for the broker)"
    )]
    MissingBrokerCredential,
    #[error(
        "openai.live.relay_url: no GPT-Live credential configured: set openai.live.relay_url \
         (the broker's relay) and openai.token_credential_file, or, for development only, \
         openai.api_key_file"
    )]
    LiveNotConfigured,
    #[error(
        "openai.token_credential_file: required with openai.live.relay_url (the file holding \
         this kiosk's bearer credential for the broker)"
    )]
    MissingRelayCredential,
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl Credentials {
    /// Reads the credential files (bare names resolve in `$CREDENTIALS_DIRECTORY`).
    pub fn from_config(cfg: &OpenAiConfig) -> Result<Credentials, CredentialError> {
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY");
        Self::from_config_in(cfg, creds.as_deref().map(Path::new))
    }

    /// As [`Credentials::from_config`], with an explicit credentials directory.
    pub fn from_config_in(
        cfg: &OpenAiConfig,
        credentials_dir: Option<&Path>,
    ) -> Result<Credentials, CredentialError> {
        match (&cfg.token_url, &cfg.api_key_file) {
            (Some(url), _) => {
                let file = cfg
                    .token_credential_file
                    .as_ref()
                    .ok_or(CredentialError::MissingBrokerCredential)?;
                Ok(Credentials::Broker {
                    url: url.clone(),
                    credential: file.read_in("openai.token_credential_file", credentials_dir)?,
                })
            }
            (None, Some(file)) => Ok(Credentials::ApiKey(
                file.read_in("openai.api_key_file", credentials_dir)?,
            )),
            (None, None) => Err(CredentialError::NotConfigured),
        }
    }

    /// A GPT-Live kiosk's credential: the broker's relay (`openai.live.relay_url`) with the
    /// kiosk's bearer credential, or, for development, the API key (`openai.api_key_file`).
    pub fn for_live(
        cfg: &OpenAiConfig,
        credentials_dir: Option<&Path>,
    ) -> Result<Credentials, CredentialError> {
        match (&cfg.live.relay_url, &cfg.api_key_file) {
            (Some(url), _) => {
                let file = cfg
                    .token_credential_file
                    .as_ref()
                    .ok_or(CredentialError::MissingRelayCredential)?;
                Ok(Credentials::Broker {
                    url: url.clone(),
                    credential: file.read_in("openai.token_credential_file", credentials_dir)?,
                })
            }
            (None, Some(file)) => Ok(Credentials::ApiKey(
                file.read_in("openai.api_key_file", credentials_dir)?,
            )),
            (None, None) => Err(CredentialError::LiveNotConfigured),
        }
    }

    pub fn origin(&self) -> KeyOrigin {
        match self {
            Credentials::ApiKey(_) => KeyOrigin::ApiKey,
            Credentials::Broker { .. } => KeyOrigin::Broker,
        }
    }

    /// Where a call is hung up and with which credential: OpenAI (`openai.base_url`) with the
    /// API key, or the broker with the kiosk's token, at the `…/calls/{id}/hangup` beside its
    /// `…/realtime/client_secrets` (the broker holds the org key hang-up needs). `None` when
    /// `openai.token_url` has another shape: the kiosk then closes the peer connection only.
    pub fn hangup_via(&self, cfg: &OpenAiConfig) -> Option<(String, &Secret, KeyOrigin)> {
        match self {
            Credentials::ApiKey(k) => Some((cfg.base_url.clone(), k, KeyOrigin::ApiKey)),
            Credentials::Broker { url, credential } => url
                .trim_end_matches('/')
                .strip_suffix("/realtime/client_secrets")
                .map(|base| (base.to_owned(), credential, KeyOrigin::Broker)),
        }
    }
}

/// A minted per-session key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralKey {
    /// `ek_…`; only ever exposed in the `Authorization` header of the SDP exchange.
    pub value: Secret,
    /// Unix seconds after which no new call can start with it.
    pub expires_at: i64,
    pub origin: KeyOrigin,
    /// The server's session id (`sess_…`), when the answer carries it.
    pub session_id: Option<String>,
    /// The model the key's session is bound to, when the answer carries it.
    pub model: Option<String>,
}

/// `RealtimeCreateClientSecretRequest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientSecretRequest {
    pub expires_after: ExpiresAfter,
    pub session: Session,
    /// The kiosk's session id, sent to a broker as `X-Jarvis-Session-Id` (its audit and logs
    /// then name the session support looks for); never sent to OpenAI.
    #[serde(skip)]
    pub kiosk_session_id: Option<String>,
}

/// `expires_after`: only the `created_at` anchor exists; 10..=7200 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpiresAfter {
    pub anchor: &'static str,
    pub seconds: u64,
}

impl ClientSecretRequest {
    /// The request for this session: `session` (e.g. `session_update::session(…)`) bound to
    /// `openai.model`.
    pub fn new(cfg: &OpenAiConfig, mut session: Session) -> ClientSecretRequest {
        session.model = Some(cfg.model.clone());
        ClientSecretRequest {
            expires_after: ExpiresAfter {
                anchor: "created_at",
                seconds: EPHEMERAL_KEY_TTL.as_secs(),
            },
            session,
            kiosk_session_id: None,
        }
    }

    /// Names the kiosk's session for the broker.
    pub fn for_session(mut self, session_id: impl Into<String>) -> ClientSecretRequest {
        self.kiosk_session_id = Some(session_id.into());
        self
    }
}

#[derive(Deserialize)]
struct ClientSecretResponse {
    value: String,
    expires_at: i64,
    #[serde(default)]
    session: Option<SessionEcho>,
}

#[derive(Deserialize)]
struct SessionEcho {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

/// Mints an ephemeral key for one session, bounded by `openai.connect_timeout_s`.
pub async fn mint(
    http: &HttpClient,
    cfg: &OpenAiConfig,
    creds: &Credentials,
    request: &ClientSecretRequest,
) -> Result<EphemeralKey, CallError> {
    let (url, credential) = match creds {
        Credentials::ApiKey(key) => (endpoint(&cfg.base_url, "realtime/client_secrets"), key),
        Credentials::Broker { url, credential } => (url.clone(), credential),
    };
    let origin = creds.origin();
    let mut post = http
        .post(&url)
        .header(AUTHORIZATION, bearer(credential))
        .header(CONTENT_TYPE, "application/json")
        .json(request);
    if let (KeyOrigin::Broker, Some(id)) = (origin, &request.kiosk_session_id) {
        post = post.header(SESSION_HEADER, id.as_str());
    }
    let (_, body) = send(Op::Mint, &url, cfg, origin, post).await?;
    parse_client_secret(&body, origin).map_err(|reason| CallError::Malformed {
        op: Op::Mint,
        url,
        reason,
    })
}

/// Reads the client-secret answer. Errors never quote the body: it holds the key.
fn parse_client_secret(body: &str, origin: KeyOrigin) -> Result<EphemeralKey, String> {
    let answer: ClientSecretResponse = serde_json::from_str(body).map_err(|e| {
        format!(
            "not the client-secret JSON (expected top-level `value` and `expires_at`; error at \
             line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    if answer.value.trim().is_empty() {
        return Err("the key `value` is empty".into());
    }
    let (session_id, model) = answer.session.map(|s| (s.id, s.model)).unwrap_or_default();
    Ok(EphemeralKey {
        value: Secret::new(answer.value.trim()),
        expires_at: answer.expires_at,
        origin,
        session_id,
        model,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;
    use jarvis_config::secrets::SecretPath;

    #[test]
    fn reads_the_api_key_or_the_broker_credential() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openai-key"), "sk-test-1\n").unwrap();
        std::fs::write(dir.path().join("kiosk-token"), "kt-1").unwrap();
        let cfg = OpenAiConfig {
            api_key_file: Some(SecretPath(PathBuf::from("openai-key"))),
            ..OpenAiConfig::default()
        };
        let c = Credentials::from_config_in(&cfg, Some(dir.path())).unwrap();
        assert_eq!(c, Credentials::ApiKey(Secret::new("sk-test-1")));
        let (base, key, _) = c.hangup_via(&cfg).unwrap();
        assert_eq!(
            (base.as_str(), key.expose()),
            (cfg.base_url.as_str(), "sk-test-1")
        );
        let broker = OpenAiConfig {
            token_url: Some("https://broker.example/v1/realtime/client_secrets".into()),
            token_credential_file: Some(SecretPath(PathBuf::from("kiosk-token"))),
            ..OpenAiConfig::default()
        };
        let c = Credentials::from_config_in(&broker, Some(dir.path())).unwrap();
        assert_eq!(c.origin(), KeyOrigin::Broker);
        let (base, key, origin) = c.hangup_via(&broker).unwrap();
        assert_eq!(
            (base.as_str(), key.expose(), origin),
            ("https://broker.example/v1", "kt-1", KeyOrigin::Broker)
        );
        let elsewhere = Credentials::Broker {
            url: "https://broker.example/token".into(),
            credential: Secret::new("kt-1"),
        };
        assert_eq!(elsewhere.hangup_via(&broker), None);
        assert!(!format!("{c:?}").contains("kt-1"));
    }

    #[test]
    fn missing_credentials_name_the_keys() {
        let err = Credentials::from_config_in(&OpenAiConfig::default(), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("openai.api_key_file") && text.contains("openai.token_url"),
            "{text}"
        );
        let no_cred = OpenAiConfig {
            token_url: Some("https://broker.example/token".into()),
            ..OpenAiConfig::default()
        };
        let err = Credentials::from_config_in(&no_cred, None).unwrap_err();
        assert!(
            err.to_string().starts_with("openai.token_credential_file"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = OpenAiConfig {
            api_key_file: Some(SecretPath(dir.path().join("nope"))),
            ..OpenAiConfig::default()
        };
        let err = Credentials::from_config_in(&missing, None).unwrap_err();
        assert!(err.to_string().contains("openai.api_key_file"), "{err}");
    }

    #[test]
    fn request_has_the_reference_shape() {
        let session = Session {
            instructions: Some("…".into()),
            ..Session::default()
        };
        let r = ClientSecretRequest::new(&OpenAiConfig::default(), session);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "expires_after": { "anchor": "created_at", "seconds": 120 },
                "session": { "type": "realtime", "model": "gpt-realtime", "instructions": "…" }
            })
        );
    }

    #[test]
    fn parses_the_reference_answer_and_redacts_the_key() {
        let body = json!({
            "value": "ek_68af296e8e408191a1120ab6383263c2", "expires_at": 1756310470,
            "session": { "type": "realtime", "object": "realtime.session",
                         "id": "sess_C9CiUVUzUzYIssh3ELY1d", "model": "gpt-realtime" }
        })
        .to_string();
        let k = parse_client_secret(&body, KeyOrigin::ApiKey).unwrap();
        assert_eq!(k.value.expose(), "ek_68af296e8e408191a1120ab6383263c2");
        assert_eq!(k.expires_at, 1756310470);
        assert_eq!(k.session_id.as_deref(), Some("sess_C9CiUVUzUzYIssh3ELY1d"));
        assert_eq!(k.model.as_deref(), Some("gpt-realtime"));
        assert!(!format!("{k:?}").contains("ek_68af"));
    }

    #[test]
    fn malformed_answers_never_quote_the_body() {
        for body in [
            "",
            "not json",
            r#"{"client_secret":{"value":"ek_beta_secret","expires_at":1}}"#,
            r#"{"value":"   ","expires_at":1}"#,
            r#"{"value":"ek_abc","expires_at":"ek_leak"}"#,
        ] {
            let err = parse_client_secret(body, KeyOrigin::Broker).unwrap_err();
            assert!(!err.contains("ek_"), "{err}");
        }
    }
}
