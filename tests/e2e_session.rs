//! End to end: a badge on a pty scanner -> the real daemon -> the local Realtime emulator over
//! real WebRTC on loopback -> two turns -> `end_session` -> the session ended in the local store
//! with its cost equal to the scenario's usage priced by the shipped table, exactly.

#[path = "central_support/mod.rs"]
mod central_support;
mod support;

use std::time::{Duration, Instant};

use jarvis_core::money::NanoUsd;
use jarvis_store::{SessionSummary, Store};
use support::rig::{Emulator, Kiosk};

/// CPU the daemon's own threads used over `window`, as a share of one core, leaving out the
/// virtual card's device threads (cpal's ALSA callback threads, `cpal_alsa_in`/`_out`, whose
/// cost on real hardware is the driver's), and the per-thread figures.
fn idle_share(kiosk: &Kiosk, window: Duration) -> (f64, String) {
    let ours = |t: &std::collections::BTreeMap<String, Duration>| -> Duration {
        t.iter()
            .filter(|(name, _)| !name.starts_with("cpal_alsa"))
            .map(|(_, d)| *d)
            .sum()
    };
    let (before, at) = (support::thread_cpu_times(kiosk.pid()), Instant::now());
    // A measurement window, not a synchronisation: nothing happens in it.
    std::thread::sleep(window);
    let after = support::thread_cpu_times(kiosk.pid());
    let elapsed = at.elapsed().as_secs_f64();
    let table = after
        .iter()
        .map(|(name, d)| {
            let was = before.get(name).copied().unwrap_or_default();
            format!(
                "{name}: {:.2} %",
                d.saturating_sub(was).as_secs_f64() / elapsed * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let share = ours(&after).saturating_sub(ours(&before)).as_secs_f64() / elapsed;
    (share, table)
}

/// Idle first (scanner and sound card open, no session: capture only drains the microphone),
/// then the whole session, which proves capture comes back live for it.
#[test]
fn scan_converse_goodbye_and_exact_cost() {
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "");
    let (share, table) = idle_share(&kiosk, Duration::from_secs(3));
    eprintln!(
        "idle daemon without device threads: {:.2} % of a core ({table})",
        share * 100.0
    );
    // A fault detector, not the target (see scripts/bench-idle.sh): a capture chain still
    // encoding, or a loop spinning, costs several times this on a debug build.
    assert!(
        share < 0.03,
        "the idle daemon used {:.1} % of a core ({table})",
        share * 100.0
    );
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(
        s.end_reason.as_deref(),
        Some("goodbye"),
        "{s:?}\n{}",
        kiosk.log()
    );
    assert_eq!(s.membership.as_deref(), Some("guest"));
    assert!(s.connect_ms.is_some(), "{s:?}");

    use support::price::*;
    // kiosk_e2e.toml: the greeting the kiosk asks for, turn 1, turn 2 (says goodbye and calls
    // end_session), and the transcription of turn 1.
    let greeting = 80 * TEXT_IN + 6 * TEXT_OUT + 25 * AUDIO_OUT;
    let turn1 = 100 * TEXT_IN + 20 * AUDIO_IN + 5 * TEXT_OUT + 40 * AUDIO_OUT;
    let turn2 = 50 * TEXT_IN + 100 * CACHED + 30 * AUDIO_IN + 5 * TEXT_OUT + 30 * AUDIO_OUT;
    let asr = 20 * ASR_AUDIO_IN + 4 * ASR_TEXT_OUT;
    assert_eq!(s.responses, 3, "{s:?}");
    assert_eq!(s.cost.transcription_nusd, NanoUsd(asr));
    assert_eq!(
        s.cost.model_total(),
        NanoUsd(greeting + turn1 + turn2),
        "{s:?}"
    );
    assert_eq!(s.total_nusd, NanoUsd(greeting + turn1 + turn2 + asr));
    assert_eq!(s.tokens.output_audio, 95);

    let store = Store::open_existing(&kiosk.db()).unwrap();
    let stats = store.stats().unwrap();
    assert!(
        stats.pending >= 5,
        "start, connected, 2 usages, transcription, end: {stats:?}"
    );

    let log = kiosk.stop();
    let session = s.session_id.to_string();
    let ended = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "session ended")
        .unwrap_or_else(|| panic!("no `session ended` line:\n{log}"));
    assert_eq!(ended["span"]["session_id"], session, "{ended}");
    assert_eq!(ended["fields"]["reason"], "goodbye");
}

/// Waits for `n` ended sessions and returns them, newest first.
fn ended_sessions(k: &Kiosk, n: usize, limit: Duration) -> Vec<SessionSummary> {
    ended_sessions_in(k, &k.db(), n, limit)
}

/// [`ended_sessions`] for a store at `db`.
fn ended_sessions_in(
    k: &Kiosk,
    db: &std::path::Path,
    n: usize,
    limit: Duration,
) -> Vec<SessionSummary> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(store) = Store::open_existing(db)
            && let Ok(sessions) = store.recent_sessions(10)
        {
            let ended: Vec<_> = sessions
                .into_iter()
                .filter(|s| s.end_reason.is_some())
                .collect();
            if ended.len() >= n {
                return ended;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{n} sessions did not end within {limit:?}; daemon log:\n{}",
        k.log()
    );
}

fn refusals(k: &Kiosk) -> Vec<String> {
    let mut store = Store::open_existing(&k.db()).unwrap();
    let mut causes = Vec::new();
    for e in store.pending(1000).unwrap() {
        if let jarvis_core::events::EventPayload::ScanRefused { cause } = e.event.payload {
            causes.push(cause);
        }
    }
    causes
}

#[test]
fn http_errors_end_the_attempt_cleanly_and_name_the_status() {
    // 500, 401 and 429 from the Realtime endpoint: the session ends at once with
    // `connect_failed`, costs nothing, and the log line says what OpenAI answered.
    for (fault, detail) in [
        (vec!["http-status=500"], "500"),
        (vec!["http-status=401"], "401"),
        (vec!["http-status=429", "retry-after=30"], "429"),
    ] {
        let emulator = Emulator::start("kiosk_e2e.toml", &fault);
        let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "[session]\ncooldown_s = 1\n");
        kiosk.scanner.scan("0012345678");
        let s = &ended_sessions(&kiosk, 1, Duration::from_secs(20))[0];
        assert_eq!(
            s.end_reason.as_deref(),
            Some("connect_failed"),
            "{fault:?}: {s:?}"
        );
        assert_eq!(s.total_nusd, NanoUsd(0));
        let log = kiosk.stop();
        assert!(
            log.contains(detail),
            "{fault:?}: the log names the status:\n{log}"
        );
    }
}

