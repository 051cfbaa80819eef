//! Local per-session roll-up (tokens, costs, end reason), kept in the same transaction as the
//! events it sums so `status` ("recent sessions with their costs") never disagrees with the
//! outbox. Central keeps its own derived table; this one only serves the kiosk.
//!
//! A GPT-Live session's voice figures are cumulative: the row keeps one, chosen as central
//! does (a `session.closed` figure, else the end's, else the largest report), and adds up its
//! delegated responses.

use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Store;
use super::error::{StoreError, to_i64, to_u64};
use jarvis_config::VoiceApi;
use jarvis_core::events::{
    CostBreakdown, EndReason, EventPayload, KioskEvent, LiveTotals, TokenCounts,
};
use jarvis_core::money::NanoUsd;

/// One session as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub session_id: Uuid,
    /// `None` when the start event is missing (e.g. recorded before a store recovery).
    pub started_at_ms: Option<i64>,
    pub member_id: Option<String>,
    pub membership: Option<String>,
    pub model: Option<String>,
    /// Badge scan to data channel open.
    pub connect_ms: Option<u64>,
    /// `None` while the session is live (or if it never ended cleanly).
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub duration_ms: Option<u64>,
    /// Responses metered so far.
    pub responses: u64,
    pub tokens: TokenCounts,
    /// Realtime token costs (zero for GPT-Live).
    pub cost: CostBreakdown,
    /// Which voice API served the session.
    pub backend: VoiceApi,
    /// GPT-Live's voice time and costs; `None` for Realtime.
    pub live: Option<LiveSummary>,
    /// Everything the session cost: `cost.total()` plus GPT-Live voice and delegation.
    pub total_nusd: NanoUsd,
}

/// A GPT-Live session's figures as recorded so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSummary {
    /// Voice seconds priced by the figure kept (0 before any figure).
    pub billed_seconds: u64,
    /// The voice figure kept: `session.closed`'s, else the end's, else the largest report.
    pub voice_nusd: NanoUsd,
    /// The delegated responses, summed.
    pub delegation_nusd: NanoUsd,
    pub delegations: u64,
    /// Standby time may have been priced at the active rate: the bill is at most this.
    pub upper_bound: bool,
    /// The figure is the kiosk's elapsed-time estimate from the end (no `session.closed`).
    pub estimated: bool,
    /// The figure is `session.closed`'s: final.
    pub closed: bool,
}

impl LiveSummary {
    pub fn total(&self) -> NanoUsd {
        self.voice_nusd + self.delegation_nusd
    }
}

/// Rank of a GPT-Live voice figure: the larger rank wins whatever the value.
const RANK_REPORT: i64 = 0;
const RANK_END: i64 = 1;
const RANK_CLOSED: i64 = 2;

