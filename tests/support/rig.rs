//! A whole kiosk without hardware, for end-to-end tests: a pty scanner, the virtual ALSA sound
//! card paced in real time, and the local Realtime emulator on a thread of its own.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jarvis_realtime_emulator::faults::Faults;
use jarvis_realtime_emulator::record::CallRecord;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::{CallLog, EmulatorConfig};
use jarvis_store::{SessionSummary, Store};

use super::room::{Room, RoomSpec};
use super::{NotifySocket, terminate};

/// A badge scanner: a raw pty whose slave is reachable through a stable symlink.
pub struct Scanner {
    master: OwnedFd,
    pub link: PathBuf,
}

impl Scanner {
    pub fn plug(link: &Path) -> Scanner {
        let mut t = {
            let p = nix::pty::openpty(None, None).unwrap();
            nix::sys::termios::tcgetattr(&p.slave).unwrap()
        };
        nix::sys::termios::cfmakeraw(&mut t);
        let p = nix::pty::openpty(None, Some(&t)).unwrap();
        let slave = nix::unistd::ttyname(&p.slave).unwrap();
        // Keep the slave open too, so the pty survives until the daemon opens it.
        std::mem::forget(p.slave);
        let tmp = link.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&slave, &tmp).unwrap();
        std::fs::rename(&tmp, link).unwrap();
        Scanner {
            master: p.master,
            link: link.to_path_buf(),
        }
    }

    /// Sends one badge frame, as a USB-CDC reader does (CR LF terminated).
    pub fn scan(&self, badge: &str) {
        nix::unistd::write(&self.master, format!("{badge}\r\n").as_bytes()).unwrap();
    }
}

/// The microphone of the virtual card: a FIFO fed with S16 mono 48 kHz in real time.
pub struct Microphone {
    pub fifo: PathBuf,
    stop: Arc<AtomicBool>,
    queued: Arc<Mutex<VecDeque<u8>>>,
}

/// Bytes per second of S16_LE mono 48 kHz.
pub const MIC_BYTES_PER_SEC: usize = 96_000;

impl Microphone {
    /// Plays `audio` (S16_LE mono 48 kHz bytes), then whatever [`Microphone::say`] queues, and
    /// silence in between, paced in 20 ms chunks.
    pub fn start(dir: &Path, audio: Vec<u8>) -> Microphone {
        let fifo = dir.join("mic.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Held read-write: opens never block and probe opens by cpal don't cut the writer off.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let queued = Arc::new(Mutex::new(VecDeque::from(audio)));
        let source = queued.clone();
        std::thread::spawn(move || {
            let chunk = MIC_BYTES_PER_SEC / 50;
            let start = Instant::now();
            let mut sent = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let mut piece: Vec<u8> = {
                    let mut q = source.lock().unwrap();
                    let n = chunk.min(q.len());
                    q.drain(..n).collect()
                };
                piece.resize(chunk, 0);
                if f.write_all(&piece).is_err() {
                    return;
                }
                sent += piece.len();
                let due = start + Duration::from_secs_f64(sent as f64 / MIC_BYTES_PER_SEC as f64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
        Microphone { fifo, stop, queued }
    }

    /// Queues `audio` (S16_LE mono 48 kHz bytes) to be spoken after what is already queued.
    pub fn say(&self, audio: &[u8]) {
        self.queued.lock().unwrap().extend(audio);
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the daemon's virtual card is wired to.
pub enum SoundCard {
    /// A microphone FIFO fed by [`Microphone`], a speaker paced by `pv` into `speaker.raw`.
    Paced(Microphone),
    /// The speaker played back into the microphone through a simulated room.
    Room(Room),
}

impl SoundCard {
    /// The ALSA environment of the virtual card for a daemon process in `dir`.
    pub fn env(&self, cmd: &mut Command, dir: &Path) {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asound-file.conf");
        cmd.env("ALSA_CONFIG_PATH", conf);
        match self {
            SoundCard::Paced(mic) => cmd.env("KIOSK_AUDIO_IN", &mic.fifo).env(
                "KIOSK_AUDIO_OUT",
                // S16_LE stereo 48 kHz = 192000 B/s: pv paces the speaker in real time.
                format!(
                    "|exec pv -q -L 192000 -B 4096 > {}",
                    dir.join("speaker.raw").display()
                ),
            ),
            SoundCard::Room(room) => cmd
                .env("KIOSK_AUDIO_IN", &room.mic_fifo)
                .env("KIOSK_AUDIO_OUT", &room.speaker_fifo),
        };
    }
}

/// The config keys that make the daemon open the virtual card in the formats above.
pub const SOUND_CARD_TOML: &str = "[audio]\ninput_sample_rate = 48000\ninput_channels = 1\n\
input_format = \"i16\"\noutput_sample_rate = 48000\noutput_channels = 2\nperiod_frames = 960\n";

/// The local Realtime emulator (the emulator crate, on a runtime of its own so the daemon under
/// test talks to it over real sockets), running until dropped.
pub struct Emulator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub base_url: String,
    log: CallLog,
}

impl Emulator {
    pub fn start(scenario: &str, faults: &[&str]) -> Emulator {
        Emulator::start_on("127.0.0.1:0", scenario, faults)
    }

    /// [`Emulator::start`] listening on `listen` (`[::1]:0` for IPv6 loopback).
    pub fn start_on(listen: &str, scenario: &str, faults: &[&str]) -> Emulator {
        let listen: std::net::SocketAddr = listen.parse().unwrap();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/scenarios")
            .join(scenario);
        let scenario = Scenario::load(&scenario).unwrap();
        let faults: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
        let faults = Faults::parse(&faults).unwrap();
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let emu = jarvis_realtime_emulator::Emulator::start(EmulatorConfig {
                    listen,
                    scenario,
                    faults,
                })
                .await
                .unwrap();
                url_tx.send((emu.base_url(), emu.call_log())).unwrap();
                let _ = stopped.await;
            });
        });
        let (base_url, log) = url_rx.recv().expect("the emulator did not start");
        Emulator {
            stop: Some(stop),
            thread: Some(thread),
            base_url,
            log,
        }
    }

    /// Every call so far, as the emulator recorded it.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.log.calls()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes `{dir}/config.toml` for a kiosk on the virtual devices above (scanner at
/// `{dir}/ttyBADGE`) and the Realtime emulator at `base_url`; `extra` TOML is appended.
pub fn write_config(dir: &Path, kiosk_id: &str, base_url: &str, extra: &str) -> PathBuf {
    let key = dir.join("openai-key");
    std::fs::write(&key, "sk-test-e2e\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let openai = format!(
        "base_url = \"{base_url}\"\napi_key_file = \"{}\"\n",
        key.display()
    );
    write_config_with(dir, kiosk_id, &openai, extra)
}

/// [`write_config`] with the `[openai]` keys given (a token broker instead of a key file).
pub fn write_config_with(dir: &Path, kiosk_id: &str, openai: &str, extra: &str) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[kiosk]\nid = \"{kiosk_id}\"\n[storage]\npath = \"{d}/kiosk.db\"\n[health]\nruntime_dir = \"{d}/run\"\n\
             [badge]\nunknown_member = \"guest\"\n[badge.serial]\npath = \"{d}/ttyBADGE\"\n\
             [openai]\n{openai}connect_timeout_s = 5\n{SOUND_CARD_TOML}{extra}",
            d = dir.display(),
        ),
    )
    .unwrap();
    config
}

