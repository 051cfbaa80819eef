//! Serial / USB-CDC scanner reader: a dedicated thread doing blocking reads.
//!
//! Blocking reads with a short timeout on their own thread (not a tokio worker) keep the
//! adapter trivial and never stall the runtime. Unplug is normal life on a kiosk: any read
//! error other than a timeout, or end of file, drops the port, degrades `scanner` in health,
//! logs once per cause, and reopens on a capped schedule until the device is back, at the
//! configured path or at the `/dev/serial/by-id` link that named it when it was last open.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serialport::{DataBits, FlowControl, StopBits, TTYPort};
use tokio::sync::mpsc;

use crate::badge::frame::{FrameEvent, FrameParser, FrameRules};
use crate::badge::reconnect::{Flow, Reporter, reopen_delay, sleep_unless};
use crate::badge::{ReaderHandle, Scan};
use crate::config::{BadgeConfig, Parity};
use crate::health::Health;

/// Where udev publishes stable serial names.
pub const BY_ID_DIR: &str = "/dev/serial/by-id";
/// How long one read blocks: bounds how late a stop request or closed channel is noticed.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Everything the serial reader needs, from `[badge]` and `[badge.serial]`.
#[derive(Debug, Clone)]
pub struct SerialSettings {
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
    /// Directory of stable links tried when the configured path is gone (tests use a temp dir).
    pub by_id_dir: PathBuf,
    pub rules: FrameRules,
}

impl SerialSettings {
    pub fn from_config(cfg: &BadgeConfig) -> Self {
        SerialSettings {
            path: cfg.serial.path.clone(),
            baud: cfg.serial.baud,
            parity: cfg.serial.parity,
            stop_bits: cfg.serial.stop_bits,
            data_bits: cfg.serial.data_bits,
            by_id_dir: PathBuf::from(BY_ID_DIR),
            rules: FrameRules::from_config(cfg),
        }
    }
}

/// Starts the reader thread (`badge-serial`). See [`crate::badge::spawn_reader`].
pub fn spawn(
    settings: SerialSettings,
    health: Health,
    scans: mpsc::Sender<Scan>,
) -> std::io::Result<ReaderHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let reporter = Reporter::new(health, settings.path.display().to_string());
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("badge-serial".into())
        .spawn(move || run(&settings, reporter, &scans, &thread_stop))?;
    Ok(ReaderHandle::new(stop, thread))
}

fn run(s: &SerialSettings, mut reporter: Reporter, scans: &mpsc::Sender<Scan>, stop: &AtomicBool) {
    let stopped = || stop.load(Ordering::Relaxed) || scans.is_closed();
    let mut parser = FrameParser::new(s.rules.clone());
    let mut by_id: Option<PathBuf> = None;
    let mut attempt = 0u32;
    while !stopped() {
        match open_first(s, by_id.as_deref()) {
            Ok((port, opened)) => {
                attempt = 0;
                if let Some(link) = by_id_link(&s.by_id_dir, &opened) {
                    by_id = Some(link);
                }
                reporter.up(&opened.display().to_string());
                let end = read_until_error(port, &mut parser, &reporter, scans, &stopped);
                // A half frame must never be glued to the first frame after a re-plug.
                let pending: Vec<FrameEvent> = parser
                    .reset()
                    .map(FrameEvent::Discarded)
                    .into_iter()
                    .collect();
                if reporter.deliver(pending, Instant::now(), scans) == Flow::Closed {
                    return;
                }
                match end {
                    ReadEnd::Stopped => return,
                    ReadEnd::Failed(error) => reporter.down(&error),
                }
            }
            Err(error) => reporter.down(&error),
        }
        if !sleep_unless(reopen_delay(attempt), stopped) {
            return;
        }
        attempt = attempt.saturating_add(1);
    }
}

/// Opens the configured path, or else the by-id link that named the device before.
/// The error reported is the configured path's: that is the one the technician set.
fn open_first(s: &SerialSettings, by_id: Option<&Path>) -> Result<(TTYPort, PathBuf), String> {
    let first = open(s, &s.path).map(|p| (p, s.path.clone()));
    match (first, by_id) {
        (Ok(found), _) => Ok(found),
        (Err(e), Some(link)) if link != s.path => open(s, link)
            .map(|p| (p, link.to_path_buf()))
            .map_err(|_| e),
        (Err(e), _) => Err(e),
    }
}

fn open(s: &SerialSettings, path: &Path) -> Result<TTYPort, String> {
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let stop_bits = if s.stop_bits == 2 {
        StopBits::Two
    } else {
        StopBits::One
    };
    let parity = match s.parity {
        Parity::None => serialport::Parity::None,
        Parity::Odd => serialport::Parity::Odd,
        Parity::Even => serialport::Parity::Even,
    };
    serialport::new(path.to_string_lossy(), s.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity)
        .flow_control(FlowControl::None)
        .timeout(READ_TIMEOUT)
        .open_native()
        .map_err(|e| e.description)
}

/// The link in `dir` that resolves to the same device node as `opened`, if any.
pub fn by_id_link(dir: &Path, opened: &Path) -> Option<PathBuf> {
    let target = std::fs::canonicalize(opened).ok()?;
    let mut links: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| std::fs::canonicalize(p).is_ok_and(|t| t == target))
        .collect();
    links.sort();
    links.into_iter().next()
}

enum ReadEnd {
    Stopped,
    Failed(String),
}

fn read_until_error(
    mut port: TTYPort,
    parser: &mut FrameParser,
    reporter: &Reporter,
    scans: &mpsc::Sender<Scan>,
    stopped: &impl Fn() -> bool,
) -> ReadEnd {
    let mut buf = [0u8; 512];
    loop {
        if stopped() {
            return ReadEnd::Stopped;
        }
        match port.read(&mut buf) {
            Ok(0) => return ReadEnd::Failed("end of file (device closed)".into()),
            Ok(n) => {
                let now = Instant::now();
                let events = parser.push(now, &buf[..n]);
                if reporter.deliver(events, now, scans) == Flow::Closed {
                    return ReadEnd::Stopped;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return ReadEnd::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_id_link_finds_the_link_to_the_same_node() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("ttyACM0");
        std::fs::write(&node, b"").unwrap();
        let other = dir.path().join("ttyACM1");
        std::fs::write(&other, b"").unwrap();
        let by_id = dir.path().join("by-id");
        std::fs::create_dir(&by_id).unwrap();
        std::os::unix::fs::symlink(&other, by_id.join("usb-Other-if00")).unwrap();
        std::os::unix::fs::symlink(&node, by_id.join("usb-Scanner_123-if00")).unwrap();
        assert_eq!(
            by_id_link(&by_id, &node),
            Some(by_id.join("usb-Scanner_123-if00"))
        );
        assert_eq!(by_id_link(&dir.path().join("absent"), &node), None);
        assert_eq!(by_id_link(&by_id, &dir.path().join("gone")), None);
    }

    #[test]
    fn settings_come_from_config() {
        let s = SerialSettings::from_config(&BadgeConfig::default());
        assert_eq!(s.path, PathBuf::from("/dev/jarvis-scanner"));
        assert_eq!(s.baud, 9600);
        assert_eq!(s.by_id_dir, PathBuf::from(BY_ID_DIR));
    }

    #[test]
    fn opening_a_missing_port_names_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let s = SerialSettings {
            path: dir.path().join("ttyNONE"),
            ..SerialSettings::from_config(&BadgeConfig::default())
        };
        let err = open_first(&s, None).err().unwrap();
        assert!(err.contains("No such file"), "{err}");
    }
}
