//! `doctor` checks for the badge scanner: does the configured device exist, is it the right
//! kind of file, can this user open it, and when was the last badge read.
//!
//! Facts are gathered by one small I/O function and judged by pure functions, so every
//! verdict (missing, dangling link, wrong type, wrong group) is unit-tested without root
//! tricks. Each failing check names the config key and the fix.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, Gid, Group, User, access, geteuid};

use crate::devices::links_by_target;
use crate::hash::BadgeHasher;
use crate::hid::DeviceSelector;
use crate::serial::BY_ID_DIR;
use crate::{GAUGE_LAST_SCAN_MS, HEALTH_ADAPTER};
use jarvis_config::{BadgeSource, Config};
use jarvis_core::health::{AdapterState, Check, HealthSnapshot};

/// What the filesystem says about a configured device path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub path: PathBuf,
    /// Where the path leads (after symlinks), when it leads anywhere.
    pub resolved: Option<PathBuf>,
    /// The path itself exists (it may be a dangling link).
    pub present: bool,
    pub is_char_device: bool,
    pub readable: bool,
    pub writable: bool,
    /// Owning group of the device node, and its mode bits.
    pub group: Option<String>,
    pub mode: u32,
    pub user: String,
}

impl DeviceFacts {
    /// Looks at `path` as the current user.
    pub fn gather(path: &Path) -> Self {
        let present = std::fs::symlink_metadata(path).is_ok();
        let meta = std::fs::metadata(path).ok();
        let user = User::from_uid(geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| geteuid().to_string());
        DeviceFacts {
            path: path.to_path_buf(),
            resolved: std::fs::canonicalize(path).ok(),
            present,
            is_char_device: meta
                .as_ref()
                .is_some_and(|m| m.file_type().is_char_device()),
            readable: access(path, AccessFlags::R_OK).is_ok(),
            writable: access(path, AccessFlags::W_OK).is_ok(),
            group: meta.as_ref().map(|m| {
                Group::from_gid(Gid::from_raw(m.gid()))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_else(|| m.gid().to_string())
            }),
            mode: meta.as_ref().map_or(0, |m| m.mode() & 0o7777),
            user,
        }
    }
}

/// The group a scanner's device usually belongs to, for the fix text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceClass {
    /// Serial ports: `dialout` on Debian/Ubuntu, `uucp` on Arch and Fedora.
    Serial,
    /// evdev nodes: `input`.
    Input,
}

/// Judges a serial (read + write) or input (read) device path.
pub fn device_check(
    key: &str,
    class: DeviceClass,
    facts: &DeviceFacts,
    hints: &[PathBuf],
) -> Check {
    let path = facts.path.display();
    let see = if hints.is_empty() {
        "`jarvis-kiosk devices` lists what is plugged in".to_owned()
    } else {
        let list: Vec<String> = hints.iter().map(|h| h.display().to_string()).collect();
        format!("plugged in now: {}", list.join(", "))
    };
    if !facts.present {
        return Check::fail(
            key,
            format!("{path} does not exist"),
            format!("plug the scanner in, or set {key} to its stable by-id path ({see})"),
        );
    }
    let Some(resolved) = &facts.resolved else {
        return Check::fail(
            key,
            format!("{path} is a link to a device that is gone"),
            format!("re-plug the scanner, or set {key} to its current by-id path ({see})"),
        );
    };
    if !facts.is_char_device {
        return Check::fail(
            key,
            format!("{path} ({}) is not a character device", resolved.display()),
            format!("set {key} to the scanner's device node ({see})"),
        );
    }
    let needs_write = class == DeviceClass::Serial;
    let group = facts.group.as_deref().unwrap_or("?");
    let usual = match class {
        DeviceClass::Serial => "dialout (uucp on Arch/Fedora)",
        DeviceClass::Input => "input",
    };
    if !facts.readable || (needs_write && !facts.writable) {
        let wanted = if needs_write {
            "read and write"
        } else {
            "read"
        };
        return Check::fail(
            key,
            format!(
                "{path} ({}, group {group}, mode {:04o}): user {} cannot {wanted} it",
                resolved.display(),
                facts.mode,
                facts.user
            ),
            format!(
                "add the service user to group `{group}` (usually {usual}): \
                 `usermod -aG {group} <user>` and restart the service, or SupplementaryGroups={group} in the unit"
            ),
        );
    }
    Check::ok(
        key,
        format!(
            "{path} -> {} (character device, group {group}, mode {:04o}, usable by {})",
            resolved.display(),
            facts.mode,
            facts.user
        ),
    )
}

