//! What scanners this box has: serial ports and input devices, for `jarvis-kiosk devices`.
//!
//! A technician plugging a scanner needs the stable name to put in the config
//! (`/dev/serial/by-id/...`, `/dev/input/by-id/...`), not just `/dev/ttyACM0`, so every
//! entry carries the by-id links that resolve to it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::serial::BY_ID_DIR;

/// Where udev publishes stable input device names.
pub const INPUT_BY_ID_DIR: &str = "/dev/input/by-id";

/// USB identity of a serial port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbIdentity {
    pub vid: u16,
    pub pid: u16,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

/// One serial port, with every by-id link to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialPortEntry {
    pub path: PathBuf,
    /// `usb`, `pci`, `bluetooth`, `unknown`, or `link` (only known through a by-id link).
    pub kind: String,
    pub usb: Option<UsbIdentity>,
    pub by_id: Vec<PathBuf>,
}

/// One evdev input device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputDeviceEntry {
    pub path: PathBuf,
    pub name: Option<String>,
    pub by_id: Vec<PathBuf>,
    /// Has Enter and digit keys: could be a keyboard-wedge scanner.
    pub keyboard: bool,
}

/// Everything `devices` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScannerDeviceList {
    pub serial: Vec<SerialPortEntry>,
    pub input: Vec<InputDeviceEntry>,
    /// Enumeration failures worth showing (they do not stop the listing).
    pub problems: Vec<String>,
}

/// Lists the devices on this machine.
pub fn list_devices() -> ScannerDeviceList {
    let mut list = ScannerDeviceList::default();
    match serialport::available_ports() {
        Ok(ports) => {
            list.serial = serial_entries(ports, &links_by_target(Path::new(BY_ID_DIR)));
        }
        Err(e) => {
            list.problems.push(format!("cannot list serial ports: {e}"));
            list.serial = serial_entries(Vec::new(), &links_by_target(Path::new(BY_ID_DIR)));
        }
    }
    let input_links = links_by_target(Path::new(INPUT_BY_ID_DIR));
    list.input = evdev::enumerate()
        .map(|(path, device)| {
            let keyboard = device.supported_keys().is_some_and(|keys| {
                keys.contains(evdev::KeyCode::KEY_ENTER) && keys.contains(evdev::KeyCode::KEY_1)
            });
            InputDeviceEntry {
                by_id: links_to(&input_links, &path),
                name: device.name().map(str::to_owned),
                path,
                keyboard,
            }
        })
        .collect();
    list.input.sort_by(|a, b| a.path.cmp(&b.path));
    list
}

/// Maps each resolved target to the links in `dir` that point to it (sorted).
pub fn links_by_target(dir: &Path) -> BTreeMap<PathBuf, Vec<PathBuf>> {
    let mut map: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return map;
    };
    for link in entries.filter_map(Result::ok).map(|e| e.path()) {
        if let Ok(target) = std::fs::canonicalize(&link) {
            map.entry(target).or_default().push(link);
        }
    }
    for links in map.values_mut() {
        links.sort();
    }
    map
}

fn links_to(links: &BTreeMap<PathBuf, Vec<PathBuf>>, path: &Path) -> Vec<PathBuf> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    links.get(&key).cloned().unwrap_or_default()
}