/// Folds one event into its session's row. Events without a session id change nothing.
pub(crate) fn apply(tx: &Connection, ev: &KioskEvent) -> Result<(), StoreError> {
    let Some(session_id) = ev.session_id else {
        return Ok(());
    };
    if matches!(
        ev.payload,
        EventPayload::ScanRefused { .. }
            | EventPayload::Alert { .. }
            | EventPayload::Heartbeat { .. }
    ) {
        return Ok(());
    }
    let sid = session_id.to_string();
    let at = ev.occurred_at_ms;
    tx.prepare_cached(
        "INSERT INTO sessions (session_id, first_event_at_ms) VALUES (?1, ?2)
         ON CONFLICT(session_id) DO UPDATE
         SET first_event_at_ms = min(first_event_at_ms, excluded.first_event_at_ms)",
    )?
    .execute(params![sid, at])?;
    match &ev.payload {
        EventPayload::SessionStarted {
            member_id,
            membership,
            model,
            ..
        } => {
            let membership = serde_json::to_value(membership)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            tx.prepare_cached(
                "UPDATE sessions SET started_at_ms = ?2, member_id = ?3, membership = ?4,
                                     model = ?5
                 WHERE session_id = ?1",
            )?
            .execute(params![sid, at, member_id, membership, model])?;
            if model.starts_with("gpt-live") {
                mark_live(tx, &sid)?;
            }
        }
        EventPayload::SessionConnected { connect_ms } => {
            tx.prepare_cached("UPDATE sessions SET connect_ms = ?2 WHERE session_id = ?1")?
                .execute(params![sid, to_i64("connect_ms", *connect_ms)?])?;
        }
        EventPayload::ResponseUsage {
            model,
            tokens,
            cost,
            ..
        } => {
            add_usage(tx, &sid, 1, tokens, cost)?;
            tx.prepare_cached(
                "UPDATE sessions SET model = coalesce(model, ?2) WHERE session_id = ?1",
            )?
            .execute(params![sid, model])?;
        }
        EventPayload::TranscriptionUsage { cost, .. } => {
            add_usage(tx, &sid, 0, &TokenCounts::default(), cost)?;
        }
        EventPayload::LiveUsage {
            model,
            billed_seconds,
            voice_nusd,
            upper_bound,
            closed,
            ..
        } => {
            mark_live(tx, &sid)?;
            tx.prepare_cached(
                "UPDATE sessions SET model = coalesce(model, ?2) WHERE session_id = ?1",
            )?
            .execute(params![sid, model])?;
            let rank = if *closed { RANK_CLOSED } else { RANK_REPORT };
            keep_voice_figure(
                tx,
                &sid,
                rank,
                *voice_nusd,
                *billed_seconds,
                *upper_bound,
                false,
            )?;
        }
        EventPayload::DelegationUsage { cost_nusd, .. } => {
            mark_live(tx, &sid)?;
            tx.prepare_cached(
                "UPDATE sessions SET delegation_nusd = delegation_nusd + ?2,
                                     delegations = delegations + 1
                 WHERE session_id = ?1",
            )?
            .execute(params![sid, to_i64("cost_nusd", cost_nusd.0)?])?;
        }
        EventPayload::SessionEnded {
            reason,
            duration_ms,
            live,
            ..
        } => {
            if let Some(l) = live {
                mark_live(tx, &sid)?;
                keep_voice_figure(
                    tx,
                    &sid,
                    RANK_END,
                    l.voice_nusd,
                    l.billed_seconds,
                    l.upper_bound,
                    l.estimated,
                )?;
            }
            tx.prepare_cached(
                "UPDATE sessions SET ended_at_ms = ?2, end_reason = ?3, duration_ms = ?4
                 WHERE session_id = ?1",
            )?
            .execute(params![
                sid,
                at,
                reason.as_str(),
                to_i64("duration_ms", *duration_ms)?
            ])?;
        }
        EventPayload::ScanRefused { .. }
        | EventPayload::Alert { .. }
        | EventPayload::Heartbeat { .. } => {}
    }
    Ok(())
}

fn mark_live(tx: &Connection, sid: &str) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE sessions SET backend = 'live' WHERE session_id = ?1")?
        .execute([sid])?;
    Ok(())
}

/// Keeps this voice figure if it is larger by (rank, voice, billed seconds, upper bound,
/// estimated) than the one kept: the same figure whatever order the events came in.
fn keep_voice_figure(
    tx: &Connection,
    sid: &str,
    rank: i64,
    voice: NanoUsd,
    billed_seconds: u64,
    upper_bound: bool,
    estimated: bool,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE sessions SET live_voice_rank = ?2, live_voice_nusd = ?3, billed_seconds = ?4,
                             live_upper_bound = ?5, live_estimated = ?6
         WHERE session_id = ?1
           AND (live_voice_rank IS NULL
                OR (?2, ?3, ?4, ?5, ?6) > (live_voice_rank, live_voice_nusd, billed_seconds,
                                           live_upper_bound, live_estimated))",
    )?
    .execute(params![
        sid,
        rank,
        to_i64("voice_nusd", voice.0)?,
        to_i64("billed_seconds", billed_seconds)?,
        upper_bound,
        estimated
    ])?;
    Ok(())
}

