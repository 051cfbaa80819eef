//! HID keyboard-wedge reader: a thin evdev loop around [`WedgeDecoder`].
//!
//! The device is grabbed exclusively (EVIOCGRAB) so badge numbers typed by the scanner never
//! reach a console or another program. Decoding lives in [`crate::keymap`] and is
//! tested with synthetic events; this file only finds, grabs, polls and reconnects.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use evdev::Device;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::sync::mpsc;

use crate::keymap::WedgeDecoder;
use crate::reconnect::{self, Input, ScannerDevice};
use crate::{ReaderHandle, Scan};
use jarvis_config::{BadgeConfig, KeyboardLayout};
use jarvis_core::badge::frame::{Discard, FrameRules};
use jarvis_core::health::Health;

/// How long one poll waits: bounds how late a stop request or closed channel is noticed.
const POLL_TIMEOUT_MS: u16 = 100;

/// Everything the HID reader needs, from `[badge]` and `[badge.hid]`.
#[derive(Debug, Clone)]
pub struct HidSettings {
    /// A `/dev/input/...` path (prefer `/dev/input/by-id/...`) or a name substring.
    pub device: String,
    pub layout: KeyboardLayout,
    pub rules: FrameRules,
}

impl HidSettings {
    pub fn from_config(cfg: &BadgeConfig) -> Self {
        HidSettings {
            device: cfg.hid.device.clone(),
            layout: cfg.hid.layout,
            rules: cfg.keyboard_wedge_rules(),
        }
    }
}

/// How `badge.hid.device` selects a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    Path(PathBuf),
    /// Case-insensitive substring of the device name.
    Name(String),
}

impl DeviceSelector {
    pub fn parse(device: &str) -> Self {
        if device.starts_with('/') {
            DeviceSelector::Path(PathBuf::from(device))
        } else {
            DeviceSelector::Name(device.to_lowercase())
        }
    }

    /// True when a device named `name` matches a name selector.
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            DeviceSelector::Name(needle) => name.to_lowercase().contains(needle.as_str()),
            DeviceSelector::Path(_) => false,
        }
    }
}

/// Starts the reader thread (`badge-hid`). See [`crate::spawn_reader`].
pub fn spawn(
    settings: HidSettings,
    health: Health,
    scans: mpsc::Sender<Scan>,
) -> std::io::Result<ReaderHandle> {
    let shown = settings.device.clone();
    let reader = HidReader {
        selector: DeviceSelector::parse(&settings.device),
        decoder: WedgeDecoder::new(settings.layout, settings.rules),
    };
    reconnect::spawn("badge-hid", shown, reader, health, scans)
}

/// The grabbed keyboard wedge and its decoder, kept across reconnects.
struct HidReader {
    selector: DeviceSelector,
    decoder: WedgeDecoder,
}

impl ScannerDevice for HidReader {
    type Port = Device;

    fn open(&mut self) -> Result<(Device, String), String> {
        let (device, path) = open_and_grab(&self.selector)?;
        Ok((device, path.display().to_string()))
    }

    fn read(&mut self, device: &mut Device) -> Result<Input, String> {
        let ready = {
            let mut fds = [PollFd::new(device.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(POLL_TIMEOUT_MS)).map_err(|e| e.to_string())?
        };
        if ready == 0 {
            return Ok(Input::default());
        }
        let events: Vec<evdev::InputEvent> = match device.fetch_events() {
            Ok(events) => events.collect(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Vec::new(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        let now = Instant::now();
        let presses = events
            .iter()
            .filter(|e| e.event_type() == evdev::EventType::KEY && e.value() == 1)
            .count();
        let found = events
            .into_iter()
            .flat_map(|event| self.decoder.feed(event, now))
            .collect();
        Ok(Input {
            units: presses,
            events: found,
        })
    }

    fn reset(&mut self) -> Option<Discard> {
        self.decoder.reset()
    }
}

fn open_and_grab(selector: &DeviceSelector) -> Result<(Device, PathBuf), String> {
    let (mut device, path) = match selector {
        DeviceSelector::Path(path) => (open_path(path)?, path.clone()),
        DeviceSelector::Name(_) => evdev::enumerate()
            .find(|(_, d)| d.name().is_some_and(|n| selector.matches_name(n)))
            .map(|(p, d)| (d, p))
            .ok_or_else(|| {
                "no input device has this name (see `jarvis-kiosk devices`)".to_owned()
            })?,
    };
    device
        .grab()
        .map_err(|e| format!("cannot grab {} exclusively: {e}", path.display()))?;
    device
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((device, path))
}

fn open_path(path: &Path) -> Result<Device, String> {
    Device::open(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parses_paths_and_names() {
        assert_eq!(
            DeviceSelector::parse("/dev/input/by-id/usb-Scanner-event-kbd"),
            DeviceSelector::Path(PathBuf::from("/dev/input/by-id/usb-Scanner-event-kbd"))
        );
        let name = DeviceSelector::parse("Barcode");
        assert!(name.matches_name("Honeywell BARCODE Scanner"));
        assert!(!name.matches_name("AT Translated Set 2 keyboard"));
        assert!(!DeviceSelector::parse("/dev/x").matches_name("/dev/x"));
    }

    #[test]
    fn missing_devices_give_a_clear_error() {
        let err = open_and_grab(&DeviceSelector::Path(PathBuf::from(
            "/dev/input/by-id/absent-scanner",
        )))
        .err()
        .unwrap();
        assert!(err.contains("No such file"), "{err}");
        let err = open_and_grab(&DeviceSelector::Name("no such scanner".into()))
            .err()
            .unwrap();
        assert!(err.contains("jarvis-kiosk devices"), "{err}");
    }

    #[test]
    fn settings_force_line_framing() {
        let cfg = BadgeConfig {
            framing: jarvis_config::Framing::StxEtx,
            ..BadgeConfig::default()
        };
        assert_eq!(
            HidSettings::from_config(&cfg).rules.framing,
            jarvis_core::badge::frame::FrameKind::Line
        );
    }
}