#[test]
fn a_scan_while_the_breaker_is_open_gets_the_unavailable_prompt() {
    let emulator = Emulator::start("kiosk_e2e.toml", &["http-status=503"]);
    let kiosk = Kiosk::start_with_env(
        &emulator,
        "kiosk-e2e",
        "[session]\ncooldown_s = 1\n",
        &[
            ("JARVIS_KIOSK__OPENAI__BREAKER_FAILURES", "1"),
            ("JARVIS_KIOSK__OPENAI__BREAKER_OPEN_S", "600"),
        ],
    );
    kiosk.scanner.scan("0012345678");
    ended_sessions(&kiosk, 1, Duration::from_secs(20));
    // Past the cooldown, the open breaker keeps the kiosk degraded.
    support::wait_until("lifecycle degraded", Duration::from_secs(10), || {
        (kiosk.status()?["health"]["lifecycle"] == "degraded").then_some(())
    });
    kiosk.scanner.scan("0099999999");
    support::wait_until("a refusal", Duration::from_secs(10), || {
        (!refusals(&kiosk).is_empty()).then_some(())
    });
    assert_eq!(refusals(&kiosk), ["breaker_open"], "{}", kiosk.log());
    assert_eq!(
        ended_sessions(&kiosk, 1, Duration::from_secs(1)).len(),
        1,
        "no second call"
    );
    kiosk.stop();
}

