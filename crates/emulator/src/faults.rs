//! Switchable failures of the emulator (`--fault KEY[=VALUE]`, repeatable):
//!
//! | spec | effect |
//! |---|---|
//! | `http-status=500` (or 401, 429, …) | `client_secrets`, `calls` and `live/sessions` answer this status with OpenAI's error envelope |
//! | `retry-after=2` | with 429/503: the `Retry-After` header, in seconds |
//! | `fail-times=1` | the HTTP fault fires this many times, then requests succeed (default: always) |
//! | `answer-delay-ms=800` | `calls` waits this long before answering |
//! | `drop-after-turn=1` | after turn N's reply audio, the call goes silent (no packet at all) |
//! | `malformed` | non-JSON text and an unknown event type on the data channel |
//! | `pause-after-turn=1` | after turn N's reply audio, no packet goes either way for `pause-ms` (default 3000), then the call goes on: a network outage |
//! | `pause-ms=3000` | how long `pause-after-turn` pauses |
//! | `block-udp` | the answer's UDP candidate is a socket nobody answers on (a firewall dropping UDP); the passive TCP candidate works |
//! | `refuse-tcp` | the answer's TCP candidate is a closed port (connection refused) |
//! | `expire-after-ms=5000` | a GPT-Live session's `expires_at` is this far after creation; then `session.closed`, reason `expired` |

use std::time::Duration;

use serde_json::json;

use super::script::ScriptFaults;

/// The faults of one emulator instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// HTTP status for `client_secrets` and `calls` (>= 400).
    pub http_status: Option<u16>,
    /// `Retry-After` seconds sent with the HTTP fault.
    pub retry_after_s: Option<u32>,
    /// How many requests the HTTP fault hits; `None` = all.
    pub fail_times: Option<u32>,
    /// Delay before the SDP answer.
    pub answer_delay: Duration,
    /// Go silent after this many turns.
    pub drop_after_turn: Option<usize>,
    /// Send malformed and unknown events.
    pub malformed: bool,
    /// Pause all traffic after this many turns.
    pub pause_after_turn: Option<usize>,
    /// How long the pause lasts.
    pub pause: Duration,
    /// UDP goes unanswered (as behind a firewall that drops it): only ICE-TCP can connect.
    pub block_udp: bool,
    /// The TCP candidate refuses connections.
    pub refuse_tcp: bool,
    /// GPT-Live sessions expire this long after creation (else the scenario's `[live]`).
    pub expire_after: Option<Duration>,
}

/// How long `pause-after-turn` pauses unless `pause-ms` says otherwise.
const DEFAULT_PAUSE: Duration = Duration::from_secs(3);

/// A `--fault` spec that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "bad --fault '{spec}': {reason}; use http-status=CODE, retry-after=S, fail-times=N, \
     answer-delay-ms=MS, drop-after-turn=N, pause-after-turn=N, pause-ms=MS, malformed, block-udp, \
     refuse-tcp or expire-after-ms=MS"
)]
pub struct FaultError {
    spec: String,
    reason: String,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            http_status: None,
            retry_after_s: None,
            fail_times: None,
            answer_delay: Duration::ZERO,
            drop_after_turn: None,
            malformed: false,
            pause_after_turn: None,
            pause: DEFAULT_PAUSE,
            block_udp: false,
            refuse_tcp: false,
            expire_after: None,
        }
    }
}