/// Joins enumerated ports with by-id links; links to ports the enumeration missed (ptys,
/// ports of drivers serialport does not know) become entries of kind `link`.
pub fn serial_entries(
    ports: Vec<serialport::SerialPortInfo>,
    links: &BTreeMap<PathBuf, Vec<PathBuf>>,
) -> Vec<SerialPortEntry> {
    let mut out: Vec<SerialPortEntry> = ports
        .into_iter()
        .map(|p| {
            let path = PathBuf::from(&p.port_name);
            let (kind, usb) = match p.port_type {
                serialport::SerialPortType::UsbPort(u) => (
                    "usb",
                    Some(UsbIdentity {
                        vid: u.vid,
                        pid: u.pid,
                        serial_number: u.serial_number,
                        manufacturer: u.manufacturer,
                        product: u.product,
                    }),
                ),
                serialport::SerialPortType::PciPort => ("pci", None),
                serialport::SerialPortType::BluetoothPort => ("bluetooth", None),
                serialport::SerialPortType::Unknown => ("unknown", None),
            };
            SerialPortEntry {
                by_id: links_to(links, &path),
                path,
                kind: kind.into(),
                usb,
            }
        })
        .collect();
    for (target, target_links) in links {
        let known = out
            .iter()
            .any(|e| std::fs::canonicalize(&e.path).unwrap_or_else(|_| e.path.clone()) == *target);
        if !known {
            out.push(SerialPortEntry {
                path: target.clone(),
                kind: "link".into(),
                usb: None,
                by_id: target_links.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

impl fmt::Display for ScannerDeviceList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Serial ports (for badge.serial.path):")?;
        if self.serial.is_empty() {
            writeln!(f, "  none found")?;
        }
        for p in &self.serial {
            write!(f, "  {}  {}", p.path.display(), p.kind)?;
            if let Some(u) = &p.usb {
                write!(f, " {:04x}:{:04x}", u.vid, u.pid)?;
                for (label, value) in [
                    ("manufacturer", &u.manufacturer),
                    ("product", &u.product),
                    ("serial", &u.serial_number),
                ] {
                    if let Some(v) = value {
                        write!(f, " {label}={v:?}")?;
                    }
                }
            }
            writeln!(f)?;
            for link in &p.by_id {
                writeln!(f, "    by-id: {}", link.display())?;
            }
        }
        writeln!(f, "Input devices (for badge.hid.device):")?;
        if self.input.is_empty() {
            writeln!(
                f,
                "  none found (or no permission to read /dev/input: group `input`)"
            )?;
        }
        for d in &self.input {
            write!(
                f,
                "  {}  {:?}",
                d.path.display(),
                d.name.as_deref().unwrap_or("(no name)")
            )?;
            if d.keyboard {
                write!(f, "  keyboard")?;
            }
            writeln!(f)?;
            for link in &d.by_id {
                writeln!(f, "    by-id: {}", link.display())?;
            }
        }
        for problem in &self.problems {
            writeln!(f, "Problem: {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::{SerialPortInfo, SerialPortType, UsbPortInfo};

    #[test]
    fn joins_ports_with_their_by_id_links_and_lists_link_only_targets() {
        let dir = tempfile::tempdir().unwrap();
        let acm = dir.path().join("ttyACM0");
        let pts = dir.path().join("pts7");
        std::fs::write(&acm, b"").unwrap();
        std::fs::write(&pts, b"").unwrap();
        let by_id = dir.path().join("by-id");
        std::fs::create_dir(&by_id).unwrap();
        let scanner_link = by_id.join("usb-Honeywell_Scanner_123-if00");
        std::os::unix::fs::symlink(&acm, &scanner_link).unwrap();
        std::os::unix::fs::symlink(&pts, by_id.join("test-pty")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), by_id.join("dangling")).unwrap();
        let ports = vec![
            SerialPortInfo {
                port_name: acm.display().to_string(),
                port_type: SerialPortType::UsbPort(UsbPortInfo {
                    vid: 0x0c2e,
                    pid: 0x0b61,
                    serial_number: Some("123".into()),
                    manufacturer: Some("Honeywell".into()),
                    product: Some("Scanner".into()),
                }),
            },
            SerialPortInfo {
                port_name: "/dev/ttyS0".into(),
                port_type: SerialPortType::Unknown,
            },
        ];
        let entries = serial_entries(ports, &links_by_target(&by_id));
        assert_eq!(entries.len(), 3, "{entries:#?}");
        let usb = entries.iter().find(|e| e.kind == "usb").unwrap();
        assert_eq!(usb.by_id, vec![scanner_link.clone()]);
        assert_eq!(usb.usb.as_ref().unwrap().vid, 0x0c2e);
        let link_only = entries.iter().find(|e| e.kind == "link").unwrap();
        assert_eq!(link_only.by_id, vec![by_id.join("test-pty")]);
        let list = ScannerDeviceList {
            serial: entries,
            input: vec![InputDeviceEntry {
                path: "/dev/input/event3".into(),
                name: Some("Barcode Wedge".into()),
                by_id: vec!["/dev/input/by-id/usb-Wedge-event-kbd".into()],
                keyboard: true,
            }],
            problems: vec![],
        };
        let text = list.to_string();
        assert!(
            text.contains("usb 0c2e:0b61 manufacturer=\"Honeywell\""),
            "{text}"
        );
        assert!(
            text.contains(&format!("by-id: {}", scanner_link.display())),
            "{text}"
        );
        assert!(text.contains("/dev/ttyS0  unknown"), "{text}");
        assert!(text.contains("\"Barcode Wedge\"  keyboard"), "{text}");
        assert!(
            text.contains("by-id: /dev/input/by-id/usb-Wedge-event-kbd"),
            "{text}"
        );
    }

    #[test]
    fn empty_lists_say_so() {
        let text = ScannerDeviceList::default().to_string();
        assert!(text.contains("Serial ports (for badge.serial.path):\n  none found"));
        assert!(text.contains("group `input`"));
    }

    #[test]
    fn listing_this_machine_does_not_fail() {
        let list = list_devices();
        // The container has /dev/ttyS0 (virtual-devices.md 2) but no input devices (3a).
        assert!(list.to_string().starts_with("Serial ports"));
    }
}