fn add_usage(
    tx: &Connection,
    sid: &str,
    responses: i64,
    t: &TokenCounts,
    c: &CostBreakdown,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE sessions SET
            responses = responses + ?2,
            input_text_tokens = input_text_tokens + ?3,
            input_audio_tokens = input_audio_tokens + ?4,
            input_image_tokens = input_image_tokens + ?5,
            cached_text_tokens = cached_text_tokens + ?6,
            cached_audio_tokens = cached_audio_tokens + ?7,
            cached_image_tokens = cached_image_tokens + ?8,
            output_text_tokens = output_text_tokens + ?9,
            output_audio_tokens = output_audio_tokens + ?10,
            input_audio_nusd = input_audio_nusd + ?11,
            output_audio_nusd = output_audio_nusd + ?12,
            input_text_nusd = input_text_nusd + ?13,
            output_text_nusd = output_text_nusd + ?14,
            transcription_nusd = transcription_nusd + ?15
         WHERE session_id = ?1",
    )?
    .execute(params![
        sid,
        responses,
        to_i64("tokens.input_text", t.input_text)?,
        to_i64("tokens.input_audio", t.input_audio)?,
        to_i64("tokens.input_image", t.input_image)?,
        to_i64("tokens.cached_text", t.cached_text)?,
        to_i64("tokens.cached_audio", t.cached_audio)?,
        to_i64("tokens.cached_image", t.cached_image)?,
        to_i64("tokens.output_text", t.output_text)?,
        to_i64("tokens.output_audio", t.output_audio)?,
        to_i64("cost.input_audio_nusd", c.input_audio_nusd.0)?,
        to_i64("cost.output_audio_nusd", c.output_audio_nusd.0)?,
        to_i64("cost.input_text_nusd", c.input_text_nusd.0)?,
        to_i64("cost.output_text_nusd", c.output_text_nusd.0)?,
        to_i64("cost.transcription_nusd", c.transcription_nusd.0)?,
    ])?;
    Ok(())
}

/// The columns [`summary_row`] reads, in its order.
const SUMMARY_COLUMNS: &str = "session_id, started_at_ms, member_id, membership, model, \
    connect_ms, ended_at_ms, end_reason, duration_ms, responses, \
    input_text_tokens, input_audio_tokens, input_image_tokens, \
    cached_text_tokens, cached_audio_tokens, cached_image_tokens, \
    output_text_tokens, output_audio_tokens, \
    input_audio_nusd, output_audio_nusd, input_text_nusd, output_text_nusd, transcription_nusd, \
    backend, live_voice_rank, live_voice_nusd, billed_seconds, live_upper_bound, live_estimated, \
    delegation_nusd, delegations";

/// The first column after [`SUMMARY_COLUMNS`] in a query that adds its own.
const AFTER_SUMMARY: usize = 31;

fn parse_session_id(sid: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(sid).map_err(|e| StoreError::Decode {
        seq: 0,
        reason: format!("sessions row `{sid}` has a bad session id: {e}"),
    })
}

fn summary_row(r: &Row<'_>) -> rusqlite::Result<(String, SessionSummary)> {
    let u = |i: usize| -> rusqlite::Result<u64> { Ok(to_u64(r.get(i)?)) };
    let opt_u =
        |i: usize| -> rusqlite::Result<Option<u64>> { Ok(r.get::<_, Option<i64>>(i)?.map(to_u64)) };
    let cost = CostBreakdown {
        input_audio_nusd: NanoUsd(u(18)?),
        output_audio_nusd: NanoUsd(u(19)?),
        input_text_nusd: NanoUsd(u(20)?),
        output_text_nusd: NanoUsd(u(21)?),
        transcription_nusd: NanoUsd(u(22)?),
    };
    let backend = match r.get::<_, String>(23)?.as_str() {
        "live" => VoiceApi::Live,
        _ => VoiceApi::Realtime,
    };
    let rank: Option<i64> = r.get(24)?;
    let live = (backend == VoiceApi::Live).then(|| -> rusqlite::Result<LiveSummary> {
        Ok(LiveSummary {
            voice_nusd: NanoUsd(u(25)?),
            billed_seconds: u(26)?,
            upper_bound: r.get(27)?,
            estimated: r.get(28)?,
            delegation_nusd: NanoUsd(u(29)?),
            delegations: u(30)?,
            closed: rank == Some(RANK_CLOSED),
        })
    });
    let live = live.transpose()?;
    let total_nusd = cost.total() + live.map_or(NanoUsd::ZERO, |l| l.total());
    Ok((
        r.get(0)?,
        SessionSummary {
            session_id: Uuid::nil(),
            started_at_ms: r.get(1)?,
            member_id: r.get(2)?,
            membership: r.get(3)?,
            model: r.get(4)?,
            connect_ms: opt_u(5)?,
            ended_at_ms: r.get(6)?,
            end_reason: r.get(7)?,
            duration_ms: opt_u(8)?,
            responses: u(9)?,
            tokens: TokenCounts {
                input_text: u(10)?,
                input_audio: u(11)?,
                input_image: u(12)?,
                cached_text: u(13)?,
                cached_audio: u(14)?,
                cached_image: u(15)?,
                output_text: u(16)?,
                output_audio: u(17)?,
            },
            cost,
            backend,
            live,
            total_nusd,
        },
    ))
}