/// Judges what the running daemon published: scanner state and time of the last read.
pub fn last_scan_check(snapshot: Option<&HealthSnapshot>, now_ms: i64) -> Check {
    const NAME: &str = "scanner";
    let Some(snap) = snapshot else {
        return Check::ok(NAME, "daemon not running: last scan unknown");
    };
    if let Some(AdapterState::Degraded(reason)) = snap.adapters.get(HEALTH_ADAPTER) {
        return Check::fail(
            NAME,
            reason.clone(),
            "check the scanner cable and badge.serial.path / badge.hid.device; the daemon reconnects by itself",
        );
    }
    match snap.gauges.get(GAUGE_LAST_SCAN_MS).and_then(|v| v.as_i64()) {
        Some(at_ms) => {
            let when =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| at_ms.to_string());
            let ago_s = now_ms.saturating_sub(at_ms).max(0) / 1000;
            Check::ok(NAME, format!("last badge read at {when} ({ago_s} s ago)"))
        }
        None => Check::ok(NAME, "no badge read since the daemon started"),
    }
}

/// Judges `badge.hash_key_file`: the member cache and unknown-badge records need it.
pub fn hash_key_check(cfg: &Config) -> Check {
    const NAME: &str = "badge.hash_key_file";
    let Some(path) = &cfg.badge.hash_key_file else {
        return Check::warn(
            NAME,
            format!(
                "not set: the daemon uses a key of this kiosk's own ({}), so unknown-badge \
                 hashes do not match across kiosks",
                super::hash::per_kiosk_key_path(&cfg.storage.path).display()
            ),
            "create a fleet key once with `openssl rand -hex 32`, install it on every kiosk as \
             /etc/jarvis-kiosk/badge-key (chmod 600) and set badge.hash_key_file",
        );
    };
    match BadgeHasher::from_config(&cfg.badge) {
        Err(e) => Check::fail(
            NAME,
            e.to_string(),
            "fix the file named by badge.hash_key_file",
        ),
        Ok(_) => {
            let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
            if path.too_open(creds.as_deref()) {
                Check::warn(
                    NAME,
                    format!("{} is readable by group or others", path.0.display()),
                    format!("chmod 600 {}", path.resolve(creds.as_deref()).display()),
                )
            } else {
                Check::ok(NAME, "key readable and private")
            }
        }
    }
}

/// Every badge check for `jarvis-kiosk doctor`. `snapshot` is the running daemon's health
/// (for the scanner state and last scan time), `None` when it is not running.
pub fn doctor_checks(
    cfg: &Config,
    snapshot: Option<&HealthSnapshot>,
) -> Vec<jarvis_core::health::Check> {
    let b = &cfg.badge;
    let mut checks = Vec::new();
    match b.source {
        BadgeSource::None => {
            checks.push(Check::ok(
                "badge.source",
                "scanner disabled (badge.source = \"none\")",
            ));
            return checks;
        }
        BadgeSource::Serial => {
            let hints: Vec<PathBuf> = links_by_target(Path::new(BY_ID_DIR))
                .into_values()
                .flatten()
                .collect();
            checks.push(device_check(
                "badge.serial.path",
                DeviceClass::Serial,
                &DeviceFacts::gather(&b.serial.path),
                &hints,
            ));
        }
        BadgeSource::Hid => checks.push(hid_check(&b.hid.device)),
    }
    checks.push(hash_key_check(cfg));
    checks.push(last_scan_check(snapshot, jarvis_core::clock::wall_ms()));
    checks
}

