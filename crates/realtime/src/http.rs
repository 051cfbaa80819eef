//! HTTP to OpenAI and the token broker: one client, one `send` with its timeout, and every
//! failure classified ([`CallError`]) so the breaker and the lead can act on it: bad
//! credentials are permanent and name the config key to fix, 429 carries the server's
//! `Retry-After`, 5xx, connect errors and timeouts are transient.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;

use jarvis_config::OpenAiConfig;
use jarvis_config::secrets::Secret;
use jarvis_core::breaker::Failure;
use jarvis_core::clock;
use jarvis_core::session::BrokerRefusal;

/// Which credential an ephemeral key came from: decides what an HTTP 401 tells a person to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    ApiKey,
    Broker,
    /// The broker's GPT-Live relay (`openai.live.relay_url`).
    Relay,
}

impl KeyOrigin {
    /// The config key to check when OpenAI or the broker refuses a credential.
    pub fn fix_hint(self) -> &'static str {
        match self {
            KeyOrigin::ApiKey => "the OpenAI API key in the file named by openai.api_key_file",
            KeyOrigin::Broker => {
                "the kiosk credential in openai.token_credential_file and the token broker at \
                 openai.token_url"
            }
            KeyOrigin::Relay => {
                "the kiosk credential in openai.token_credential_file and the broker's relay at \
                 openai.live.relay_url"
            }
        }
    }
}

const MAX_DETAIL_CHARS: usize = 300;

/// The longest `Retry-After` honoured; a longer one is capped (the breaker still probes).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Which call failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /realtime/client_secrets` or the token broker.
    Mint,
    /// `POST /realtime/calls` with the SDP offer.
    Exchange,
    /// `POST /realtime/calls/{id}/hangup`.
    Hangup,
    /// `POST /live/sessions` (GPT-Live), directly or through the broker's relay.
    LiveCreate,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Mint => "minting an ephemeral OpenAI key",
            Op::Exchange => "OpenAI SDP exchange",
            Op::Hangup => "OpenAI hangup",
            Op::LiveCreate => "creating a GPT-Live session",
        })
    }
}

/// Why a call to OpenAI (or the token broker) failed. Messages never contain a key.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// 401/403: permanent until a person fixes the credential named in `fix`.
    #[error("{op}: credentials refused (HTTP {status}){detail}: check {fix}")]
    Unauthorized {
        op: Op,
        status: u16,
        detail: String,
        fix: &'static str,
    },
    /// 429: wait at least `retry_after` when the server said so.
    #[error("{op}: rate limited (HTTP 429){detail}{}", retry_hint(.retry_after))]
    RateLimited {
        op: Op,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// The session broker refused this session (budget, rate, kiosk disabled, by its
    /// `error.code`): the broker works, so this is no outage for the breaker; the lifecycle
    /// says it with its own prompt.
    #[error("{op}: the session broker refused the session: {} (HTTP {status}){detail}", .refusal.cause())]
    Refused {
        op: Op,
        status: u16,
        refusal: BrokerRefusal,
        retry_after: Option<Duration>,
        detail: String,
    },
    /// 5xx: transient.
    #[error("{op}: OpenAI server error (HTTP {status}){detail}; transient, retried later")]
    Server { op: Op, status: u16, detail: String },
    /// Any other non-2xx (400 bad offer, 404 wrong `openai.base_url`, a redirect, ...).
    #[error(
        "{op}: request refused (HTTP {status}){detail} (check openai.base_url and the kiosk's version)"
    )]
    Rejected {
        op: Op,
        status: u16,
        code: Option<String>,
        detail: String,
    },
    /// No connection or answer within `openai.connect_timeout_s`.
    #[error("{op}: no answer from {url} within {}s (check the network; raise openai.connect_timeout_s on slow links)", .after.as_secs())]
    Timeout {
        op: Op,
        url: String,
        after: Duration,
    },
    /// DNS, TCP or TLS failure.
    #[error("{op}: cannot reach {url}: {reason} (check the network and openai.base_url)")]
    Connect { op: Op, url: String, reason: String },
    /// A 2xx whose body is not what the protocol promises.
    #[error("{op}: malformed answer from {url}: {reason}")]
    Malformed { op: Op, url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; retry after {}s", d.as_secs()),
        None => "; retry later".into(),
    }
}

