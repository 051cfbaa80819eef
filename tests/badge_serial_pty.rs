//! The serial reader against a REAL pty (virtual-devices.md section 2): frames in chunks,
//! garbage, overlong input, unplug mid-frame, re-plug via the same link or the by-id link.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jarvis_badge::serial::{self, SerialSettings};
use jarvis_badge::{
    COUNTER_DEVICE_ERRORS, COUNTER_DISCARDED, COUNTER_INPUT, COUNTER_RECONNECTS, COUNTER_SCANS,
    GAUGE_LAST_SCAN_MS, HEALTH_ADAPTER, ReaderHandle, Scan,
};
use jarvis_config::{Charset, LeadingZeros, LetterCase, Parity};
use jarvis_core::badge::frame::{DEFAULT_IDLE_RESET, FrameKind, FrameRules};
use jarvis_core::health::{AdapterState, Health};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// A plugged virtual scanner: the master side is what the "scanner" writes to.
struct Pty {
    master: OwnedFd,
    /// Kept open to ask how much input the reader has not consumed yet.
    slave: OwnedFd,
    links: Vec<PathBuf>,
}

impl Pty {
    /// "Plugs" a scanner: a new raw pty, exposed under each link (atomically, like udev).
    fn plug(links: &[&Path]) -> Pty {
        let mut t = {
            let p = nix::pty::openpty(None, None).unwrap();
            nix::sys::termios::tcgetattr(&p.slave).unwrap()
        };
        nix::sys::termios::cfmakeraw(&mut t);
        let p = nix::pty::openpty(None, Some(&t)).unwrap();
        let slave = nix::unistd::ttyname(&p.slave).unwrap();
        for link in links {
            let tmp = link.with_extension("new");
            std::os::unix::fs::symlink(&slave, &tmp).unwrap();
            std::fs::rename(&tmp, link).unwrap();
        }
        Pty {
            master: p.master,
            slave: p.slave,
            links: links.iter().map(|l| l.to_path_buf()).collect(),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut done = 0;
        while done < bytes.len() {
            done += nix::unistd::write(&self.master, &bytes[done..]).unwrap();
        }
    }

    /// "Unplugs": the links disappear and the device node goes away.
    fn unplug(self) {
        for link in &self.links {
            let _ = std::fs::remove_file(link);
        }
        drop(self.slave);
        drop(self.master);
    }
}

fn rules() -> FrameRules {
    FrameRules {
        framing: FrameKind::Line,
        strip_prefix: String::new(),
        strip_suffix: String::new(),
        charset: Charset::Digits,
        case: LetterCase::Upper,
        leading_zeros: LeadingZeros::Keep,
        min_len: 4,
        max_len: 32,
        idle_reset: DEFAULT_IDLE_RESET,
    }
}

fn settings(path: &Path, by_id_dir: &Path, rules: FrameRules) -> SerialSettings {
    SerialSettings {
        path: path.to_path_buf(),
        baud: 9600,
        parity: Parity::None,
        stop_bits: 1,
        data_bits: 8,
        by_id_dir: by_id_dir.to_path_buf(),
        rules,
    }
}

struct Rig {
    dir: tempfile::TempDir,
    health: Health,
    rx: mpsc::Receiver<Scan>,
    reader: ReaderHandle,
}

fn start(rules: FrameRules) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let by_id = dir.path().join("by-id");
    std::fs::create_dir(&by_id).unwrap();
    let health = Health::new("test-kiosk", 0);
    let (tx, rx) = mpsc::channel(16);
    let reader = serial::spawn(
        settings(&dir.path().join("ttyACM0"), &by_id, rules),
        health.clone(),
        tx,
    )
    .unwrap();
    Rig {
        dir,
        health,
        rx,
        reader,
    }
}

impl Rig {
    fn link(&self) -> PathBuf {
        self.dir.path().join("ttyACM0")
    }

    fn by_id_link(&self) -> PathBuf {
        self.dir
            .path()
            .join("by-id")
            .join("usb-Acme_Scanner_42-if00")
    }

    async fn next_badge(&mut self) -> String {
        let scan = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("no scan within 10 s")
            .expect("reader closed the channel");
        scan.badge.expose().to_owned()
    }