/// Starts the daemon on `dir/config.toml` logging as `log` (`json`: read back by
/// [`Kiosk::log`]; `journald`: to the journal socket) and waits for READY.
fn spawn_daemon(dir: &Path, card: &SoundCard, env: &[(&str, &str)], log: &str) -> Child {
    // A restart binds afresh: the previous socket is being drained by a thread of its own.
    let _ = std::fs::remove_file(dir.join("notify.sock"));
    let notify = NotifySocket::bind(dir);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"));
    cmd.arg("--config")
        .arg(dir.join("config.toml"))
        .args(["--log", log, "run"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("RUST_LOG", "info,str0m=warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).unwrap());
    card.env(&mut cmd, dir);
    let child = cmd.spawn().unwrap();
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("daemon READY");
    notify.drain_in_background();
    child
}

/// The real daemon, configured for the virtual devices above and a Realtime emulator.
pub struct Kiosk {
    pub dir: tempfile::TempDir,
    child: Child,
    pub card: SoundCard,
    pub scanner: Scanner,
}

impl Kiosk {
    pub fn start(emulator: &Emulator, kiosk_id: &str, extra: &str) -> Kiosk {
        Kiosk::start_with_env(emulator, kiosk_id, extra, &[])
    }

    /// `env` adds `JARVIS_KIOSK__*` overrides (for keys of sections the base config has).
    pub fn start_with_env(
        emulator: &Emulator,
        kiosk_id: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Kiosk {
        Kiosk::start_at(&emulator.base_url, kiosk_id, extra, env)
    }

    /// A kiosk whose `openai.base_url` is `base_url` (any Realtime stand-in, not only ours).
    pub fn start_at(base_url: &str, kiosk_id: &str, extra: &str, env: &[(&str, &str)]) -> Kiosk {
        Kiosk::start_configured(env, |d| {
            write_config(d, kiosk_id, base_url, extra);
        })
    }

    /// A kiosk whose config `write(dir)` writes (see [`write_config_with`]).
    pub fn start_configured(env: &[(&str, &str)], write: impl FnOnce(&Path)) -> Kiosk {
        Kiosk::start_logging("json", env, write)
    }

    /// [`Kiosk::start_configured`] with the daemon's `--log` format.
    pub fn start_logging(log: &str, env: &[(&str, &str)], write: impl FnOnce(&Path)) -> Kiosk {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let scanner = Scanner::plug(&d.join("ttyBADGE"));
        write(d);
        let card = SoundCard::Paced(Microphone::start(d, Vec::new()));
        let child = spawn_daemon(d, &card, env, log);
        let kiosk = Kiosk {
            dir,
            child,
            card,
            scanner,
        };
        kiosk.wait_speaker_measured();
        kiosk
    }

    /// A kiosk whose speaker is heard by its own microphone through `room` (a steady 20 ms
    /// device: nothing to wait for before scanning).
    /// `env` adds `JARVIS_KIOSK__*` overrides (`…__OPENAI__API=live` for a GPT-Live kiosk).
    pub fn start_in_room(
        base_url: &str,
        kiosk_id: &str,
        extra: &str,
        room: RoomSpec,
        env: &[(&str, &str)],
    ) -> Kiosk {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let scanner = Scanner::plug(&d.join("ttyBADGE"));
        write_config(d, kiosk_id, base_url, extra);
        let card = SoundCard::Room(Room::start(d, room));
        let child = spawn_daemon(d, &card, env, "json");
        Kiosk {
            dir,
            child,
            card,
            scanner,
        }
    }

    /// The paced microphone (not in a room).
    pub fn mic(&self) -> &Microphone {
        match &self.card {
            SoundCard::Paced(mic) => mic,
            SoundCard::Room(_) => panic!("a kiosk in a room is spoken to through its room"),
        }
    }

    /// The room (a kiosk started with [`Kiosk::start_in_room`]).
    pub fn room(&self) -> &Room {
        match &self.card {
            SoundCard::Room(room) => room,
            SoundCard::Paced(_) => panic!("this kiosk is not in a room"),
        }
    }

    /// The speaker is a `pv` sink that drains 100 ms at once, which the daemon measures from
    /// a second after opening the device (see `jarvis_audio::burst`). Tests scan at once, so
    /// they wait for that measure, as any kiosk up for more than a second has it.
    fn wait_speaker_measured(&self) {
        super::wait_until(
            "the daemon to measure the speaker's 100 ms bursts",
            Duration::from_secs(10),
            || {
                self.status().filter(|s| {
                    s["health"]["gauges"]["audio_device_burst_ms"]
                        .as_u64()
                        .is_some_and(|ms| ms >= 100)
                })
            },
        );
    }

    /// SIGKILLs the daemon (all a power cut is to the process: no signal handler, no flush)
    /// and starts it again on the same directory, store, devices and `env`. The killed
    /// daemon's log is kept as `daemon-killed.log`.
    pub fn kill_and_restart(&mut self, env: &[(&str, &str)]) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let d = self.dir.path();
        std::fs::rename(d.join("daemon.log"), d.join("daemon-killed.log")).unwrap();
        self.child = spawn_daemon(d, &self.card, env, "json");
    }

    /// A `jarvis-kiosk` command against this kiosk's config (`status`, `doctor`...).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"));
        c.arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args);
        c
    }

    /// What the virtual speaker played: S16_LE stereo 48 kHz.
    pub fn speaker_raw(&self) -> PathBuf {
        self.dir.path().join("speaker.raw")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("kiosk.db")
    }

    /// Every event the kiosk recorded, in order, synced or not.
    pub fn recorded(&self) -> Vec<jarvis_core::events::EventPayload> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT payload FROM outbox ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
            .collect()
    }

    /// The causes of the scans refused so far, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.recorded()
            .into_iter()
            .filter_map(|p| match p {
                jarvis_core::events::EventPayload::ScanRefused { cause } => Some(cause),
                _ => None,
            })
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Waits for the first session to end and returns it.
    pub fn ended_session(&self, limit: Duration) -> SessionSummary {
        let deadline = Instant::now() + limit;
        let db = self.db();
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

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        super::send_signal(&self.child, signal);
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// `status --json` through the daemon's socket (`None` while it does not answer).
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = self.command(&["status", "--json"]).output().ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits for `needle` in the daemon's log.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> String {
        super::wait_until(&format!("`{needle}` in the daemon log"), limit, || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
    }

    /// Stops the daemon with `signal` (SIGTERM, SIGINT, SIGQUIT) and returns its log.
    /// Stops the daemon with `signal` and returns the session `session_id` as the store
    /// kept it, with the daemon's log.
    pub fn stop_and_find(
        &mut self,
        signal: nix::sys::signal::Signal,
        session_id: &str,
    ) -> (SessionSummary, String) {
        let db = self.db();
        let log = self.stop_with(signal);
        let s = Store::open_existing(&db)
            .unwrap()
            .recent_sessions(5)
            .unwrap()
            .into_iter()
            .find(|s| s.session_id.to_string() == session_id)
            .unwrap_or_else(|| panic!("{signal}: no session {session_id}:\n{log}"));
        (s, log)
    }

    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> String {
        super::send_signal(&self.child, signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within 5 s of {signal}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = self.log();
        assert!(status.success(), "{status:?}\n{log}");
        log
    }

    pub fn stop(mut self) -> String {
        let status = terminate(&mut self.child, Duration::from_secs(5)).expect("stops within 5 s");
        let log = self.log();
        assert!(status.success(), "{status:?}\n{log}");
        log
    }
}

/// A test that fails leaves no daemon behind: once its directory (and the microphone FIFO in it)
/// is gone, an orphan would spin on the dead FIFO and load the machine for every later test.
impl Drop for Kiosk {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
