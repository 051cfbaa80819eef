//! What the broker decides, without I/O: whether a kiosk may start a session now (from its
//! standing, read from central in one query), why not, and the session the fleet imposes.
//!
//! Refusals are OpenAI-shaped errors (`{"error":{"code","message"}}`) with the status an
//! unmodified kiosk already handles right: 401/403 are permanent (its breaker stays open and
//! `status` names the credential), 429 carries `Retry-After` (its breaker waits that long).
//! The `code` lets a kiosk say the precise reason (`kiosk_budget_exhausted` → the budget prompt).

use serde_json::{Value, json};

use crate::config::SessionPolicy;
use jarvis_core::money::NanoUsd;

/// Length of the rate limit's rolling window.
pub const RATE_WINDOW_S: u64 = 60;

/// A kiosk's standing, as central sees it when it asks for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub kiosk_id: String,
    pub gym_id: String,
    pub disabled: bool,
    /// The token was rotated and its overlap window is over.
    pub token_expired: bool,
    /// Spend of today's sessions (budget day), as the kiosks synced it.
    pub kiosk_spend: NanoUsd,
    pub gym_spend: NanoUsd,
    /// Keys minted for this kiosk within the last [`RATE_WINDOW_S`].
    pub recent_mints: u32,
    /// Age of the oldest of those, in milliseconds.
    pub oldest_recent_ms: u64,
    /// Seconds until the next budget day starts.
    pub day_ends_in_s: u64,
}

/// The limits a standing is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitValues {
    pub kiosk_daily: NanoUsd,
    pub gym_daily: NanoUsd,
    pub sessions_per_minute: u32,
}

/// Why a kiosk gets no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No or unknown bearer token.
    UnknownToken,
    /// A rotated token past its overlap window.
    TokenExpired,
    Disabled,
    KioskBudget {
        retry_after_s: u64,
    },
    GymBudget {
        retry_after_s: u64,
    },
    RateLimited {
        retry_after_s: u64,
    },
    /// The request body is not what the route takes (a client-secret or Live create request).
    BadRequest(String),
    /// A Live close for a session the broker did not relay for this kiosk.
    UnknownSession,
    /// Central cannot be asked: the broker fails closed.
    CentralUnavailable,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::UnknownToken | Refusal::TokenExpired => 401,
            Refusal::Disabled => 403,
            Refusal::KioskBudget { .. }
            | Refusal::GymBudget { .. }
            | Refusal::RateLimited { .. } => 429,
            Refusal::BadRequest(_) => 400,
            Refusal::UnknownSession => 404,
            Refusal::CentralUnavailable => 503,
        }
    }

    /// The stable `error.code` (also `broker_audit.reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownToken => "kiosk_token_invalid",
            Refusal::TokenExpired => "kiosk_token_expired",
            Refusal::Disabled => "kiosk_disabled",
            Refusal::KioskBudget { .. } => "kiosk_budget_exhausted",
            Refusal::GymBudget { .. } => "gym_budget_exhausted",
            Refusal::RateLimited { .. } => "kiosk_rate_limited",
            Refusal::BadRequest(_) => "invalid_request",
            Refusal::UnknownSession => "live_session_unknown",
            Refusal::CentralUnavailable => "central_unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::UnknownToken => "unknown kiosk token: check openai.token_credential_file \
                 (jarvis-broker kiosk add/rotate prints the token)"
                .into(),
            Refusal::TokenExpired => "this kiosk token was rotated and its overlap window is \
                 over: install the new token in openai.token_credential_file"
                .into(),
            Refusal::Disabled => {
                "this kiosk is disabled in the fleet (jarvis-broker kiosk enable)".into()
            }
            Refusal::KioskBudget { .. } => {
                "this kiosk's daily budget (limits.kiosk_daily_budget_usd) is spent".into()
            }
            Refusal::GymBudget { .. } => {
                "this gym's daily budget (limits.gym_daily_budget_usd) is spent".into()
            }
            Refusal::RateLimited { .. } => {
                "too many sessions from this kiosk (limits.sessions_per_minute)".into()
            }
            Refusal::BadRequest(why) => format!("invalid request: {why}"),
            Refusal::UnknownSession => {
                "no Live session with this id was relayed for this kiosk".into()
            }
            Refusal::CentralUnavailable => {
                "the broker cannot reach the central database; retry later".into()
            }
        }
    }

    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Refusal::KioskBudget { retry_after_s }
            | Refusal::GymBudget { retry_after_s }
            | Refusal::RateLimited { retry_after_s } => Some(*retry_after_s),
            Refusal::CentralUnavailable => Some(5),
            _ => None,
        }
    }

    /// The OpenAI error envelope of this refusal.
    pub fn body(&self) -> Value {
        json!({"error": {"type": "broker_refusal", "code": self.code(), "message": self.message()}})
    }
}