fn hid_check(device: &str) -> Check {
    const KEY: &str = "badge.hid.device";
    match DeviceSelector::parse(device) {
        DeviceSelector::Path(path) => {
            device_check(KEY, DeviceClass::Input, &DeviceFacts::gather(&path), &[])
        }
        selector @ DeviceSelector::Name(_) => {
            let found = evdev::enumerate()
                .find(|(_, d)| d.name().is_some_and(|n| selector.matches_name(n)));
            match found {
                Some((path, _)) => {
                    device_check(KEY, DeviceClass::Input, &DeviceFacts::gather(&path), &[])
                }
                None => Check::fail(
                    KEY,
                    format!(
                        "no input device named like {device:?} (or no permission to read /dev/input)"
                    ),
                    "plug the scanner in, check `jarvis-kiosk devices`, and add the service user to group `input`",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_config::secrets::SecretPath;
    use jarvis_core::health::Level;

    fn facts() -> DeviceFacts {
        DeviceFacts {
            path: "/dev/serial/by-id/usb-Scanner-if00".into(),
            resolved: Some("/dev/ttyACM0".into()),
            present: true,
            is_char_device: true,
            readable: true,
            writable: true,
            group: Some("dialout".into()),
            mode: 0o660,
            user: "jarvis-kiosk".into(),
        }
    }

    #[test]
    fn a_usable_serial_device_is_ok() {
        let c = device_check("badge.serial.path", DeviceClass::Serial, &facts(), &[]);
        assert_eq!(c.level, Level::Ok, "{c:?}");
        assert!(c.detail.contains("/dev/ttyACM0"));
    }

    #[test]
    fn missing_device_lists_what_is_plugged_in() {
        let f = DeviceFacts {
            present: false,
            resolved: None,
            is_char_device: false,
            ..facts()
        };
        let c = device_check(
            "badge.serial.path",
            DeviceClass::Serial,
            &f,
            &["/dev/serial/by-id/usb-Other-if00".into()],
        );
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("does not exist"));
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("badge.serial.path") && fix.contains("usb-Other-if00"),
            "{fix}"
        );
    }

    #[test]
    fn dangling_link_and_wrong_type_are_named() {
        let dangling = DeviceFacts {
            resolved: None,
            ..facts()
        };
        let c = device_check("badge.serial.path", DeviceClass::Serial, &dangling, &[]);
        assert!(c.detail.contains("gone"), "{c:?}");
        let regular = DeviceFacts {
            is_char_device: false,
            ..facts()
        };
        let c = device_check("badge.serial.path", DeviceClass::Serial, &regular, &[]);
        assert!(c.detail.contains("not a character device"), "{c:?}");
    }

    #[test]
    fn permission_failures_name_the_group() {
        let f = DeviceFacts {
            writable: false,
            ..facts()
        };
        let c = device_check("badge.serial.path", DeviceClass::Serial, &f, &[]);
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("cannot read and write"), "{c:?}");
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("usermod -aG dialout") && fix.contains("uucp"),
            "{fix}"
        );
        let input = DeviceFacts {
            writable: false,
            readable: false,
            group: Some("input".into()),
            ..facts()
        };
        let c = device_check("badge.hid.device", DeviceClass::Input, &input, &[]);
        assert!(c.fix.unwrap().contains("group `input`"));
        let read_only_input = DeviceFacts {
            writable: false,
            ..facts()
        };
        let c = device_check(
            "badge.hid.device",
            DeviceClass::Input,
            &read_only_input,
            &[],
        );
        assert_eq!(c.level, Level::Ok);
    }

    #[test]
    fn gather_sees_a_real_character_device_and_a_missing_path() {
        let f = DeviceFacts::gather(Path::new("/dev/null"));
        assert!(f.present && f.is_char_device && f.readable);
        let dir = tempfile::tempdir().unwrap();
        let f = DeviceFacts::gather(&dir.path().join("nope"));
        assert!(!f.present && f.resolved.is_none());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nope"), &link).unwrap();
        let f = DeviceFacts::gather(&link);
        assert!(f.present && f.resolved.is_none());
    }

    #[test]
    fn last_scan_reports_time_state_and_absence() {
        assert_eq!(last_scan_check(None, 0).level, Level::Ok);
        let mut snap = HealthSnapshot::default();
        snap.adapters
            .insert(HEALTH_ADAPTER.into(), AdapterState::Up);
        assert!(
            last_scan_check(Some(&snap), 0)
                .detail
                .contains("no badge read")
        );
        snap.gauges
            .insert(GAUGE_LAST_SCAN_MS.into(), 1_700_000_000_000i64.into());
        let c = last_scan_check(Some(&snap), 1_700_000_090_000);
        assert!(
            c.detail.contains("2023-11-14T22:13:20Z") && c.detail.contains("90 s ago"),
            "{c:?}"
        );
        snap.adapters.insert(
            HEALTH_ADAPTER.into(),
            AdapterState::Degraded("disconnected: /dev/x: Broken pipe".into()),
        );
        let c = last_scan_check(Some(&snap), 0);
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("Broken pipe"));
    }

    #[test]
    fn hash_key_check_covers_missing_bad_open_and_good() {
        let mut cfg = Config::default();
        let unset = hash_key_check(&cfg);
        assert_eq!(
            unset.level,
            Level::Warn,
            "the daemon falls back to a per-kiosk key"
        );
        assert!(unset.detail.contains("badge-hash.key"), "{}", unset.detail);
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("badge-key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
        cfg.badge.hash_key_file = Some(SecretPath(key.clone()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(hash_key_check(&cfg).level, Level::Warn);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(hash_key_check(&cfg).level, Level::Ok);
        std::fs::write(&key, "short").unwrap();
        assert_eq!(hash_key_check(&cfg).level, Level::Fail);
    }

    #[test]
    fn doctor_checks_for_each_source() {
        let mut cfg = Config::default();
        cfg.badge.source = BadgeSource::None;
        let checks = doctor_checks(&cfg, None);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].level, Level::Ok);
        let dir = tempfile::tempdir().unwrap();
        cfg.badge.source = BadgeSource::Serial;
        cfg.badge.serial.path = dir.path().join("ttyNONE");
        let checks = doctor_checks(&cfg, None);
        assert_eq!(checks[0].name, "badge.serial.path");
        assert_eq!(checks[0].level, Level::Fail);
        cfg.badge.source = BadgeSource::Hid;
        cfg.badge.hid.device = "No Such Wedge".into();
        let checks = doctor_checks(&cfg, None);
        assert_eq!(checks[0].name, "badge.hid.device");
        assert_eq!(checks[0].level, Level::Fail);
    }
}
