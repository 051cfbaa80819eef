//! journald output, checked by reading the native protocol datagrams the daemon sends.
//!
//! tracing-journald always writes to /run/systemd/journal/socket, so the test re-runs itself
//! inside a private mount namespace (`unshare -m`, needs root as in CI) with a tmpfs on
//! /run/systemd and binds its own collector socket there. The host is never touched.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::journal::{Entry, parse};
use support::rig::{Emulator, Kiosk, write_config_with};

const INNER: &str = "JARVIS_TEST_JOURNALD_INNER";
const COLLECTOR: &str = "/run/systemd/journal/socket";

#[test]
fn session_lines_carry_session_and_kiosk_ids() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root for unshare -m (CI runs as root)"
    );
    let me = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/journal \
             && exec \"$0\" --exact session_lines_carry_session_and_kiosk_ids --nocapture --test-threads=1",
        )
        .arg(&me)
        .env(INNER, "1")
        .env("JARVIS_BIN", env!("CARGO_BIN_EXE_jarvis-kiosk"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner run failed:\n{text}");
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
}

fn recv_until(sock: &UnixDatagram, limit: Duration, done: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    let deadline = Instant::now() + limit;
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    while Instant::now() < deadline && !done(&entries) {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf)
            && n > 0
        {
            entries.push(parse(&buf[..n]).expect("well-formed native protocol datagram"));
        }
    }
    entries
}

fn inner() {
    let sock = UnixDatagram::bind(COLLECTOR).unwrap();

    // 1. The real daemon, with --log journald: its lines carry KIOSK_ID and our identifier.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kiosk]\nid = \"kiosk-jd\"\n[storage]\npath = \"{0}/k.db\"\n[health]\nruntime_dir = \"{0}/run\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(std::env::var("JARVIS_BIN").unwrap())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--log",
            "journald",
            "run",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let entries = recv_until(&sock, Duration::from_secs(20), |e| {
        e.iter()
            .any(|e| e.get("MESSAGE").is_some_and(|m| m == "ready"))
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let ready = entries
        .iter()
        .find(|e| e.get("MESSAGE").is_some_and(|m| m == "ready"))
        .unwrap_or_else(|| panic!("no `ready` line in {entries:?}"));
    assert_eq!(ready["KIOSK_ID"], "kiosk-jd");
    assert_eq!(ready["SYSLOG_IDENTIFIER"], "jarvis-kiosk");
    assert_eq!(
        ready["PRIORITY"], "5",
        "info maps to notice (5) in tracing-journald"
    );
    assert!(ready.contains_key("STARTUP_MS"), "{ready:?}");

    // 2. A whole GPT-Live session (a development key, the emulator as OpenAI): its end line
    //    names the backend and the seconds billed, as fields support can filter on.
    let emulator = Emulator::start("live_phrase.toml", &[]);
    let kiosk = Kiosk::start_logging("journald", &[], |d| {
        let key = d.join("openai-key");
        std::fs::write(&key, "sk-dev-journald\n").unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        write_config_with(
            d,
            "kiosk-jd-live",
            &format!(
                "api = \"live\"\nbase_url = \"{}\"\napi_key_file = \"{}\"\n",
                emulator.base_url,
                key.display()
            ),
            "[openai.live]\nmodel = \"gpt-live-1\"\n",
        );
    });
    kiosk.scanner.scan("0012345678");
    let ended = |e: &Entry| {
        e.get("MESSAGE").is_some_and(|m| m == "session ended")
            && e.get("KIOSK_ID").is_some_and(|k| k == "kiosk-jd-live")
    };
    let entries = recv_until(&sock, Duration::from_secs(40), |es| es.iter().any(ended));
    drop(kiosk);
    let line = entries
        .iter()
        .find(|e| ended(e))
        .unwrap_or_else(|| panic!("no Live `session ended` line in {entries:?}"));
    assert_eq!(line["BACKEND"], "live", "{line:?}");
    assert_eq!(line["REASON"], "goodbye_phrase", "{line:?}");
    assert_eq!(line["BILLED_SECONDS"], "15", "{line:?}");
    assert_eq!(line["VOICE_USD"], "$0.012500", "{line:?}");
    assert!(line.contains_key("SESSION_ID"), "{line:?}");
    let usage = entries
        .iter()
        .find(|e| e.get("MESSAGE").is_some_and(|m| m == "live usage metered"))
        .unwrap_or_else(|| panic!("no `live usage metered` line in {entries:?}"));
    assert_eq!(usage["BACKEND"], "live");
    assert!(usage.contains_key("BILLED_SECONDS"), "{usage:?}");

    // 3. In-process: a line inside a session span carries SESSION_ID next to KIOSK_ID.
    let installed = jarvis_kiosk::telemetry::init(
        jarvis_kiosk::telemetry::LogFormat::Journald,
        "info",
        "kiosk-jd",
    );
    assert_eq!(installed, jarvis_kiosk::telemetry::Installed::Journald);
    let session_id = uuid::Uuid::now_v7();
    let span = jarvis_kiosk::telemetry::session_span(&session_id);
    span.in_scope(|| tracing::warn!(reason = "idle_timeout", "session ended"));
    let entries = recv_until(&sock, Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| e.get("MESSAGE").is_some_and(|m| m == "session ended"))
    });
    let line = entries
        .iter()
        .find(|e| e.get("MESSAGE").is_some_and(|m| m == "session ended"))
        .unwrap_or_else(|| panic!("no session line in {entries:?}"));
    assert_eq!(line["SESSION_ID"], session_id.to_string());
    assert_eq!(line["KIOSK_ID"], "kiosk-jd");
    assert_eq!(line["REASON"], "idle_timeout");
    assert_eq!(line["PRIORITY"], "4");
    assert!(Path::new(COLLECTOR).exists());
}