impl Faults {
    /// Parses `--fault` values.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Self, FaultError> {
        let mut f = Faults::default();
        for s in specs {
            f.apply(s.as_ref())?;
        }
        Ok(f)
    }

    fn apply(&mut self, spec: &str) -> Result<(), FaultError> {
        let err = |reason: &str| FaultError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = match spec.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (spec.trim(), None),
        };
        let num = |v: Option<&str>| -> Result<u64, FaultError> {
            v.ok_or_else(|| err("a value is required"))?
                .parse::<u64>()
                .map_err(|_| err("the value must be a non-negative integer"))
        };
        match key {
            "http-status" => {
                let code = num(value)?;
                if !(400..=599).contains(&code) {
                    return Err(err("the status must be 400..=599"));
                }
                self.http_status = Some(code as u16);
            }
            "retry-after" => self.retry_after_s = Some(num(value)?.min(u64::from(u32::MAX)) as u32),
            "fail-times" => self.fail_times = Some(num(value)?.min(u64::from(u32::MAX)) as u32),
            "answer-delay-ms" => self.answer_delay = Duration::from_millis(num(value)?),
            "drop-after-turn" => {
                let n = num(value)?;
                if n == 0 {
                    return Err(err("turns count from 1"));
                }
                self.drop_after_turn = Some(n as usize);
            }
            "pause-after-turn" => {
                let n = num(value)?;
                if n == 0 {
                    return Err(err("turns count from 1"));
                }
                self.pause_after_turn = Some(n as usize);
            }
            "pause-ms" => self.pause = Duration::from_millis(num(value)?),
            "expire-after-ms" => self.expire_after = Some(Duration::from_millis(num(value)?)),
            "malformed" if value.is_none() => self.malformed = true,
            "block-udp" if value.is_none() => self.block_udp = true,
            "refuse-tcp" if value.is_none() => self.refuse_tcp = true,
            _ => return Err(err("unknown fault")),
        }
        Ok(())
    }

    /// The part of the faults the conversation script applies.
    pub fn script(&self) -> ScriptFaults {
        ScriptFaults {
            malformed: self.malformed,
            drop_after_turn: self.drop_after_turn,
            pause_after_turn: self.pause_after_turn.map(|n| (n, self.pause)),
        }
    }
}

/// An HTTP error response in OpenAI's shape: status, extra headers and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
    /// `{"error":{"message","type","param","code"}}`.
    pub body: String,
}

/// The error response OpenAI sends for `status` (401, 429 and 5xx get their real codes).
pub fn error_response(
    status: u16,
    retry_after_s: Option<u32>,
    message: Option<&str>,
) -> ErrorResponse {
    let (kind, code, default_message) = match status {
        401 => (
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        ),
        429 => (
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached for requests. Please try again later.",
        ),
        400..=499 => ("invalid_request_error", None, "The request is invalid."),
        _ => (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
    };
    let mut headers = Vec::new();
    if let Some(s) = retry_after_s {
        headers.push(("retry-after", s.to_string()));
    }
    ErrorResponse {
        status,
        headers,
        body: json!({"error": {
            "message": message.unwrap_or(default_message),
            "type": kind,
            "param": null,
            "code": code
        }})
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let f = Faults::parse(&[
            "http-status=429",
            "retry-after=2",
            "fail-times=1",
            "answer-delay-ms=300",
            "drop-after-turn=1",
            "pause-after-turn=2",
            "pause-ms=4000",
            "malformed",
            "block-udp",
            "refuse-tcp",
            "expire-after-ms=1500",
        ])
        .unwrap();
        assert_eq!(
            f,
            Faults {
                http_status: Some(429),
                retry_after_s: Some(2),
                fail_times: Some(1),
                answer_delay: Duration::from_millis(300),
                drop_after_turn: Some(1),
                malformed: true,
                pause_after_turn: Some(2),
                pause: Duration::from_secs(4),
                block_udp: true,
                refuse_tcp: true,
                expire_after: Some(Duration::from_millis(1500)),
            }
        );
        assert_eq!(
            f.script(),
            ScriptFaults {
                malformed: true,
                drop_after_turn: Some(1),
                pause_after_turn: Some((2, Duration::from_secs(4))),
            }
        );
        assert_eq!(
            Faults::parse(&["pause-after-turn=1"])
                .unwrap()
                .script()
                .pause_after_turn,
            Some((1, Duration::from_secs(3))),
            "3 s unless pause-ms says otherwise"
        );
        assert_eq!(Faults::parse::<&str>(&[]).unwrap(), Faults::default());
    }

    #[test]
    fn bad_specs_say_what_is_accepted() {
        for bad in [
            "http-status=200",
            "http-status",
            "http-status=abc",
            "drop-after-turn=0",
            "pause-after-turn=0",
            "pause-ms=soon",
            "explode",
            "malformed=yes",
            "block-udp=1",
            "answer-delay-ms=-1",
        ] {
            let e = Faults::parse(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("http-status=CODE"), "{e}");
        }
    }

    #[test]
    fn error_bodies_follow_openai() {
        let r = error_response(429, Some(3), None);
        assert_eq!(r.status, 429);
        assert_eq!(r.headers, vec![("retry-after", "3".to_string())]);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let v: serde_json::Value =
            serde_json::from_str(&error_response(401, None, None).body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
        let v: serde_json::Value =
            serde_json::from_str(&error_response(500, None, Some("boom")).body).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["message"], "boom");
        assert!(v["error"]["code"].is_null());
    }
}