    /// Waits until the reader has taken `total` bytes from the scanner since the start: the
    /// kernel hands a pty's bytes to the reader asynchronously, so only the reader can tell.
    async fn wait_read(&self, total: u64) {
        let deadline = Instant::now() + WAIT;
        while self.counter(COUNTER_INPUT) < total {
            assert!(
                Instant::now() < deadline,
                "the reader took {} of {total} bytes",
                self.counter(COUNTER_INPUT)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the scanner has failed `n` more opens or reads than `since`.
    async fn wait_device_errors(&self, since: u64, n: u64) {
        let deadline = Instant::now() + WAIT;
        while self.counter(COUNTER_DEVICE_ERRORS) < since + n {
            assert!(Instant::now() < deadline, "fewer than {n} device errors");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the scanner's health matches `want`.
    async fn wait_state(&self, want: impl Fn(&AdapterState) -> bool) -> AdapterState {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(state) = self.health.snapshot().adapters.get(HEALTH_ADAPTER)
                && want(state)
            {
                return state.clone();
            }
            assert!(
                Instant::now() < deadline,
                "scanner state never matched: {:?}",
                self.health.snapshot().adapters
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn counter(&self, name: &str) -> u64 {
        self.health
            .snapshot()
            .counters
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

fn degraded(s: &AdapterState) -> bool {
    matches!(s, AdapterState::Degraded(_))
}

fn up(s: &AdapterState) -> bool {
    *s == AdapterState::Up
}

#[tokio::test]
async fn frames_in_chunks_garbage_and_overlong_input() {
    let mut rig = start(rules());
    let pty = Pty::plug(&[&rig.link()]);
    rig.wait_state(up).await;
    let mut written = 0;
    for chunk in [&b"00"[..], b"1234", b"5678\r", b"\n0087654321\r\n"] {
        pty.write(chunk);
        written += chunk.len() as u64;
        // Each chunk is read on its own before the next is written.
        rig.wait_read(written).await;
    }
    assert_eq!(rig.next_badge().await, "0012345678");
    assert_eq!(rig.next_badge().await, "0087654321");
    pty.write(b"\xff\xfe\xfd\r\n12AB34\r\n");
    pty.write(&[b'9'; 300]);
    pty.write(b"\r\n1111\n2222\r\x023333\x03\r\n");
    assert_eq!(rig.next_badge().await, "1111");
    assert_eq!(rig.next_badge().await, "2222");
    assert_eq!(rig.next_badge().await, "3333");
    assert_eq!(
        rig.counter(COUNTER_DISCARDED),
        3,
        "not-UTF-8, bad char, overlong"
    );
    assert_eq!(rig.counter(COUNTER_SCANS), 5);
    assert!(
        rig.health
            .snapshot()
            .gauges
            .contains_key(GAUGE_LAST_SCAN_MS)
    );
    pty.unplug();
    rig.reader.stop();
}

#[tokio::test]
async fn unplug_mid_frame_does_not_merge_and_replug_at_the_same_link_resumes() {
    let mut rig = start(rules());
    let pty = Pty::plug(&[&rig.link()]);
    rig.wait_state(up).await;
    pty.write(b"4444\r\n");
    assert_eq!(rig.next_badge().await, "4444");
    pty.write(b"0012");
    rig.wait_read(b"4444\r\n0012".len() as u64).await;
    let errors_before = rig.health.snapshot().last_errors.len();
    let device_errors = rig.counter(COUNTER_DEVICE_ERRORS);
    pty.unplug();
    let state = rig.wait_state(degraded).await;
    let AdapterState::Degraded(reason) = state else {
        unreachable!()
    };
    let prefix = format!("disconnected: {}: ", rig.link().display());
    assert!(reason.starts_with(&prefix), "{reason}");
    // Several reopen attempts fail while unplugged (the read, then three reopens); each cause
    // is logged once.
    rig.wait_device_errors(device_errors, 4).await;
    let errors = rig.health.snapshot().last_errors;
    let mut unique = errors.clone();
    unique.dedup();
    assert_eq!(errors, unique, "same cause logged twice: {errors:?}");
    // "Broken pipe" on the read, then "No such file or directory" on every reopen.
    assert_eq!(errors.len() - errors_before, 2, "{errors:?}");

    let pty = Pty::plug(&[&rig.link()]);
    pty.write(b"87654321\r\n");
    assert_eq!(rig.next_badge().await, "87654321", "half frame merged");
    rig.wait_state(up).await;
    assert_eq!(rig.counter(COUNTER_RECONNECTS), 1);
    assert_eq!(rig.counter(COUNTER_DISCARDED), 1, "the cut-off half frame");
    pty.unplug();
    rig.reader.stop();
}

#[tokio::test]
async fn replug_under_another_name_is_found_through_its_by_id_link() {
    let mut rig = start(rules());
    let pty = Pty::plug(&[&rig.link(), &rig.by_id_link()]);
    rig.wait_state(up).await;
    pty.write(b"1234\r\n");
    assert_eq!(rig.next_badge().await, "1234");
    pty.unplug();
    rig.wait_state(degraded).await;
    // The device comes back as another ttyACM: only its by-id link is the same.
    let pty = Pty::plug(&[&rig.by_id_link()]);
    pty.write(b"5678\r\n");
    assert_eq!(rig.next_badge().await, "5678");
    rig.wait_state(up).await;
    pty.unplug();
    rig.reader.stop();
}

#[tokio::test]
async fn a_scanner_missing_at_start_degrades_then_works_when_plugged() {
    let mut rig = start(FrameRules {
        framing: FrameKind::StxEtx,
        ..rules()
    });
    let state = rig.wait_state(degraded).await;
    assert!(
        state.to_string().contains("No such file or directory"),
        "{state}"
    );
    let pty = Pty::plug(&[&rig.link()]);
    pty.write(b"noise\x0299887766\x03\x02112");
    pty.write(b"233\x03");
    assert_eq!(rig.next_badge().await, "99887766");
    assert_eq!(rig.next_badge().await, "112233");
    assert_eq!(rig.counter(COUNTER_DISCARDED), 1, "the noise before STX");
    pty.unplug();
    rig.reader.stop();
}

#[tokio::test]
async fn the_reader_ends_when_the_receiver_is_dropped() {
    let rig = start(rules());
    let pty = Pty::plug(&[&rig.link()]);
    rig.wait_state(up).await;
    drop(rig.rx);
    let deadline = Instant::now() + WAIT;
    while !rig.reader.is_finished() {
        assert!(Instant::now() < deadline, "reader thread still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pty.unplug();
}

#[tokio::test]
async fn stop_is_prompt_while_the_device_is_missing() {
    let rig = start(rules());
    rig.wait_state(degraded).await;
    // Stop while the reader waits between reopen attempts.
    rig.wait_device_errors(0, 2).await;
    let stopped = tokio::task::spawn_blocking(move || rig.reader.stop());
    tokio::time::timeout(WAIT, stopped).await.unwrap().unwrap();
}