impl CallError {
    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::RateLimited { retry_after, .. } | CallError::Refused { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// A short cause for health and logs (`http 429`, `timeout`, ...).
    pub fn cause(&self) -> String {
        match self {
            CallError::Unauthorized { status, .. }
            | CallError::Server { status, .. }
            | CallError::Rejected { status, .. } => format!("http {status}"),
            CallError::RateLimited { .. } => "http 429".into(),
            CallError::Refused { refusal, .. } => refusal.cause().into(),
            CallError::Timeout { .. } => "timeout".into(),
            CallError::Connect { .. } => "connect error".into(),
            CallError::Malformed { .. } => "malformed answer".into(),
            CallError::Client(_) => "http client error".into(),
        }
    }

    /// What to report to the circuit breaker.
    pub fn breaker_failure(&self) -> Failure {
        Failure {
            cause: self.cause(),
            retry_after: self.retry_after(),
        }
    }
}

/// The client every OpenAI call goes through; callers hold it without naming the HTTP crate.
pub type HttpClient = reqwest::Client;

/// The HTTP client for OpenAI and the token broker: rustls, `openai.connect_timeout_s` to
/// connect, no redirects (a bearer key is never replayed elsewhere). Build it once and share.
/// The one place proxies are decided: `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and `NO_PROXY`
/// from the environment (the unit's drop-in) are honoured, so every call (key, SDP exchange,
/// hang-up, broker) follows the site's proxy.
pub fn http_client(cfg: &OpenAiConfig) -> Result<HttpClient, CallError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_s))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("jarvis-kiosk/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| CallError::Client(e.to_string()))
}

/// `{base_url}/{path}` without a doubled slash.
pub(crate) fn endpoint(base_url: &str, path: &str) -> String {
    format!("{}/{}", base_url.trim_end_matches('/'), path)
}

/// Sends `request`, bounded by `openai.connect_timeout_s`, and returns a 2xx answer's headers
/// and body; any other status is classified (`origin` names the key that was used).
pub(crate) async fn send(
    op: Op,
    url: &str,
    cfg: &OpenAiConfig,
    origin: KeyOrigin,
    request: reqwest::RequestBuilder,
) -> Result<(HeaderMap, String), CallError> {
    let timeout = Duration::from_secs(cfg.connect_timeout_s);
    let transport = |e: reqwest::Error| transport_error(op, url, timeout, &e);
    let response = request.timeout(timeout).send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(transport)?;
    if !(200..300).contains(&status) {
        return Err(classify(
            op,
            status,
            &headers,
            &body,
            origin,
            clock::wall_ms(),
        ));
    }
    Ok((headers, body))
}

pub(crate) fn bearer(secret: &Secret) -> String {
    format!("Bearer {}", secret.expose())
}