#[test]
fn a_dropped_call_ends_with_connection_lost_and_keeps_the_cost_so_far() {
    let emulator = Emulator::start("kiosk_e2e.toml", &["drop-after-turn=1"]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "");
    kiosk.scanner.scan("0012345678");
    let s = &ended_sessions(&kiosk, 1, Duration::from_secs(40))[0];
    assert_eq!(s.end_reason.as_deref(), Some("connection_lost"), "{s:?}");
    assert!(s.responses >= 1, "usage before the drop is kept: {s:?}");
    kiosk.stop();
}

#[test]
fn a_network_outage_of_a_few_seconds_keeps_the_call() {
    // After the first turn no packet goes either way for 8 s (a Wi-Fi hiccup): the call survives
    // it and goes on to its goodbye, with every turn's usage.
    let emulator = Emulator::start("kiosk_e2e.toml", &["pause-after-turn=1", "pause-ms=8000"]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "");
    kiosk.scanner.scan("0012345678");
    let s = &ended_sessions(&kiosk, 1, Duration::from_secs(40))[0];
    let log = kiosk.log();
    assert_eq!(s.end_reason.as_deref(), Some("goodbye"), "{s:?}\n{log}");
    assert_eq!(s.responses, 3, "both turns and the goodbye: {s:?}");
    assert!(
        s.duration_ms.unwrap_or(0) >= 8_000,
        "the outage happened: {s:?}"
    );
    kiosk.stop();
}

#[test]
fn a_network_outage_that_lasts_ends_the_call_as_lost_and_keeps_the_cost_so_far() {
    let emulator = Emulator::start("kiosk_e2e.toml", &["pause-after-turn=1", "pause-ms=30000"]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "");
    kiosk.scanner.scan("0012345678");
    let s = &ended_sessions(&kiosk, 1, Duration::from_secs(40))[0];
    let log = kiosk.log();
    assert_eq!(
        s.end_reason.as_deref(),
        Some("connection_lost"),
        "{s:?}\n{log}"
    );
    assert!(
        log.contains("no packets from the Realtime server"),
        "the cause says the network went quiet:\n{log}"
    );
    assert!(s.responses >= 1, "usage before the outage is kept: {s:?}");
    kiosk.stop();
}

#[test]
fn malformed_and_unknown_events_are_survived() {
    let emulator = Emulator::start("kiosk_e2e.toml", &["malformed"]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "");
    kiosk.scanner.scan("0012345678");
    let s = &ended_sessions(&kiosk, 1, Duration::from_secs(30))[0];
    assert_eq!(s.end_reason.as_deref(), Some("goodbye"), "{s:?}");
    let log = kiosk.stop();
    assert!(log.contains("malformed Realtime event ignored"), "{log}");
}

/// A migrated central with a kiosk and one active member, Marie, of the kiosk's gym.
fn central_with_member(
    tag: &str,
    member_id: &str,
    badge: &str,
) -> (central_support::TestDb, central_support::KioskLogin) {
    let db = central_support::TestDb::migrated(tag);
    let gym = format!("gym-{tag}");
    let login = db.add_kiosk(&format!("kiosk-{tag}"), &gym);
    db.psql(&format!(
        "INSERT INTO members (member_id, gym_id, badge, first_name, language, membership_status) \
         VALUES ('{member_id}', '{gym}', '{badge}', 'Marie', 'fr', 'active')"
    ));
    (db, login)
}

