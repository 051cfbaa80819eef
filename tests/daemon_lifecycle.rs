//! The real binary as systemd runs it: READY, watchdog, `status`, clean stop on SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{NotifySocket, Scratch, terminate};

#[test]
fn starts_notifies_ready_and_stops_cleanly_on_sigterm() {
    let scratch = Scratch::new("");
    let notify = NotifySocket::bind(scratch.path());
    let mut child = scratch
        .command(&["run", "--log", "json"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let seen = notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    assert!(
        seen.iter().any(|m| m.contains("STATUS=ready in")),
        "{seen:?}"
    );
    notify
        .wait_for("WATCHDOG=1", Duration::from_secs(5))
        .expect("watchdog pings at half of WATCHDOG_USEC");

    // `status` from another process sees the running daemon.
    let mut running = false;
    for _ in 0..50 {
        let out = scratch.command(&["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["daemon"] == "running" {
            assert_eq!(v["health"]["pid"], child.id());
            running = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(running, "status never saw the daemon running");

    let status =
        terminate(&mut child, Duration::from_secs(5)).expect("exits within 5 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    notify
        .wait_for("STOPPING=1", Duration::from_secs(1))
        .expect("STOPPING=1");

    let out = scratch.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("daemon: not running"), "{text}");
    assert!(text.contains("outbox: 0 pending"), "{text}");
    assert!(text.contains("recent sessions: none"), "{text}");

    let out = scratch.command(&["outbox", "stats"]).output().unwrap();
    assert!(out.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["pending"], 0);
    let out = scratch
        .command(&["outbox", "dead-letters"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("no dead letters"));
}

#[test]
fn outbox_commands_explain_a_missing_store() {
    let scratch = Scratch::new("");
    let out = scratch.command(&["outbox", "stats"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage.path"), "{err}");
}

#[test]
fn bad_config_exits_with_the_key_and_does_not_start() {
    let scratch = Scratch::new("[session]\nmax_duration_s = -3\n");
    let out = scratch.command(&["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_duration_s"), "{err}");
}

#[test]
fn config_check_prints_effective_config_or_errors() {
    let scratch = Scratch::new("");
    let out = scratch
        .command(&["config", "check"])
        .env("JARVIS_KIOSK__SESSION__IDLE_TIMEOUT_S", "42")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("idle_timeout_s = 42"), "{text}");

    let out = scratch
        .command(&["config", "check"])
        .env("JARVIS_KIOSK__SESSION__IDLE_TIMEOUT_S", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("session.idle_timeout_s"));
}

#[test]
fn status_works_without_a_daemon() {
    let scratch = Scratch::new("");
    let out = scratch.command(&["status"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemon: not running"));
}
