//! End to end: a badge on a pty scanner -> the real daemon -> the local Realtime emulator over
//! real WebRTC on loopback -> two turns -> `end_session` -> the session ended in the local store
//! with its cost equal to the scenario's usage priced by the shipped table, exactly.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use jarvis_kiosk::money::NanoUsd;
use jarvis_kiosk::store::{SessionSummary, Store};
use support::rig::{Emulator, Microphone, SOUND_CARD_TOML, Scanner, sound_card_env};
use support::{NotifySocket, terminate};

struct Kiosk {
    dir: tempfile::TempDir,
    _notify: NotifySocket,
    child: Child,
    _mic: Microphone,
    scanner: Scanner,
}

impl Kiosk {
    fn start(emulator: &Emulator, extra: &str) -> Kiosk {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("openai-key"), "sk-test-e2e\n").unwrap();
        let scanner = Scanner::plug(&d.join("ttyBADGE"));
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[kiosk]\nid = \"kiosk-e2e\"\n[storage]\npath = \"{d}/kiosk.db\"\n[health]\nruntime_dir = \"{d}/run\"\n\
                 [badge]\nunknown_member = \"guest\"\n[badge.serial]\npath = \"{d}/ttyBADGE\"\n\
                 [openai]\nbase_url = \"{url}\"\napi_key_file = \"{d}/openai-key\"\nconnect_timeout_s = 5\n{SOUND_CARD_TOML}{extra}",
                d = d.display(),
                url = emulator.base_url,
            ),
        )
        .unwrap();
        let mic = Microphone::start(d, Vec::new());
        let notify = NotifySocket::bind(d);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"));
        cmd.args(["--config", config.to_str().unwrap(), "--log", "json", "run"])
            .env("NOTIFY_SOCKET", &notify.path)
            .env("RUST_LOG", "info,str0m=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("daemon.log")).unwrap());
        sound_card_env(&mut cmd, &mic, &d.join("speaker.raw"));
        let child = cmd.spawn().unwrap();
        notify
            .wait_for("READY=1", Duration::from_secs(20))
            .expect("daemon READY");
        Kiosk {
            dir,
            _notify: notify,
            child,
            _mic: mic,
            scanner,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Waits for the first session to end and returns it.
    fn ended_session(&self, limit: Duration) -> SessionSummary {
        let deadline = Instant::now() + limit;
        let db = self.dir.path().join("kiosk.db");
        while Instant::now() < deadline {
            if let Ok(store) = Store::open_existing(&db)
                && let Ok(sessions) = store.recent_sessions(5)
                && let Some(s) = sessions.into_iter().find(|s| s.end_reason.is_some())
            {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no session ended within {limit:?}; daemon log:\n{}",
            self.log()
        );
    }

    fn stop(mut self) -> String {
        let status = terminate(&mut self.child, Duration::from_secs(5)).expect("stops within 5 s");
        let log = self.log();
        assert!(status.success(), "{status:?}\n{log}");
        log
    }
}

fn db(k: &Kiosk) -> std::path::PathBuf {
    Path::new(k.dir.path()).join("kiosk.db")
}

/// Nano-dollars per token of the shipped table (reference §9), written out independently.
mod price {
    pub const TEXT_IN: u64 = 4_000;
    pub const CACHED: u64 = 400;
    pub const TEXT_OUT: u64 = 16_000;
    pub const AUDIO_IN: u64 = 32_000;
    pub const AUDIO_OUT: u64 = 64_000;
    /// gpt-4o-mini-transcribe: audio in $3 / 1M, text out $5 / 1M.
    pub const ASR_AUDIO_IN: u64 = 3_000;
    pub const ASR_TEXT_OUT: u64 = 5_000;
}

#[test]
fn scan_converse_goodbye_and_exact_cost() {
    let emulator = Emulator::start("timer.toml", &[]);
    let kiosk = Kiosk::start(&emulator, "");
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

    use price::*;
    // timer.toml: turn 1, turn 2 (says goodbye and calls end_session), transcription of turn 1.
    let turn1 = 100 * TEXT_IN + 20 * AUDIO_IN + 5 * TEXT_OUT + 40 * AUDIO_OUT;
    let turn2 = 50 * TEXT_IN + 100 * CACHED + 30 * AUDIO_IN + 5 * TEXT_OUT + 30 * AUDIO_OUT;
    let asr = 20 * ASR_AUDIO_IN + 4 * ASR_TEXT_OUT;
    assert_eq!(s.responses, 2, "{s:?}");
    assert_eq!(s.cost.transcription_nusd, NanoUsd(asr));
    assert_eq!(s.cost.model_total(), NanoUsd(turn1 + turn2), "{s:?}");
    assert_eq!(s.total_nusd, NanoUsd(turn1 + turn2 + asr));
    assert_eq!(s.tokens.output_audio, 70);

    let store = Store::open_existing(&db(&kiosk)).unwrap();
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