/// May this kiosk start a session now? The order matters: identity, then standing, then
/// money, then rate (a kiosk over budget is told so, not told to retry in a minute).
pub fn decide(standing: Option<&Standing>, limits: &LimitValues) -> Result<(), Refusal> {
    let s = standing.ok_or(Refusal::UnknownToken)?;
    if s.token_expired {
        return Err(Refusal::TokenExpired);
    }
    if s.disabled {
        return Err(Refusal::Disabled);
    }
    let retry_after_s = s.day_ends_in_s.max(1);
    if s.kiosk_spend >= limits.kiosk_daily {
        return Err(Refusal::KioskBudget { retry_after_s });
    }
    if s.gym_spend >= limits.gym_daily {
        return Err(Refusal::GymBudget { retry_after_s });
    }
    if s.recent_mints >= limits.sessions_per_minute {
        let waited_s = s.oldest_recent_ms / 1000;
        return Err(Refusal::RateLimited {
            retry_after_s: RATE_WINDOW_S.saturating_sub(waited_s).max(1),
        });
    }
    Ok(())
}

/// The client-secret request sent upstream: the kiosk's (its instructions carry the member's
/// name and language) with the fleet's model, voice, key lifetime and output cap imposed.
pub fn apply_session_policy(request: &[u8], policy: &SessionPolicy) -> Result<Value, Refusal> {
    let mut body: Value = if request.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(request).map_err(|e| {
            Refusal::BadRequest(format!(
                "invalid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?
    };
    let Some(top) = body.as_object_mut() else {
        return Err(Refusal::BadRequest("expected a JSON object".into()));
    };
    top.insert(
        "expires_after".into(),
        json!({"anchor": "created_at", "seconds": policy.key_ttl_s}),
    );
    let session = top.entry("session").or_insert_with(|| json!({}));
    let Some(session) = session.as_object_mut() else {
        return Err(Refusal::BadRequest("`session` must be an object".into()));
    };
    match session.get("type").and_then(Value::as_str) {
        None | Some("realtime") => {}
        Some(other) => {
            return Err(Refusal::BadRequest(format!(
                "session.type `{other}`: only realtime sessions are brokered"
            )));
        }
    }
    session.insert("type".into(), json!("realtime"));
    session.insert("model".into(), json!(policy.model));
    if let Some(cap) = policy.max_output_tokens {
        session.insert("max_output_tokens".into(), json!(cap));
    }
    let audio = session.entry("audio").or_insert_with(|| json!({}));
    if !audio.is_object() {
        *audio = json!({});
    }
    let output = audio
        .as_object_mut()
        .map(|a| a.entry("output").or_insert_with(|| json!({})));
    if let Some(output) = output {
        if !output.is_object() {
            *output = json!({});
        }
        if let Some(o) = output.as_object_mut() {
            o.insert("voice".into(), json!(policy.voice));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing() -> Standing {
        Standing {
            kiosk_id: "k1".into(),
            gym_id: "g1".into(),
            disabled: false,
            token_expired: false,
            kiosk_spend: NanoUsd(0),
            gym_spend: NanoUsd(0),
            recent_mints: 0,
            oldest_recent_ms: 0,
            day_ends_in_s: 3600,
        }
    }

    const LIMITS: LimitValues = LimitValues {
        kiosk_daily: NanoUsd(1_000),
        gym_daily: NanoUsd(5_000),
        sessions_per_minute: 3,
    };

    #[test]
    fn each_refusal_in_order() {
        assert_eq!(decide(None, &LIMITS), Err(Refusal::UnknownToken));
        assert_eq!(decide(Some(&standing()), &LIMITS), Ok(()));
        let s = Standing {
            token_expired: true,
            disabled: true,
            ..standing()
        };
        assert_eq!(decide(Some(&s), &LIMITS), Err(Refusal::TokenExpired));
        let s = Standing {
            disabled: true,
            kiosk_spend: NanoUsd(1_000),
            ..standing()
        };
        assert_eq!(decide(Some(&s), &LIMITS), Err(Refusal::Disabled));
        let s = Standing {
            kiosk_spend: NanoUsd(1_000),
            recent_mints: 9,
            ..standing()
        };
        assert_eq!(
            decide(Some(&s), &LIMITS),
            Err(Refusal::KioskBudget {
                retry_after_s: 3600
            })
        );
        let s = Standing {
            kiosk_spend: NanoUsd(999),
            gym_spend: NanoUsd(5_000),
            ..standing()
        };
        assert!(matches!(
            decide(Some(&s), &LIMITS),
            Err(Refusal::GymBudget { .. })
        ));
        let s = Standing {
            recent_mints: 3,
            oldest_recent_ms: 42_500,
            ..standing()
        };
        assert_eq!(
            decide(Some(&s), &LIMITS),
            Err(Refusal::RateLimited { retry_after_s: 18 })
        );
        let s = Standing {
            recent_mints: 2,
            ..standing()
        };
        assert_eq!(decide(Some(&s), &LIMITS), Ok(()));
    }

    #[test]
    fn refusals_map_to_what_a_kiosk_handles() {
        assert_eq!(Refusal::UnknownToken.status(), 401);
        assert_eq!(Refusal::Disabled.status(), 403);
        let r = Refusal::RateLimited { retry_after_s: 7 };
        assert_eq!((r.status(), r.retry_after_s()), (429, Some(7)));
        assert_eq!(
            Refusal::KioskBudget { retry_after_s: 1 }.body()["error"]["code"],
            "kiosk_budget_exhausted"
        );
        assert_eq!(
            Refusal::CentralUnavailable.retry_after_s(),
            Some(5),
            "a kiosk backs off while central is down"
        );
    }

    #[test]
    fn the_fleet_policy_wins_and_the_instructions_stay() {
        let policy = SessionPolicy {
            model: "gpt-realtime".into(),
            voice: "cedar".into(),
            key_ttl_s: 60,
            max_output_tokens: Some(800),
        };
        let kiosk = json!({
            "expires_after": {"anchor": "created_at", "seconds": 7200},
            "session": {"type": "realtime", "model": "gpt-4o-realtime-preview",
                        "instructions": "Bonjour Alice", "audio": {"output": {"voice": "alloy", "speed": 1.1}}}
        });
        let out = apply_session_policy(kiosk.to_string().as_bytes(), &policy).unwrap();
        assert_eq!(out["expires_after"]["seconds"], 60);
        assert_eq!(out["session"]["model"], "gpt-realtime");
        assert_eq!(out["session"]["audio"]["output"]["voice"], "cedar");
        assert_eq!(out["session"]["audio"]["output"]["speed"], 1.1);
        assert_eq!(out["session"]["instructions"], "Bonjour Alice");
        assert_eq!(out["session"]["max_output_tokens"], 800);
        let empty = apply_session_policy(b"", &policy).unwrap();
        assert_eq!(empty["session"]["type"], "realtime");
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let policy = SessionPolicy::default();
        for (body, needle) in [
            (&b"{"[..], "invalid JSON"),
            (b"[1]", "JSON object"),
            (br#"{"session": 3}"#, "`session`"),
            (
                br#"{"session": {"type": "transcription"}}"#,
                "transcription",
            ),
        ] {
            match apply_session_policy(body, &policy) {
                Err(Refusal::BadRequest(why)) => assert!(why.contains(needle), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
