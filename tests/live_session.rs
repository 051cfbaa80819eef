//! Whole GPT-Live sessions through the real daemon and the real broker: the kiosk holds only
//! its broker token, posts its offer to the broker's relay, which creates the session at the
//! emulator (acting as OpenAI, speaking the Live event contract) with the org key. Each way a
//! session ends is driven here, and the money is checked against figures priced by hand.

#[path = "broker_support/mod.rs"]
mod broker_support;
#[path = "central_support/mod.rs"]
mod central_support;
mod support;

use std::time::Duration;

use broker_support::{Broker, issue_token};
use central_support::TestDb;
use jarvis_core::events::{EventPayload, LiveTotals};
use jarvis_core::money::NanoUsd;
use support::rig::{Emulator, Kiosk, write_config_with};

/// gpt-live-1: $0.05 per minute, billed per second (nano-dollars, half-up).
fn voice_nusd(seconds: u64) -> u64 {
    (seconds * 50_000_000 + 30) / 60
}

/// gpt-5-mini per token, nano-dollars: $0.25 in, $0.025 cached, $2.00 out per 1M.
fn delegation_nusd(input: u64, cached: u64, output: u64) -> u64 {
    (input - cached) * 250 + cached * 25 + output * 2_000
}

/// live_kiosk.toml's two delegated responses: the end_session turn and the goodbye.
fn live_kiosk_delegation() -> u64 {
    delegation_nusd(1450, 1280, 42) + delegation_nusd(1600, 1400, 20)
}

