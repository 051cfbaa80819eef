//! The `jarvis-broker` binary: config check and the kiosk administration commands.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::TestDb;

fn broker() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jarvis-broker"));
    cmd.env_remove("RUST_LOG");
    cmd
}

#[test]
fn config_check_prints_the_effective_config_or_names_the_bad_key() {
    let out = broker()
        .args(["config", "check"])
        .env("JARVIS_BROKER__LIMITS__SESSIONS_PER_MINUTE", "9")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sessions_per_minute = 9"), "{text}");
    let out = broker()
        .args(["config", "check"])
        .env("JARVIS_BROKER__SESSION__KEY_TTL_S", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("session.key_ttl_s"));
    let out = broker()
        .args(["config", "check"])
        .env("JARVIS_BROKER__OPENAI__API_KEY", "sk-inline")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api_key_file"));
}

#[test]
fn kiosk_add_rotate_disable_enable() {
    let db = TestDb::migrated("cli");
    db.add_kiosk("k1", "g1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k1.token");
    let run = |args: &[&str]| {
        broker()
            .args(["kiosk"])
            .args(args)
            .args(["--database-url", &db.url])
            .output()
            .unwrap()
    };
    let out = run(&["add", "k1", "--token-file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = std::fs::read_to_string(&file).unwrap();
    assert!(first.starts_with("jkt_"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = run(&["rotate", "k1"]);
    assert!(out.status.success());
    let second = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(second.starts_with("jkt_") && second != first.trim());
    assert_eq!(
        db.psql("SELECT count(*) FILTER (WHERE expires_at IS NULL) || '/' || count(*) FROM broker_kiosk_tokens"),
        "1/2",
        "the old token is kept for the overlap window"
    );
    assert!(run(&["disable", "k1"]).status.success());
    assert_eq!(db.psql("SELECT disabled_at IS NOT NULL FROM kiosks"), "t");
    assert!(run(&["enable", "k1"]).status.success());
    assert_eq!(db.psql("SELECT disabled_at IS NOT NULL FROM kiosks"), "f");
    let out = run(&["disable", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no kiosk `nope`"));
}