impl Store {
    /// The `n` most recent sessions (by first event), newest first, with tokens and costs.
    pub fn recent_sessions(&self, n: usize) -> Result<Vec<SessionSummary>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}
             FROM sessions ORDER BY first_event_at_ms DESC, session_id DESC LIMIT ?1"
        ))?;
        let rows = stmt
            .query_map([to_i64("n", n as u64)?], summary_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(sid, mut s)| {
                s.session_id = parse_session_id(&sid)?;
                Ok(s)
            })
            .collect()
    }

    /// Ends every session that started and never ended: the process died during it (kill -9,
    /// power cut, a panic). Each gets a `session_ended` with reason `crashed`, the tokens and
    /// cost recorded so far, and a duration up to its last recorded event (the end is stamped
    /// at that event, the last moment the kiosk knew it was live). A GPT-Live session's end
    /// carries its figures so far, marked estimated unless `session.closed`'s had arrived, and
    /// charges nothing more (each figure was charged as recorded). Returns the events appended,
    /// in one transaction. Call at start-up, before any session can be live; central derives
    /// the row from the event like any other end.
    pub fn end_crashed_sessions(&mut self) -> Result<Vec<KioskEvent>, StoreError> {
        let open: Vec<(SessionSummary, i64)> = {
            let mut stmt = self.conn.prepare(&format!(
                "SELECT {SUMMARY_COLUMNS},
                        coalesce((SELECT max(o.occurred_at_ms) FROM outbox o
                                   WHERE o.session_id = sessions.session_id),
                                 first_event_at_ms)
                 FROM sessions
                 WHERE started_at_ms IS NOT NULL AND ended_at_ms IS NULL
                 ORDER BY first_event_at_ms, session_id"
            ))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((summary_row(r)?, r.get::<_, i64>(AFTER_SUMMARY)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|((sid, mut summary), last_at)| {
                    summary.session_id = parse_session_id(&sid)?;
                    Ok((summary, last_at))
                })
                .collect::<Result<_, StoreError>>()?
        };
        let ends: Vec<KioskEvent> = open
            .into_iter()
            .map(|(s, last_at)| {
                let started = s.started_at_ms.unwrap_or(last_at);
                let ended_at = last_at.max(started);
                KioskEvent::new(
                    Some(s.session_id),
                    ended_at,
                    EventPayload::SessionEnded {
                        reason: EndReason::Crashed,
                        duration_ms: to_u64(ended_at - started),
                        tokens: s.tokens,
                        cost: s.cost,
                        detail: None,
                        live: s.live.map(|l| LiveTotals {
                            billed_seconds: l.billed_seconds,
                            voice_nusd: l.voice_nusd,
                            delegation_nusd: l.delegation_nusd,
                            upper_bound: l.upper_bound,
                            estimated: !l.closed,
                            charged_nusd: NanoUsd::ZERO,
                        }),
                    },
                )
            })
            .collect();
        if !ends.is_empty() {
            self.append_batch(&ends)?;
        }
        Ok(ends)
    }

    /// Everything metered since `since_ms`, for `session.daily_budget_usd`: responses,
    /// transcriptions, delegated responses, and each GPT-Live figure's increment over the
    /// session's previous one (`charged_nusd`). Sums the outbox, so it holds across restarts.
    pub fn spent_since(&self, since_ms: i64) -> Result<NanoUsd, StoreError> {
        let total: i64 = self.conn.query_row(
            "SELECT coalesce(sum(cost_nusd), 0) FROM outbox
             WHERE cost_nusd > 0 AND occurred_at_ms >= ?1",
            [since_ms],
            |r| r.get(0),
        )?;
        Ok(NanoUsd(to_u64(total)))
    }
}