/// The environment pointing the daemon at that central.
fn central_env(login: &central_support::KioskLogin) -> [(&'static str, &str); 2] {
    [
        ("JARVIS_KIOSK__CENTRAL__URL", login.url.as_str()),
        (
            "JARVIS_KIOSK__CENTRAL__PASSWORD_FILE",
            login.password_file.to_str().unwrap(),
        ),
    ]
}

/// The whole product: a member of the kiosk's gym (central lookup function) scans, talks,
/// says goodbye; the session's events reach central exactly once and the derived
/// `openai_realtime_sessions` row carries the same cost as the kiosk computed.
#[test]
fn member_session_reaches_central_with_the_same_cost() {
    let (db, login) = central_with_member("e2e", "m-42", "0012345678");
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let kiosk = Kiosk::start_with_env(
        &emulator,
        &login.kiosk_id,
        "[central]\nheartbeat_s = 1\nbatch_max_ms = 100\n",
        &central_env(&login),
    );
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(
        s.member_id.as_deref(),
        Some("m-42"),
        "{s:?}\n{}",
        kiosk.log()
    );
    assert_eq!(s.membership.as_deref(), Some("active"));

    // Everything recorded locally is synced, and central holds each event once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (local, central) = loop {
        let stats = Store::open_existing(&kiosk.db()).unwrap().stats().unwrap();
        let central: u64 = db
            .psql(&format!(
                "SELECT count(*) FROM kiosk_events WHERE session_id = '{}'",
                s.session_id
            ))
            .parse()
            .unwrap();
        if stats.pending == 0 && central >= 7 || Instant::now() > deadline {
            break (stats, central);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(local.pending, 0, "{local:?}\n{}", kiosk.log());
    assert_eq!(central, 7, "start, connected, 3 usages, transcription, end");
    let row = db.psql(&format!(
        "SELECT member_id, end_reason, total_cost_usd::text, \
                (input_audio_tokens_cost_usd + output_audio_tokens_cost_usd \
                 + input_text_tokens_cost_usd + output_text_tokens_cost_usd \
                 + transcription_cost_usd)::text \
         FROM openai_realtime_sessions WHERE session_id = '{}'",
        s.session_id
    ));
    let total = s.total_nusd.to_decimal_string();
    assert_eq!(row, format!("m-42|goodbye|{total}|{total}"), "central row");
    let heartbeats: u64 = db
        .psql(&format!(
            "SELECT count(*) FROM kiosk_heartbeats WHERE kiosk_id = '{}'",
            login.kiosk_id
        ))
        .parse()
        .unwrap_or(0);
    assert!(heartbeats >= 1, "heartbeats reach central");
    kiosk.stop();
}

/// What support sees of a live session: `status` through the daemon's socket names the member
/// and the cost so far; `/healthz` and `/metrics` follow the session to its end.
#[test]
fn a_live_session_shows_in_status_healthz_and_metrics() {
    let (_db, login) = central_with_member("e2e_status", "m-7", "0099887766");
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let port = support::net::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut env = central_env(&login).to_vec();
    env.push(("JARVIS_KIOSK__HEALTH__LISTEN", listen.as_str()));
    let kiosk = Kiosk::start_with_env(
        &emulator,
        &login.kiosk_id,
        "[session]\nidle_timeout_s = 3\n",
        &env,
    );
    // Scanner on its pty, virtual sound card, credentials: ready for a member.
    support::wait_until("/healthz ready", Duration::from_secs(10), || {
        (support::net::http_get(port, "/healthz").ok()?.0 == 200).then_some(())
    });

    kiosk.scanner.scan("0099887766");
    let status = support::wait_until("a metered live session", Duration::from_secs(20), || {
        let out = kiosk.command(&["status", "--json"]).output().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["current_session"]["cost_nusd"].as_u64()? > 0).then_some(v)
    });
    let live = &status["current_session"];
    assert_eq!(status["daemon"], "running");
    assert_eq!(live["first_name"], "Marie", "{status}");
    assert!(live["duration_ms"].as_u64().unwrap() > 0, "{status}");
    let session_id = live["session_id"].as_str().unwrap().to_owned();
    let out = kiosk.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("current session: {session_id} with Marie")),
        "{text}"
    );
    let (_, metrics) = support::net::http_get(port, "/metrics").unwrap();
    assert!(metrics.contains("jarvis_kiosk_session_live 1"), "{metrics}");

    let s = kiosk.ended_session(Duration::from_secs(20));
    assert_eq!(s.end_reason.as_deref(), Some("idle_timeout"), "{s:?}");
    let ended = support::wait_until(
        "the ended session in /metrics",
        Duration::from_secs(5),
        || {
            let (_, m) = support::net::http_get(port, "/metrics").ok()?;
            m.contains(r#"jarvis_kiosk_sessions_ended_total{reason="idle_timeout"} 1"#)
                .then_some(m)
        },
    );
    assert!(ended.contains("jarvis_kiosk_session_live 0"), "{ended}");
    let cost: f64 = ended
        .lines()
        .find_map(|l| l.strip_prefix("jarvis_kiosk_sessions_cost_usd_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (cost - s.total_nusd.0 as f64 / 1e9).abs() < 1e-12,
        "{cost} vs {:?}",
        s.total_nusd
    );
    let out = kiosk.command(&["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["current_session"].is_null(), "{v}");
    assert_eq!(v["recent_sessions"][0]["session_id"], session_id);
    kiosk.stop();
}

/// Waits until the kiosk's session is live and metered (the greeting's usage is in).
fn wait_live(kiosk: &Kiosk) -> String {
    let status = support::wait_until("a metered live session", Duration::from_secs(20), || {
        let v = kiosk.status()?;
        (v["current_session"]["cost_nusd"].as_u64()? > 0).then_some(v)
    });
    status["current_session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every terminating signal ends a live session cleanly: reason `shutdown`, usage kept.
#[test]
fn a_terminating_signal_ends_the_live_session_as_shutdown() {
    use nix::sys::signal::Signal;
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGQUIT] {
        let emulator = Emulator::start("live_until_idle.toml", &[]);
        let mut kiosk = Kiosk::start(&emulator, "kiosk-e2e", "[session]\nidle_timeout_s = 600\n");
        kiosk.scanner.scan("0012345678");
        let live = wait_live(&kiosk);
        let (s, log) = kiosk.stop_and_find(signal, &live);
        assert_eq!(
            s.end_reason.as_deref(),
            Some("shutdown"),
            "{signal}: {s:?}\n{log}"
        );
        assert!(
            s.total_nusd > NanoUsd(0),
            "{signal}: the usage is kept: {s:?}"
        );
    }
}

/// SIGHUP reloads the session limits: a live kiosk with a long idle timeout gets a short one
/// and keeps running; a changed key that cannot be reloaded is named as needing a restart.
#[test]
fn sighup_reloads_session_limits_and_names_what_needs_a_restart() {
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "[session]\nidle_timeout_s = 600\n");
    let body = std::fs::read_to_string(kiosk.config()).unwrap();
    let body = body
        .replace("idle_timeout_s = 600", "idle_timeout_s = 2")
        .replace("connect_timeout_s = 5", "connect_timeout_s = 6");
    std::fs::write(kiosk.config(), body).unwrap();
    kiosk.signal(nix::sys::signal::Signal::SIGHUP);
    let log = kiosk.wait_log("SIGHUP: reloading", Duration::from_secs(10));
    assert!(log.contains("need a restart"), "{log}");
    let restart = log.lines().find(|l| l.contains("need a restart")).unwrap();
    assert!(restart.contains("openai.connect_timeout_s"), "{restart}");
    assert!(!restart.contains("idle_timeout_s"), "{restart}");

    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(
        s.end_reason.as_deref(),
        Some("idle_timeout"),
        "{s:?}\n{}",
        kiosk.log()
    );
    kiosk.stop();
}

/// `log.level` is reloaded too: a daemon started at `warn` logs nothing at info until a
/// SIGHUP brings it to `info`, and then logs the reload itself.
#[test]
fn sighup_changes_the_log_level() {
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let kiosk = Kiosk::start(&emulator, "kiosk-e2e", "[log]\nlevel = \"warn\"\n");
    let quiet = kiosk.log();
    assert!(
        !quiet.contains("\"INFO\""),
        "at warn, nothing at info:\n{quiet}"
    );
    let body = std::fs::read_to_string(kiosk.config())
        .unwrap()
        .replace("level = \"warn\"", "level = \"info\"");
    std::fs::write(kiosk.config(), body).unwrap();
    kiosk.signal(nix::sys::signal::Signal::SIGHUP);
    let log = kiosk.wait_log("SIGHUP: reloading", Duration::from_secs(10));
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: reloading"))
        .unwrap();
    assert!(line.contains("log.level"), "{line}");
    assert!(!log.contains("need a restart"), "{log}");
    kiosk.stop();
}

/// The microphone does not wait on the store: with every append held 500 ms on the store
/// thread (a slow SD card's fsync), a whole session's frames reach the conversation.
#[test]
fn a_slow_store_drops_no_microphone_frames() {
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let kiosk = Kiosk::start_with_env(
        &emulator,
        "kiosk-e2e",
        "",
        &[("JARVIS_KIOSK_TEST_FAULTS", "store-delay-ms=500")],
    );
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(60));
    assert_eq!(
        s.end_reason.as_deref(),
        Some("goodbye"),
        "{s:?}\n{}",
        kiosk.log()
    );
    let status = kiosk.status().expect("status");
    let dropped = status["health"]["counters"]["audio_frames_dropped"]
        .as_u64()
        .unwrap_or(0);
    eprintln!("microphone frames dropped with a 500 ms store delay: {dropped}");
    assert_eq!(dropped, 0, "{status}");
    kiosk.stop();
}

/// A small tmpfs, unmounted when dropped (the tests run as root in a container).
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount -t tmpfs needs root (or CAP_SYS_ADMIN)");
        Tmpfs(dir)
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A full disk: the session whose start cannot be recorded does not call OpenAI, the kiosk
/// degrades and refuses scans with the "unavailable" prompt, an alert is raised, and once the
/// disk has room the kept events are recorded and sessions start again.
#[test]
fn a_full_disk_stops_new_sessions_until_the_store_records_again() {
    let disk = Tmpfs::mount("4m");
    let db = disk.0.path().join("kiosk.db");
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let kiosk = Kiosk::start_with_env(
        &emulator,
        "kiosk-e2e",
        "[session]\ncooldown_s = 1\n",
        &[("JARVIS_KIOSK__STORAGE__PATH", db.to_str().unwrap())],
    );
    let filler = disk.fill();
    kiosk.scanner.scan("0012345678");
    kiosk.wait_log("event NOT recorded", Duration::from_secs(20));
    support::wait_until("lifecycle degraded", Duration::from_secs(10), || {
        let v = kiosk.status()?;
        (v["health"]["lifecycle"] == "degraded").then_some(v)
    });
    kiosk.scanner.scan("0099999999");
    kiosk.wait_log("store_unavailable", Duration::from_secs(10));
    assert!(
        !kiosk.log().contains("connecting to Realtime"),
        "no call while costs cannot be recorded:\n{}",
        kiosk.log()
    );

    std::fs::remove_file(filler).unwrap();
    kiosk.wait_log("records again; sessions resume", Duration::from_secs(10));
    kiosk.scanner.scan("0055555555");
    let ended = ended_sessions_in(&kiosk, &db, 2, Duration::from_secs(40));
    let reasons: Vec<_> = ended
        .iter()
        .map(|s| s.end_reason.clone().unwrap())
        .collect();
    assert_eq!(reasons, ["goodbye", "connect_failed"], "{}", kiosk.log());
    let mut store = Store::open_existing(&db).unwrap();
    let events: Vec<_> = store
        .pending(1000)
        .unwrap()
        .into_iter()
        .map(|e| e.event.payload)
        .collect();
    assert!(events.iter().any(|p| matches!(p,
        jarvis_core::events::EventPayload::ScanRefused { cause } if cause == "store_unavailable")));
    assert!(events.iter().any(|p| matches!(p,
        jarvis_core::events::EventPayload::Alert { code, .. } if code == "store_write_failed")));
    drop(store);
    let mut kiosk = kiosk;
    let log = kiosk.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(log.contains("stopped"), "{log}");
}

/// Waits until the virtual speaker has played `secs` of sound (non-silent stereo frames).
fn wait_heard(kiosk: &Kiosk, secs: f64) {
    let want = (secs * 48_000.0) as usize;
    support::wait_until(
        &format!("{secs} s of sound on the speaker"),
        Duration::from_secs(20),
        || {
            let raw = std::fs::read(kiosk.speaker_raw()).ok()?;
            let frames = raw
                .chunks_exact(4)
                .filter(|f| f.iter().any(|b| *b != 0))
                .count();
            (frames >= want).then_some(())
        },
    );
}

/// long_reply.toml: the greeting and the 5 s reply, both billed in full.
fn long_reply_cost() -> u64 {
    use support::price::*;
    let greeting = 80 * TEXT_IN + 3 * TEXT_OUT + 8 * AUDIO_OUT;
    let reply = 100 * TEXT_IN + 20 * AUDIO_IN + 25 * TEXT_OUT + 100 * AUDIO_OUT;
    greeting + reply
}

/// SIGTERM while JARVIS is 1.5 s into a 5 s reply: the kiosk cancels it, reads on for its
/// `response.done` (`cancelled`, billed as generated) and records it before ending the session.
#[test]
fn shutdown_during_a_reply_records_its_usage() {
    let emulator = Emulator::start("long_reply.toml", &[]);
    let mut kiosk = Kiosk::start(&emulator, "kiosk-e2e", "[session]\nidle_timeout_s = 600\n");
    kiosk.scanner.scan("0012345678");
    let live = wait_live(&kiosk);
    // The 0.2 s greeting, then well into the reply (and 3 s of it still to play).
    wait_heard(&kiosk, 1.5);
    let (s, log) = kiosk.stop_and_find(nix::sys::signal::Signal::SIGTERM, &live);
    assert_eq!(s.end_reason.as_deref(), Some("shutdown"), "{s:?}\n{log}");
    assert_eq!(s.responses, 2, "{s:?}\n{log}");
    assert_eq!(s.total_nusd, NanoUsd(long_reply_cost()), "{s:?}\n{log}");
}

/// `session.max_duration_s` reached while JARVIS speaks (the idle timer cannot fire then: it
/// only counts while JARVIS is silent): the kiosk asks for a goodbye, queued behind the 5 s
/// reply. The kiosk hangs up when the reply ends (its `response.done` counts as the goodbye's
/// for the session machine), with the goodbye's response started and not done: it is
/// cancelled, billed, and its usage recorded with the rest.
#[test]
fn the_time_limit_during_a_reply_records_every_response() {
    let emulator = Emulator::start("long_reply.toml", &[]);
    let kiosk = Kiosk::start(
        &emulator,
        "kiosk-e2e",
        "[session]\nidle_timeout_s = 600\nmax_duration_s = 1\n",
    );
    kiosk.scanner.scan("0012345678");
    let s = kiosk.ended_session(Duration::from_secs(30));
    assert_eq!(
        s.end_reason.as_deref(),
        Some("max_duration"),
        "{s:?}\n{}",
        kiosk.log()
    );
    use support::price::*;
    // 180 input tokens of which 150 cached.
    let goodbye = 30 * TEXT_IN + 150 * CACHED + 4 * TEXT_OUT + 6 * AUDIO_OUT;
    // The late usage lands after `SessionEnded`: wait for it in the store.
    let db = kiosk.db();
    let s = support::wait_until("the goodbye's usage", Duration::from_secs(5), || {
        let store = Store::open_existing(&db).ok()?;
        let s = store.recent_sessions(5).ok()?.into_iter().next()?;
        (s.responses == 3).then_some(s)
    });
    assert_eq!(
        s.total_nusd,
        NanoUsd(long_reply_cost() + goodbye),
        "{s:?}\n{}",
        kiosk.log()
    );
    let log = kiosk.stop();
    assert!(
        !log.contains("hung up before the usage of running responses arrived"),
        "{log}"
    );
}