/// Maps a reqwest failure (no HTTP status) to timeout / connect / other.
fn transport_error(op: Op, url: &str, timeout: Duration, e: &reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout {
            op,
            url: url.to_owned(),
            after: timeout,
        }
    } else {
        CallError::Connect {
            op,
            url: url.to_owned(),
            reason: root_cause(e),
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Classifies a non-2xx answer. Pure: `now_ms` (wall clock) only turns an HTTP-date
/// `Retry-After` into a delay.
pub fn classify(
    op: Op,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    origin: KeyOrigin,
    now_ms: i64,
) -> CallError {
    let (code, message) = error_envelope(body);
    let detail = match (&code, &message) {
        (_, Some(m)) if !m.is_empty() => format!(": {}", scrub(m)),
        (Some(c), _) => format!(": {}", scrub(c)),
        _ => String::new(),
    };
    if matches!(origin, KeyOrigin::Broker | KeyOrigin::Relay)
        && let Some(refusal) = code.as_deref().and_then(BrokerRefusal::from_code)
    {
        return CallError::Refused {
            op,
            status,
            refusal,
            retry_after: retry_after(headers, now_ms),
            detail,
        };
    }
    match status {
        401 | 403 => CallError::Unauthorized {
            op,
            status,
            detail,
            fix: origin.fix_hint(),
        },
        429 => CallError::RateLimited {
            op,
            retry_after: retry_after(headers, now_ms),
            detail,
        },
        500..=599 => CallError::Server { op, status, detail },
        _ => CallError::Rejected {
            op,
            status,
            code,
            detail,
        },
    }
}

/// `(error.code, error.message)` of OpenAI's error envelope, or the body's first line.
fn error_envelope(body: &str) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        code: Option<serde_json::Value>,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(e) => (
            e.error.code.map(|c| match c {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
            e.error.message,
        ),
        Err(_) => {
            let first = body.lines().next().unwrap_or_default().trim();
            (None, (!first.is_empty()).then(|| first.to_owned()))
        }
    }
}

/// Truncates server text and masks anything shaped like a key (`sk-…`, `ek_…`).
fn scrub(text: &str) -> String {
    let masked: Vec<String> = text
        .split(' ')
        .map(|w| {
            let bare = w.trim_start_matches(['"', '\'', '(', '[']);
            if bare.starts_with("sk-") || bare.starts_with("ek_") || bare.starts_with("Bearer") {
                "[redacted]".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let joined = masked.join(" ");
    match joined.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// The delay a 429 asks for: `retry-after-ms`, else `Retry-After` in seconds or as an
/// HTTP-date; capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let from_ms = header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok());
    let delay = from_ms.or_else(|| {
        let v = header("retry-after")?.trim();
        match v.parse::<f64>() {
            Ok(secs) => Duration::try_from_secs_f64(secs).ok(),
            Err(_) => {
                let at_ms = i64::try_from(parse_http_date(v)?)
                    .ok()?
                    .saturating_mul(1000);
                let ahead = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
                Some(Duration::from_millis(ahead))
            }
        }
    })?;
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Unix seconds of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP requires.
fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, clock, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = match *month {
        "Jan" => time::Month::January,
        "Feb" => time::Month::February,
        "Mar" => time::Month::March,
        "Apr" => time::Month::April,
        "May" => time::Month::May,
        "Jun" => time::Month::June,
        "Jul" => time::Month::July,
        "Aug" => time::Month::August,
        "Sep" => time::Month::September,
        "Oct" => time::Month::October,
        "Nov" => time::Month::November,
        "Dec" => time::Month::December,
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let mut hms = clock.split(':').map(|p| p.parse::<u8>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() {
        return None;
    }
    let t = time::Time::from_hms(h, m, sec).ok()?;
    u64::try_from(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
    .ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    /// A header map from name/value pairs (also used by the `calls` tests).
    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_in_every_form() {
        let now: i64 = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT")]),
                now
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]),
                now
            ),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "86400")]), now),
            Some(MAX_RETRY_AFTER)
        );
        for bad in [
            "soon",
            "-3",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 32 Nov 1994 08:00:00 GMT",
        ] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", bad)]), now),
                None,
                "{bad}"
            );
        }
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn statuses_are_classified() {
        let now = clock::wall_ms();
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let e = classify(
            Op::Exchange,
            401,
            &HeaderMap::new(),
            body,
            KeyOrigin::ApiKey,
            now,
        );
        let text = e.to_string();
        assert!(text.contains("openai.api_key_file"), "{text}");
        assert!(!text.contains("sk-abc"), "{text}");
        let e = classify(Op::Mint, 403, &HeaderMap::new(), "", KeyOrigin::Broker, now);
        assert!(
            e.to_string().contains("openai.token_credential_file"),
            "{e}"
        );
        let e = classify(
            Op::Exchange,
            429,
            &headers(&[("retry-after", "20")]),
            "{}",
            KeyOrigin::ApiKey,
            now,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(20)));
        assert_eq!(
            e.breaker_failure().retry_after,
            Some(Duration::from_secs(20))
        );
        let e = classify(
            Op::Exchange,
            503,
            &HeaderMap::new(),
            "upstream down\nmore",
            KeyOrigin::ApiKey,
            now,
        );
        assert!(matches!(e, CallError::Server { status: 503, .. }));
        assert!(e.to_string().contains("upstream down"), "{e}");
        let e = classify(
            Op::Exchange,
            400,
            &HeaderMap::new(),
            r#"{"error":{"message":"The Realtime Beta API is no longer supported.","code":"beta_api_shape_disabled"}}"#,
            KeyOrigin::ApiKey,
            now,
        );
        let CallError::Rejected { code, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(code.as_deref(), Some("beta_api_shape_disabled"));
        assert_eq!(e.cause(), "http 400");
    }

    #[test]
    fn broker_refusals_are_told_apart_from_outages() {
        let now = clock::wall_ms();
        let body = r#"{"error":{"type":"broker_refusal","code":"gym_budget_exhausted","message":"this gym's daily budget is spent"}}"#;
        let e = classify(
            Op::Mint,
            429,
            &headers(&[("retry-after", "3600")]),
            body,
            KeyOrigin::Broker,
            now,
        );
        let CallError::Refused { refusal, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*refusal, BrokerRefusal::GymBudget);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
        assert_eq!(e.cause(), "broker_gym_budget");
        // The same code from OpenAI itself (an API key) is just a 429.
        let e = classify(
            Op::Mint,
            429,
            &HeaderMap::new(),
            body,
            KeyOrigin::ApiKey,
            now,
        );
        assert!(matches!(e, CallError::RateLimited { .. }), "{e:?}");
        // A bad kiosk token stays a credential problem naming the key.
        let e = classify(
            Op::Mint,
            401,
            &HeaderMap::new(),
            r#"{"error":{"code":"kiosk_token_invalid","message":"unknown kiosk token"}}"#,
            KeyOrigin::Broker,
            now,
        );
        assert!(matches!(e, CallError::Unauthorized { .. }), "{e:?}");
    }

    #[test]
    fn long_or_secret_bearing_details_are_scrubbed() {
        let long = "x ".repeat(1000);
        assert!(scrub(&long).chars().count() <= MAX_DETAIL_CHARS + 1);
        assert_eq!(
            scrub("bad key ek_123 and \"sk-proj-9\" here"),
            "bad key [redacted] and [redacted] here"
        );
    }

    #[test]
    fn endpoint_joins_without_double_slash() {
        assert_eq!(
            endpoint("https://api.openai.com/v1/", "realtime/calls"),
            "https://api.openai.com/v1/realtime/calls"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/v1", "realtime/calls"),
            "http://127.0.0.1:9/v1/realtime/calls"
        );
    }
}