/// A kiosk set to GPT-Live behind `broker`'s relay, registered in `db` as `kiosk_id`.
fn live_kiosk(
    db: &TestDb,
    broker: &Broker,
    emulator: &Emulator,
    kiosk_id: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Kiosk {
    Kiosk::start_configured(env, |d| {
        let token = d.join("kiosk-token");
        issue_token(db, kiosk_id, &token);
        write_config_with(
            d,
            kiosk_id,
            &format!(
                "api = \"live\"\nbase_url = \"{}\"\ntoken_credential_file = \"{}\"\n",
                emulator.base_url,
                token.display()
            ),
            &format!(
                "[openai.live]\nrelay_url = \"{}\"\nmodel = \"gpt-live-1\"\n{extra}",
                broker.relay_url()
            ),
        );
    })
}

fn add_kiosk(db: &TestDb, kiosk_id: &str) {
    db.psql(&format!(
        "INSERT INTO kiosks (kiosk_id, gym_id) VALUES ('{kiosk_id}', 'gym-live')"
    ));
}

fn ended_live(events: &[EventPayload]) -> (String, LiveTotals, Option<String>) {
    events
        .iter()
        .find_map(|p| match p {
            EventPayload::SessionEnded {
                reason,
                live: Some(live),
                detail,
                ..
            } => Some((reason.as_str().to_owned(), *live, detail.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Live session ended: {events:#?}"))
}

/// The `session.closed` figure the kiosk recorded, if one arrived.
fn closed_seconds(events: &[EventPayload]) -> Option<u64> {
    events.iter().find_map(|p| match p {
        EventPayload::LiveUsage {
            seconds,
            closed: true,
            ..
        } => Some(*seconds),
        _ => None,
    })
}

/// Waits until the kiosk recorded the end of its session.
fn wait_ended(kiosk: &Kiosk, limit: Duration) -> Vec<EventPayload> {
    support::wait_until("the session's end in the store", limit, || {
        let evs = kiosk.recorded();
        evs.iter()
            .any(|p| matches!(p, EventPayload::SessionEnded { .. }))
            .then_some(evs)
    })
}

/// Non-silent frames (S16 stereo) the virtual speaker played.
fn sound_frames(kiosk: &Kiosk) -> usize {
    std::fs::read(kiosk.speaker_raw())
        .unwrap_or_default()
        .chunks_exact(4)
        .filter(|f| f.iter().any(|b| *b != 0))
        .count()
}

/// The member's goodbye makes the delegation model call `end_session`: the kiosk answers it,
/// closes, and bills exactly what `session.closed` says plus both delegated responses; central
/// derives the same figures into the session's row.
#[test]
fn the_goodbye_tool_ends_a_relayed_session_at_the_hand_priced_cost() {
    let db = TestDb::migrated("live_goodbye");
    let login = db.add_kiosk_id("kiosk-live", "gym-live", &[]);
    let emulator = Emulator::start("live_kiosk.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(
        &db,
        &broker,
        &emulator,
        "kiosk-live",
        "[central]\nbatch_max_ms = 100\n",
        &[
            ("JARVIS_KIOSK__CENTRAL__URL", login.url.as_str()),
            (
                "JARVIS_KIOSK__CENTRAL__PASSWORD_FILE",
                login.password_file.to_str().unwrap(),
            ),
        ],
    );
    let config = std::fs::read_to_string(kiosk.config()).unwrap();
    assert!(
        !config.contains("api_key_file"),
        "no OpenAI key on the kiosk"
    );

    kiosk.scanner.scan("0012345678");
    let evs = wait_ended(&kiosk, Duration::from_secs(40));
    let (reason, live, detail) = ended_live(&evs);
    assert_eq!(reason, "goodbye", "{detail:?}\n{}", kiosk.log());
    let seconds = closed_seconds(&evs).expect("session.closed's final figure was recorded");
    let billed = seconds.max(15);
    assert_eq!(live.billed_seconds, billed);
    assert_eq!(live.voice_nusd, NanoUsd(voice_nusd(billed)));
    assert_eq!(live.delegation_nusd, NanoUsd(live_kiosk_delegation()));
    assert!(!live.estimated && !live.upper_bound, "{live:?}");
    // Several cumulative reports came first; none was added to another.
    let reports = evs
        .iter()
        .filter(|p| matches!(p, EventPayload::LiveUsage { closed: false, .. }))
        .count();
    assert!(reports >= 1, "{evs:#?}");
    // The spend the store sums for the daily budget is the bill, exactly once.
    let store = jarvis_store::Store::open_existing(&kiosk.db()).unwrap();
    assert_eq!(store.spent_since(0).unwrap(), live.total());
    // JARVIS was heard on the speaker: greeting, two replies and the goodbye (1.7 s of tone).
    assert!(
        sound_frames(&kiosk) >= 48_000,
        "{} frames",
        sound_frames(&kiosk)
    );
    // The broker relayed it under the fleet's policy and audited it.
    assert_eq!(
        db.psql("SELECT action || ':' || outcome FROM broker_audit ORDER BY audit_id"),
        "relay:ok"
    );
    // Central: the same row, the seed's token columns zero, the bill in the Live columns.
    let row = support::wait_until(
        "the session's row in central",
        Duration::from_secs(30),
        || {
            let row = db.psql(
                "SELECT api, end_reason, billed_seconds, duration_cost_usd::text, \
                    delegation_cost_usd::text, total_cost_usd::text, \
                    (input_audio_tokens_cost_usd + output_audio_tokens_cost_usd \
                     + input_text_tokens_cost_usd + output_text_tokens_cost_usd)::text, \
                    cost_is_estimated \
             FROM openai_realtime_sessions WHERE end_reason IS NOT NULL",
            );
            (!row.is_empty()).then_some(row)
        },
    );
    assert_eq!(
        row,
        format!(
            "live|goodbye|{billed}|{}|{}|{}|0.000000000|f",
            live.voice_nusd.to_decimal_string(),
            live.delegation_nusd.to_decimal_string(),
            live.total().to_decimal_string()
        )
    );
    let log = kiosk.stop();
    assert!(log.contains("\"backend\":\"live\""), "{log}");
    assert!(log.contains("\"billed_seconds\""), "{log}");
}

/// The model never calls the tool; the member's "au revoir" in the input transcript ends the
/// session once JARVIS has answered.
#[test]
fn the_goodbye_phrase_ends_a_live_session_after_jarvis_answers() {
    let db = TestDb::migrated("live_phrase");
    add_kiosk(&db, "kiosk-phrase");
    let emulator = Emulator::start("live_phrase.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(&db, &broker, &emulator, "kiosk-phrase", "", &[]);
    kiosk.scanner.scan("0012345678");
    let evs = wait_ended(&kiosk, Duration::from_secs(40));
    let (reason, live, _) = ended_live(&evs);
    assert_eq!(reason, "goodbye_phrase", "{}", kiosk.log());
    assert!(closed_seconds(&evs).is_some(), "closed, not dropped");
    // A short session still pays the 15 s initialisation charge.
    assert_eq!(
        (live.billed_seconds, live.voice_nusd),
        (15, NanoUsd(12_500_000))
    );
    // The answer was spoken before the close: 0.3 s greeting + 0.5 s reply.
    assert!(sound_frames(&kiosk) >= 30_000, "{}", sound_frames(&kiosk));
}

/// The member stays silent: the idle timeout closes the session, with no goodbye.
#[test]
fn idle_ends_a_live_session_and_status_shows_the_backend_and_seconds() {
    let db = TestDb::migrated("live_idle");
    add_kiosk(&db, "kiosk-idle");
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let port = support::net::free_port();
    let listen = format!("127.0.0.1:{port}");
    let kiosk = live_kiosk(
        &db,
        &broker,
        &emulator,
        "kiosk-idle",
        "[session]\nidle_timeout_s = 6\n",
        &[("JARVIS_KIOSK__HEALTH__LISTEN", listen.as_str())],
    );
    kiosk.scanner.scan("0012345678");
    // While it runs, support sees the backend and the seconds billed so far.
    let status = support::wait_until("a live session in status", Duration::from_secs(20), || {
        let s = kiosk.status()?;
        let seconds = s["current_session"]["billed_seconds"].as_u64()?;
        (seconds >= 15).then_some(s)
    });
    assert_eq!(status["health"]["gauges"]["openai_api"], "live", "{status}");
    let out = kiosk.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("s billed)"), "{text}");
    let (_, metrics) = support::net::http_get(port, "/metrics").unwrap();
    assert!(
        metrics.contains(r#"jarvis_kiosk_openai_api_info{api="live"} 1"#),
        "{metrics}"
    );
    let billed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("jarvis_kiosk_session_billed_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(billed >= 15.0, "{metrics}");
    let evs = wait_ended(&kiosk, Duration::from_secs(30));
    let (reason, live, _) = ended_live(&evs);
    assert_eq!(reason, "idle_timeout");
    let seconds = closed_seconds(&evs).expect("closed after session.close");
    assert_eq!(live.voice_nusd, NanoUsd(voice_nusd(seconds.max(15))));
}

/// No usage report arrives before the limit (OpenAI reports about once a minute): the
/// kiosk's own estimate reaches `session.max_cost_usd` and JARVIS says goodbye on time.
#[test]
fn the_estimate_stops_a_live_session_at_max_cost() {
    let db = TestDb::migrated("live_max_cost");
    add_kiosk(&db, "kiosk-cost");
    // usage_interval_ms 60 s: no report during the session.
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    // $0.0135 at $0.05/min: 16.2 s, so the limit falls at the 17th second.
    let kiosk = live_kiosk(
        &db,
        &broker,
        &emulator,
        "kiosk-cost",
        "[session]\nmax_cost_usd = 0.0135\nidle_timeout_s = 120\n",
        &[],
    );
    kiosk.scanner.scan("0012345678");
    let evs = wait_ended(&kiosk, Duration::from_secs(60));
    let (reason, live, _) = ended_live(&evs);
    assert_eq!(reason, "max_cost", "{}", kiosk.log());
    assert!(
        evs.iter()
            .all(|p| !matches!(p, EventPayload::LiveUsage { closed: false, .. })),
        "the estimate, not a report, stopped it"
    );
    let seconds = closed_seconds(&evs).expect("closed after the goodbye");
    assert!(seconds >= 17, "{seconds} s");
    assert_eq!(live.voice_nusd, NanoUsd(voice_nusd(seconds)));
}

/// The connection drops after the first reply: the session ends `connection_lost` on the
/// kiosk's estimate, marked as such.
#[test]
fn a_dropped_live_connection_ends_on_the_estimate() {
    let db = TestDb::migrated("live_drop");
    add_kiosk(&db, "kiosk-drop");
    let emulator = Emulator::start("live_kiosk.toml", &["drop-after-turn=1"]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(
        &db,
        &broker,
        &emulator,
        "kiosk-drop",
        "",
        &[("JARVIS_KIOSK__OPENAI__ICE_DISCONNECT_GRACE_S", "2")],
    );
    kiosk.scanner.scan("0012345678");
    let evs = wait_ended(&kiosk, Duration::from_secs(40));
    let (reason, live, _) = ended_live(&evs);
    assert_eq!(reason, "connection_lost", "{}", kiosk.log());
    assert!(live.estimated, "{live:?}");
    assert_eq!(closed_seconds(&evs), None);
    assert_eq!(live.voice_nusd, NanoUsd(voice_nusd(live.billed_seconds)));
    assert!(live.billed_seconds >= 15);
}

/// OpenAI answers the relayed create with 429: the session ends `connect_failed` naming it,
/// and the breaker opens (the next scan is refused without asking anyone).
#[test]
fn openais_429_on_create_ends_the_session_and_opens_the_breaker() {
    let db = TestDb::migrated("live_429");
    add_kiosk(&db, "kiosk-429");
    let emulator = Emulator::start("live_kiosk.toml", &["http-status=429", "retry-after=600"]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(
        &db,
        &broker,
        &emulator,
        "kiosk-429",
        "[session]\ncooldown_s = 1\n",
        &[("JARVIS_KIOSK__OPENAI__BREAKER_FAILURES", "1")],
    );
    kiosk.scanner.scan("0012345678");
    let evs = wait_ended(&kiosk, Duration::from_secs(20));
    let (reason, live, detail) = ended_live(&evs);
    assert_eq!(reason, "connect_failed");
    assert!(detail.unwrap_or_default().contains("429"), "{evs:#?}");
    assert_eq!(live, LiveTotals::default(), "never created: nothing billed");
    support::wait_until("lifecycle degraded", Duration::from_secs(10), || {
        (kiosk.status()?["health"]["lifecycle"] == "degraded").then_some(())
    });
    kiosk.scanner.scan("0099999999");
    support::wait_until("a refusal", Duration::from_secs(10), || {
        (!kiosk.refusals().is_empty()).then_some(())
    });
    assert_eq!(kiosk.refusals(), ["breaker_open"]);
}

/// The fleet disabled the kiosk: the relay refuses, the member hears "unavailable", the
/// breaker stays closed (the broker works) and OpenAI is never asked.
#[test]
fn a_disabled_kiosk_is_refused_by_the_relay() {
    let db = TestDb::migrated("live_disabled");
    add_kiosk(&db, "kiosk-off");
    let emulator = Emulator::start("live_kiosk.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(&db, &broker, &emulator, "kiosk-off", "", &[]);
    db.psql("UPDATE kiosks SET disabled_at = now() WHERE kiosk_id = 'kiosk-off'");
    kiosk.scanner.scan("0012345678");
    support::wait_until("a refusal", Duration::from_secs(20), || {
        (!kiosk.refusals().is_empty()).then_some(())
    });
    assert_eq!(kiosk.refusals(), ["broker_kiosk_disabled"]);
    let status = kiosk.status().unwrap();
    assert_eq!(
        status["health"]["gauges"]["breaker"]["state"], "closed",
        "{status}"
    );
    assert_eq!(emulator.calls().len(), 0);
}

/// Voiced 20 ms frames (RMS above -40 dBFS) of mono samples.
fn voiced_frames(mono: &[i16]) -> usize {
    mono.chunks(960)
        .filter(|c| {
            let sum: f64 = c.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            (sum / c.len() as f64).sqrt() / 32768.0 > 0.01
        })
        .count()
}

/// The model only answers what it hears: the member's two utterances, through the kiosk's
/// capture, echo control, Opus and RTP, start both turns at the emulator's VAD, and the peer's
/// record holds them, as loud as said.
#[test]
fn the_member_is_heard_by_a_live_peer_that_streams_continuously() {
    let db = TestDb::migrated("live_vad");
    add_kiosk(&db, "kiosk-vad");
    let emulator = Emulator::start("live_vad.toml", &[]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(&db, &broker, &emulator, "kiosk-vad", "", &[]);
    kiosk.scanner.scan("0012345678");
    // The chime (0.32 s) and the greeting (0.4 s) played: the member answers.
    support::wait_until(
        "the greeting on the speaker",
        Duration::from_secs(20),
        || (sound_frames(&kiosk) >= 34_000).then_some(()),
    );
    kiosk.mic().say(&support::voice::utterance(1200));
    // JARVIS's first reply (0.6 s) played: the member says they are done.
    support::wait_until(
        "the first reply on the speaker",
        Duration::from_secs(20),
        || (sound_frames(&kiosk) >= 62_000).then_some(()),
    );
    kiosk.mic().say(&support::voice::utterance(1200));
    let evs = wait_ended(&kiosk, Duration::from_secs(40));
    let (reason, live, _) = ended_live(&evs);
    assert_eq!(reason, "goodbye", "{}", kiosk.log());
    assert_eq!(live.delegation_nusd, NanoUsd(live_kiosk_delegation()));
    let call = &emulator.calls()[0];
    let voiced = voiced_frames(&call.member_audio);
    // Two utterances of 1.2 s in 3 Hz syllables: well over a second of voiced frames.
    assert!(voiced >= 50, "{voiced} voiced frames heard by the peer");
}

/// OpenAI ends the session itself at `expires_at` (`session.closed`, reason `expired`): the
/// kiosk ends it `max_duration` with the server's final figure.
#[test]
fn the_servers_expiry_ends_a_live_session_with_its_final_figure() {
    let db = TestDb::migrated("live_expiry");
    add_kiosk(&db, "kiosk-expiry");
    let emulator = Emulator::start("live_until_idle.toml", &["expire-after-ms=4000"]);
    let broker = Broker::start(&db, &emulator.base_url, "127.0.0.1:0");
    let kiosk = live_kiosk(
        &db,
        &broker,
        &emulator,
        "kiosk-expiry",
        "[session]\nidle_timeout_s = 120\n",
        &[],
    );
    kiosk.scanner.scan("0012345678");
    let evs = wait_ended(&kiosk, Duration::from_secs(30));
    let (reason, live, detail) = ended_live(&evs);
    assert_eq!(reason, "max_duration", "{}", kiosk.log());
    assert_eq!(detail.as_deref(), Some("session.closed: expired"));
    assert!(closed_seconds(&evs).is_some());
    assert!(!live.estimated, "{live:?}");
}
