//! What happened in each emulated call, for tests: a timeline of turn boundaries, barge-ins and
//! reply audio, and the member audio the emulator decoded (so a test measures what the server
//! heard, not only which events it sent).

use std::time::{Duration, Instant};

use serde_json::Value;

/// One emulated call as the emulator saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRecord {
    /// The call id (`rtc_…`), as in the `Location` header.
    pub call_id: String,
    /// When the SDP answer was made: the origin of the timeline's times, for tests that line
    /// them up with what they observe themselves (set once the call is answered).
    pub answered_at: Option<Instant>,
    /// What happened, in order; times count from the SDP answer.
    pub timeline: Vec<TimelineEntry>,
    /// Every reply whose audio started, in order.
    pub replies: Vec<ReplyAudio>,
    /// The kiosk's audio decoded to 48 kHz mono, every frame received in order.
    pub member_audio: Vec<i16>,
    /// When the first member frame arrived (the start of `member_audio`).
    pub member_audio_start: Option<Duration>,
}

/// A moment of the call.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    /// Time since the call was answered.
    pub at: Duration,
    /// What happened.
    pub what: Happening,
}

/// The kinds of moments recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// The VAD heard the member start speaking.
    SpeechStarted {
        /// Reply audio was being sent at that moment.
        audio_playing: bool,
    },
    /// The VAD heard the member stop.
    SpeechStopped,
    /// The member's speech cut this response's audio.
    BargeIn {
        /// The response interrupted.
        response_id: String,
        /// Its frames sent before the cut.
        frames_sent: usize,
    },
    /// A server event was sent (type, and the response it concerns with its status when any).
    Sent {
        /// The event `type`.
        kind: String,
        /// `response_id`, or `response.id` for `response.*` events.
        response_id: Option<String>,
        /// `response.status` of a `response.done`.
        status: Option<String>,
    },
}

/// The audio of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAudio {
    /// The response it belongs to.
    pub response_id: String,
    /// 20 ms frames the reply has.
    pub frames_total: usize,
    /// Frames actually sent.
    pub frames_sent: usize,
    /// Cut by a barge-in or a client clear.
    pub interrupted: bool,
}

impl CallRecord {
    /// The entries matching `f`, with their times.
    pub fn find(&self, f: impl Fn(&Happening) -> bool) -> Vec<&TimelineEntry> {
        self.timeline.iter().filter(|e| f(&e.what)).collect()
    }

    /// The barge-ins, in order.
    pub fn barge_ins(&self) -> Vec<&TimelineEntry> {
        self.find(|h| matches!(h, Happening::BargeIn { .. }))
    }

    /// The `response.done` statuses sent, in order.
    pub fn response_statuses(&self) -> Vec<String> {
        self.timeline
            .iter()
            .filter_map(|e| match &e.what {
                Happening::Sent {
                    kind,
                    status: Some(s),
                    ..
                } if kind == "response.done" => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The timeline entry for a sent server event.
pub fn sent(event: &Value) -> Happening {
    let response_id = event
        .get("response_id")
        .or_else(|| event.get("response").and_then(|r| r.get("id")))
        .and_then(Value::as_str)
        .map(str::to_string);
    let status = event
        .get("response")
        .and_then(|r| r.get("status"))
        .and_then(Value::as_str)
        .filter(|_| event["type"] == "response.done")
        .map(str::to_string);
    Happening::Sent {
        kind: event["type"].as_str().unwrap_or_default().to_string(),
        response_id,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sent_events_name_their_response_and_status() {
        let done =
            json!({"type": "response.done", "response": {"id": "resp_1", "status": "cancelled"}});
        assert_eq!(
            sent(&done),
            Happening::Sent {
                kind: "response.done".into(),
                response_id: Some("resp_1".into()),
                status: Some("cancelled".into()),
            }
        );
        let cleared = json!({"type": "output_audio_buffer.cleared", "response_id": "resp_2"});
        assert_eq!(
            sent(&cleared),
            Happening::Sent {
                kind: "output_audio_buffer.cleared".into(),
                response_id: Some("resp_2".into()),
                status: None,
            }
        );
        let created = json!({"type": "response.created", "response": {"id": "resp_3", "status": "in_progress"}});
        let mut rec = CallRecord::default();
        rec.timeline.push(TimelineEntry {
            at: Duration::ZERO,
            what: sent(&created),
        });
        rec.timeline.push(TimelineEntry {
            at: Duration::from_millis(5),
            what: sent(&done),
        });
        assert_eq!(rec.response_statuses(), ["cancelled"]);
        assert!(rec.barge_ins().is_empty());
    }
}
