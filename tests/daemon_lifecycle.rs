//! The real binary as systemd runs it: READY, watchdog, `status`, clean stop on SIGTERM.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::net::{free_port, http_get};
use support::{NotifySocket, Scratch, cpu_time, terminate};

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
    // No sound card here: alsa-lib's own complaints stay out of the journal.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("audio capture unavailable"), "{stderr}");
    assert!(!stderr.contains("ALSA lib"), "{stderr}");
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
    assert_eq!(out.status.code(), Some(3), "LSB: program is not running");
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemon: not running"));
}

/// Starts `run` with `NOTIFY_SOCKET` in `sub` (so several daemons can share a scratch dir)
/// and waits for READY.
fn start(
    scratch: &Scratch,
    sub: &str,
    env: &[(&str, &str)],
) -> (std::process::Child, NotifySocket) {
    let dir = scratch.path().join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    let notify = NotifySocket::bind(&dir);
    let child = scratch
        .command(&["run"])
        .env("NOTIFY_SOCKET", &notify.path)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    (child, notify)
}

#[test]
fn a_second_daemon_is_refused_and_a_killed_ones_socket_is_replaced() {
    let scratch = Scratch::new("");
    let (mut first, _n1) = start(&scratch, "first", &[]);

    let out = scratch.command(&["run"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");

    first.kill().unwrap();
    first.wait().unwrap();
    let out = scratch.command(&["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"], "not_running", "{v}");

    let (mut again, _n2) = start(&scratch, "again", &[]);
    let out = scratch.command(&["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["health"]["pid"], again.id(), "{v}");
    assert!(terminate(&mut again, Duration::from_secs(5)).is_some_and(|s| s.success()));
}

#[test]
fn health_endpoint_serves_healthz_and_metrics() {
    let scratch = Scratch::new("");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, _n) = start(&scratch, "a", &[("JARVIS_KIOSK__HEALTH__LISTEN", &listen)]);

    // No scanner and no sound card here: not ready, and /healthz says why.
    let (code, body) = http_get(port, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    let problems = v["problems"].to_string();
    assert!(problems.contains("scanner"), "{problems}");

    let (code, text) = http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        text.contains(r#"jarvis_kiosk_build_info{version=""#)
            && text.contains(r#"kiosk_id="kiosk-test"}"#),
        "{text}"
    );
    assert!(text.contains("jarvis_kiosk_outbox_backlog 0"), "{text}");
    assert!(text.contains("jarvis_kiosk_session_live 0"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    assert_eq!(http_get(port, "/").unwrap().0, 404);

    // A second kiosk configured with the same port still serves members; status says why
    // its endpoint is missing.
    let other = Scratch::new("");
    let (mut second, _n2) = start(&other, "b", &[("JARVIS_KIOSK__HEALTH__LISTEN", &listen)]);
    let out = other.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("daemon: running"), "{text}");
    assert!(text.contains("health.listen: cannot listen on"), "{text}");

    for c in [&mut second, &mut child] {
        assert!(terminate(c, Duration::from_secs(5)).is_some_and(|s| s.success()));
    }
}

/// With no badge source the reader's channel closes at once; the lifecycle loop must stop
/// listening to it rather than spin on it. A fault detector, not a performance target: a
/// spinning loop burns ~50 % of a core, an idle daemon well under 1 %.
#[test]
fn an_idle_daemon_without_a_scanner_does_not_spin() {
    let scratch = Scratch::new("[badge]\nsource = \"none\"\n");
    let (mut child, _n) = start(&scratch, "a", &[]);
    let window = Duration::from_secs(3);
    let before = (cpu_time(child.id()), std::time::Instant::now());
    // A measurement window, not a synchronisation: the daemon is idle throughout.
    std::thread::sleep(window);
    let used = cpu_time(child.id()) - before.0;
    let share = used.as_secs_f64() / before.1.elapsed().as_secs_f64();
    eprintln!(
        "idle CPU with badge.source = none: {:.2} % of a core ({used:?} over {window:?})",
        share * 100.0
    );
    assert!(
        share < 0.05,
        "the idle daemon used {:.1} % of a core",
        share * 100.0
    );
    assert!(terminate(&mut child, Duration::from_secs(5)).is_some_and(|s| s.success()));
}

/// The watchdog is fed by the work: pings flow while the lifecycle loop turns, and stop once
/// it stalls (a test fault), so systemd restarts a stuck daemon.
#[test]
fn the_watchdog_stops_pinging_when_the_lifecycle_loop_stalls() {
    let scratch = Scratch::new("");
    let notify = NotifySocket::bind(scratch.path());
    let mut child = scratch
        .command(&["run"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "1000000")
        .env("JARVIS_KIOSK_TEST_FAULTS", "stall-lifecycle-after-ms=3000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before = notify
        .wait_for(
            "STATUS=test fault: lifecycle stalled",
            Duration::from_secs(30),
        )
        .expect("the stall fault fired");
    let pings_before = before
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(pings_before >= 2, "pings while the loop turned: {before:?}");

    // The loop's last beat is at most an interval and a tick old when a ping goes out, so
    // none may arrive after 1 s; watch 4 s.
    let stalled_at = std::time::Instant::now();
    let after = notify.collect(Duration::from_secs(4));
    let late: Vec<_> = after
        .iter()
        .filter(|(at, m)| {
            m.lines().any(|l| l == "WATCHDOG=1")
                && at.duration_since(stalled_at) > Duration::from_secs(1)
        })
        .collect();
    assert!(late.is_empty(), "pings after the stall: {late:?}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("not pinging the systemd watchdog"), "{log}");
}

/// SIGHUP reloads instead of killing the daemon: an invalid file changes nothing, and the
/// daemon keeps serving.
#[test]
fn sighup_with_an_invalid_file_keeps_the_daemon_running() {
    let scratch = Scratch::new("[session]\nidle_timeout_s = 30\n");
    let notify = NotifySocket::bind(scratch.path());
    let log = scratch.path().join("daemon.log");
    let mut child = scratch
        .command(&["run"])
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1");
    let body = std::fs::read_to_string(&scratch.config).unwrap();
    std::fs::write(
        &scratch.config,
        body.replace("idle_timeout_s = 30", "idle_timeout_s = 0"),
    )
    .unwrap();
    support::send_signal(&child, nix::sys::signal::Signal::SIGHUP);
    support::wait_until(
        "the refused reload in the log",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("nothing reloaded").then_some(())
        },
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("session.idle_timeout_s"),
        "the log names the bad key"
    );
    std::fs::write(&scratch.config, body).unwrap();
    let out = scratch.command(&["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"], "running", "the daemon died on SIGHUP: {v}");
    assert!(terminate(&mut child, Duration::from_secs(5)).is_some_and(|s| s.success()));
}
