//! Serial / USB-CDC scanner reader: a dedicated thread doing blocking reads.
//!
//! Blocking reads with a short timeout on their own thread (not a tokio worker) keep the
//! adapter trivial and never stall the runtime. Unplug is normal life on a kiosk: any read
//! error other than a timeout, or end of file, drops the port, degrades `scanner` in health,
//! logs once per cause, and reopens on a capped schedule until the device is back, at the
//! configured path or at the `/dev/serial/by-id` link that named it when it was last open.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serialport::{DataBits, FlowControl, StopBits, TTYPort};
use tokio::sync::mpsc;

use crate::reconnect::{self, Input, ScannerDevice};
use crate::{ReaderHandle, Scan};
use jarvis_config::{BadgeConfig, Parity};
use jarvis_core::badge::frame::{Discard, FrameParser, FrameRules};
use jarvis_core::health::Health;

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
            rules: cfg.frame_rules(),
        }
    }
}

/// Starts the reader thread (`badge-serial`). See [`crate::spawn_reader`].
pub fn spawn(
    settings: SerialSettings,
    health: Health,
    scans: mpsc::Sender<Scan>,
) -> std::io::Result<ReaderHandle> {
    let shown = settings.path.display().to_string();
    let reader = SerialReader {
        parser: FrameParser::new(settings.rules.clone()),
        settings,
        by_id: None,
    };
    reconnect::spawn("badge-serial", shown, reader, health, scans)
}

/// The port's settings, its frame parser, and the by-id link that named it when last open.
struct SerialReader {
    settings: SerialSettings,
    parser: FrameParser,
    by_id: Option<PathBuf>,
}

impl ScannerDevice for SerialReader {
    type Port = TTYPort;

    fn open(&mut self) -> Result<(TTYPort, String), String> {
        let (port, opened) = open_first(&self.settings, self.by_id.as_deref())?;
        if let Some(link) = by_id_link(&self.settings.by_id_dir, &opened) {
            self.by_id = Some(link);
        }
        Ok((port, opened.display().to_string()))
    }

    fn read(&mut self, port: &mut TTYPort) -> Result<Input, String> {
        let mut buf = [0u8; 512];
        match port.read(&mut buf) {
            Ok(0) => Err("end of file (device closed)".into()),
            Ok(n) => {
                let now = Instant::now();
                Ok(Input {
                    units: n,
                    events: self.parser.push(now, &buf[..n]),
                })
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(Input::default())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn reset(&mut self) -> Option<Discard> {
        self.parser.reset()
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
