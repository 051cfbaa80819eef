//! `doctor` through the real binary on a whole kiosk without hardware: a pty scanner, the
//! virtual sound card with a live microphone, the Realtime emulator and a migrated central.

#[path = "central_support/mod.rs"]
mod central_support;
mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::rig::{Emulator, MIC_BYTES_PER_SEC, Microphone, Scanner, SoundCard, write_config};

/// A 440 Hz tone, S16_LE mono 48 kHz, loud enough for the "microphone live" check.
fn tone(secs: f64) -> Vec<u8> {
    let n = (secs * MIC_BYTES_PER_SEC as f64 / 2.0) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f64 / 48_000.0;
            (((t * 440.0 * std::f64::consts::TAU).sin() * 8_000.0) as i16).to_le_bytes()
        })
        .collect()
}

/// Runs `doctor --json` and returns the exit code and each check's level by name.
fn doctor(cmd: &mut Command) -> (Option<i32>, BTreeMap<String, (String, serde_json::Value)>) {
    let out = cmd.output().unwrap();
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let by_name = checks
        .into_iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_owned();
            (name, (c["level"].as_str().unwrap().to_owned(), c))
        })
        .collect();
    (out.status.code(), by_name)
}

fn binary(config: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"));
    c.arg("--config").arg(config).args(args);
    c
}

#[test]
fn doctor_passes_on_a_healthy_kiosk() {
    let db = central_support::TestDb::migrated("doctor");
    let login = db.add_kiosk("kiosk-doctor", "gym-doctor");
    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _scanner = Scanner::plug(&d.join("ttyBADGE"));
    let card = SoundCard::Paced(Microphone::start(d, tone(30.0)));
    let config = write_config(d, &login.kiosk_id, &emulator.base_url, "");
    let mut cmd = binary(&config, &["doctor", "--json", "--call"]);
    cmd.env("JARVIS_KIOSK__CENTRAL__URL", &login.url)
        .env("JARVIS_KIOSK__CENTRAL__PASSWORD_FILE", &login.password_file);
    card.env(&mut cmd, d);

    let (code, checks) = doctor(&mut cmd);
    let fails: Vec<_> = checks.values().filter(|(l, _)| l == "FAIL").collect();
    assert!(fails.is_empty(), "{fails:#?}");
    assert_eq!(code, Some(0));
    for name in [
        "config",
        "clock",
        "disk",
        "openai.api_key_file",
        "openai dns",
        "openai https",
        "openai call",
        "central",
    ] {
        let (level, check) = checks
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {checks:#?}"));
        assert_eq!(level, "OK", "{check}");
    }
    assert!(
        checks["openai https"].1["detail"]
            .as_str()
            .unwrap()
            .contains("answered HTTP"),
        "{checks:#?}"
    );
    let scanner = checks
        .iter()
        .find(|(n, _)| n.starts_with("scanner"))
        .unwrap_or_else(|| panic!("no scanner check in {checks:#?}"));
    assert_eq!(scanner.1.0, "OK", "{:?}", scanner.1.1);
}

#[test]
fn doctor_fails_with_a_fix_for_each_unreachable_service() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let closed = support::net::free_port();
    let config = write_config(
        d,
        "kiosk-offline",
        &format!("http://127.0.0.1:{closed}/v1"),
        "",
    );
    std::fs::write(d.join("central.pw"), "secret\n").unwrap();
    let central = format!("postgres://kiosk_offline@127.0.0.1:{closed}/central?sslmode=disable");
    let pw = d.join("central.pw");
    let with_central = |args: &[&str]| {
        let mut c = binary(&config, args);
        c.env("JARVIS_KIOSK__CENTRAL__URL", &central)
            .env("JARVIS_KIOSK__CENTRAL__PASSWORD_FILE", &pw);
        c
    };

    let (code, checks) = doctor(&mut with_central(&["doctor", "--json"]));
    assert_eq!(code, Some(1), "{checks:#?}");
    for name in ["openai https", "central"] {
        let (level, check) = &checks[name];
        assert_eq!(level, "FAIL", "{check}");
        assert!(
            check["fix"].as_str().is_some_and(|f| !f.is_empty()),
            "{check}"
        );
    }
    assert!(
        checks["openai https"].1["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{checks:#?}"
    );

    let out = with_central(&["doctor", "--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("openai https")),
        "{text}"
    );
    assert!(text.contains("fix: check the network link"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ALSA lib"),
        "doctor's lines are not buried: {stderr}"
    );
}

/// `doctor --call` against the emulator: the transport that worked, or each failure's cause and
/// fix. (Scanner and sound card are absent here, so only the call's line is judged.)
#[test]
fn doctor_call_names_the_transport_or_what_failed() {
    let call = |base_url: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "kiosk-call", base_url, "");
        let (code, checks) = doctor(&mut binary(
            &config,
            &["doctor", "--json", "--quiet", "--call"],
        ));
        let (level, check) = checks
            .get("openai call")
            .unwrap_or_else(|| panic!("no openai call in {checks:#?}"))
            .clone();
        let text = |k: &str| check[k].as_str().unwrap_or_default().to_owned();
        (code, level, text("detail"), text("fix"))
    };

    let emulator = Emulator::start("kiosk_e2e.toml", &[]);
    let (_, level, detail, _) = call(&emulator.base_url);
    assert_eq!(level, "OK", "{detail}");
    assert!(detail.contains("connected over UDP in"), "{detail}");
    assert!(detail.contains("hung up without a response"), "{detail}");
    assert_eq!(emulator.calls().len(), 1);

    let emulator = Emulator::start("kiosk_e2e.toml", &["block-udp"]);
    let (_, level, detail, fix) = call(&emulator.base_url);
    assert_eq!(level, "WARN", "{detail}");
    assert!(detail.contains("connected over TCP"), "{detail}");
    assert!(fix.contains("UDP 3478"), "{fix}");

    let emulator = Emulator::start("kiosk_e2e.toml", &["block-udp", "refuse-tcp"]);
    let (code, level, detail, fix) = call(&emulator.base_url);
    assert_eq!((code, level.as_str()), (Some(1), "FAIL"), "{detail}");
    assert!(
        detail.contains("no answer to") && detail.contains("connection refused"),
        "{detail}"
    );
    assert!(fix.contains("TCP 443"), "{fix}");

    let closed = support::net::free_port();
    let (code, level, detail, fix) = call(&format!("http://127.0.0.1:{closed}/v1"));
    assert_eq!((code, level.as_str()), (Some(1), "FAIL"), "{detail}");
    assert!(detail.contains(&format!("127.0.0.1:{closed}")), "{detail}");
    assert!(fix.contains("HTTPS_PROXY"), "{fix}");
}

/// A kiosk set to GPT-Live says which Live model it opens and through what (here the key of
/// a development set-up), never that it would run Realtime instead.
#[test]
fn doctor_names_the_live_model_and_how_sessions_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let closed = support::net::free_port();
    let config = write_config(
        d,
        "kiosk-live",
        &format!("http://127.0.0.1:{closed}/v1"),
        "",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let live = text.replace("[openai]\n", "[openai]\napi = \"live\"\n");
    assert_ne!(live, text, "the rig's config has an [openai] table");
    std::fs::write(&config, live).unwrap();
    let (_, checks) = doctor(&mut binary(&config, &["doctor", "--json"]));
    let (level, check) = checks
        .get("openai.api")
        .unwrap_or_else(|| panic!("no openai.api in {checks:#?}"));
    assert_eq!(level, "OK", "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains("GPT-Live: gpt-live-1.1") && detail.contains("development only"),
        "{check}"
    );
}
