//! End to end: the real daemon is killed with SIGKILL during a live, metered session (all a
//! power cut is to the process) and started again: the session is ended `crashed` with its
//! cost so far in the local store, in `status`, and in central's derived row.

#[path = "central_support/mod.rs"]
mod central_support;
mod support;

use std::time::Duration;

use support::rig::{Emulator, Kiosk};

#[test]
fn a_session_killed_mid_call_is_ended_crashed_at_restart_locally_in_status_and_centrally() {
    let db = central_support::TestDb::migrated("e2e_crash");
    let gym = "gym-e2e-crash";
    let login = db.add_kiosk("kiosk-e2e-crash", gym);
    db.psql(&format!(
        "INSERT INTO members (member_id, gym_id, badge, first_name, language, membership_status) \
         VALUES ('m-9', '{gym}', '0055667788', 'Marie', 'fr', 'active')"
    ));
    let env = [
        ("JARVIS_KIOSK__CENTRAL__URL", login.url.as_str()),
        (
            "JARVIS_KIOSK__CENTRAL__PASSWORD_FILE",
            login.password_file.to_str().unwrap(),
        ),
    ];
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let mut kiosk = Kiosk::start_with_env(
        &emulator,
        &login.kiosk_id,
        "[session]\nidle_timeout_s = 600\n[central]\nbatch_max_ms = 100\n",
        &env,
    );
    kiosk.scanner.scan("0055667788");
    let session_id = support::wait_until("a metered live session", Duration::from_secs(20), || {
        let out = kiosk.command(&["status", "--json"]).output().ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["current_session"]["cost_nusd"].as_u64()? > 0)
            .then(|| {
                v["current_session"]["session_id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten()
    });

    kiosk.kill_and_restart(&env);

    // The local store: ended `crashed`, with what was metered before the kill.
    let s = kiosk.ended_session(Duration::from_secs(10));
    assert_eq!(s.session_id.to_string(), session_id);
    assert_eq!(
        s.end_reason.as_deref(),
        Some("crashed"),
        "{s:?}\n{}",
        kiosk.log()
    );
    assert!(s.total_nusd.0 > 0, "{s:?}");
    assert!(s.duration_ms.is_some_and(|d| d > 0), "{s:?}");
    assert_eq!(
        s.ended_at_ms.map(|e| e - s.started_at_ms.unwrap()),
        s.duration_ms.map(|d| d as i64)
    );

    // `status`: the session is no longer current, and is listed as ended `crashed`.
    let out = kiosk.command(&["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status["current_session"].is_null(), "{status}");
    let text =
        String::from_utf8_lossy(&kiosk.command(&["status"]).output().unwrap().stdout).into_owned();
    assert!(text.contains("crashed"), "{text}");

    // Central derives the row from the `crashed` end like any other end.
    let want = format!(
        "crashed|{}|{}",
        s.total_nusd.to_decimal_string(),
        s.duration_ms.unwrap()
    );
    let row = support::wait_until(
        "the crashed end in central",
        Duration::from_secs(30),
        || {
            let row = db.psql(&format!(
                "SELECT end_reason || '|' || total_cost_usd || '|' || duration_ms \
             FROM openai_realtime_sessions WHERE session_id = '{session_id}'"
            ));
            (row == want).then_some(row)
        },
    );
    assert_eq!(row, want);
    kiosk.stop();
}
