//! `doctor` and `devices`: what a technician runs on a kiosk that misbehaves.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::health::socket;
use jarvis_config::{Config, VoiceApi};
use jarvis_core::health::{Check, Level};
use jarvis_store::{IntegrityCheck, Store};

/// How long `doctor` waits for central or OpenAI before calling it unreachable.
const NETWORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long each step of `doctor --call` may take (connect, then `session.created`).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a running daemon may take to tell `doctor` what it holds.
const DAEMON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Below this much free space the store may soon refuse writes.
const MIN_FREE_BYTES: u64 = 100 * 1024 * 1024;

pub fn run(cfg: &Config, json: bool, quiet: bool, call: bool) -> ExitCode {
    let snapshot = socket::query(&cfg.health.runtime_dir, DAEMON_TIMEOUT)
        .ok()
        .map(|r| r.health);
    let mut checks = vec![Check::ok("config", "configuration is valid")];
    checks.extend(credential_checks(cfg));
    checks.push(clock_check(jarvis_core::clock::wall_ms()));
    checks.push(clock_sync_check(clock_synchronised()));
    checks.push(store_check(&cfg.storage.path));
    checks.push(disk_check(&cfg.storage.path));
    checks.extend(jarvis_badge::doctor_checks(cfg, snapshot.as_ref()));
    checks.extend(jarvis_audio::doctor_checks(cfg, quiet));
    checks.extend(network_checks(cfg, call));
    print_checks(&checks, json);
    if checks.iter().any(|c| c.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub fn devices() -> ExitCode {
    println!("{}", jarvis_badge::devices::list_devices());
    match jarvis_audio::devices::list() {
        Ok(list) => {
            println!("{list}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jarvis-kiosk: cannot list sound devices: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Can this kiosk reach OpenAI, and central (log in, find the schema it needs)? With `call`,
/// also a real test call proving the media path.
fn network_checks(cfg: &Config, call: bool) -> Vec<Check> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(async {
            let mut checks = jarvis_realtime::doctor::checks(&cfg.openai, NETWORK_TIMEOUT).await;
            checks.push(jarvis_sync::doctor::check(cfg, NETWORK_TIMEOUT).await);
            if call && cfg.openai.api == VoiceApi::Live {
                checks.push(Check::warn(
                    "openai test call",
                    "--call places a Realtime test call; with openai.api = \"live\" it is not run",
                    "scan a badge to test a GPT-Live session end to end",
                ));
            } else if call {
                let outcome = jarvis_realtime::test_call::run(&cfg.openai, CALL_TIMEOUT).await;
                checks.push(jarvis_realtime::test_call::advice(&outcome));
            }
            checks
        }),
        Err(e) => vec![Check::fail(
            "network",
            format!("cannot start a runtime: {e}"),
            "see the message",
        )],
    }
}

fn credential_checks(cfg: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let secret_keys = [
        ("openai.api_key_file", cfg.openai.api_key_file.as_ref()),
        (
            "openai.token_credential_file",
            cfg.openai.token_credential_file.as_ref(),
        ),
        ("central.password_file", cfg.central.password_file.as_ref()),
        ("badge.hash_key_file", cfg.badge.hash_key_file.as_ref()),
    ];
    for (key, path) in secret_keys {
        let Some(path) = path else { continue };
        let shown = path.resolve(creds.as_deref());
        match path.read_in(key, creds.as_deref()) {
            Ok(_) if path.too_open(creds.as_deref()) => checks.push(Check::warn(
                key,
                format!("{} is readable by group or others", shown.display()),
                format!("chmod 600 {}", shown.display()),
            )),
            Ok(_) => checks.push(Check::ok(key, format!("{} readable", shown.display()))),
            Err(e) => checks.push(Check::fail(
                key,
                e.to_string(),
                format!("create {} (mode 600)", shown.display()),
            )),
        }
    }
    if cfg.openai.api == VoiceApi::Live {
        checks.push(live_check(&cfg.openai));
    } else if cfg.openai.api_key_file.is_none() && cfg.openai.token_url.is_none() {
        checks.push(Check::fail(
            "openai credentials",
            "neither openai.api_key_file nor openai.token_url is set",
            "set openai.api_key_file (a file holding the API key) or openai.token_url",
        ));
    }
    checks
}

/// Which GPT-Live sessions this kiosk opens, and through what.
fn live_check(o: &jarvis_config::OpenAiConfig) -> Check {
    let via = match (&o.live.relay_url, &o.api_key_file) {
        (Some(url), _) => format!("through the broker's relay {url}"),
        (None, Some(_)) => "with the API key of openai.api_key_file (development only: the key \
                            sits on the kiosk)"
            .to_owned(),
        (None, None) => {
            return Check::fail(
                "openai.api",
                "GPT-Live needs the broker's relay: openai.live.relay_url is not set",
                "set openai.live.relay_url and openai.token_credential_file",
            );
        }
    };
    Check::ok(
        "openai.api",
        format!(
            "GPT-Live: {} (voice {}, delegation {}) {via}",
            o.live.model, o.live.voice, o.live.delegation_model
        ),
    )
}

/// A kiosk whose RTC battery died boots in 1970: every timestamp and TLS check would be wrong.
fn clock_check(now_ms: i64) -> Check {
    const YEAR_2025_MS: i64 = 1_735_689_600_000;
    if now_ms < YEAR_2025_MS {
        Check::fail(
            "clock",
            "system clock is before 2025",
            "enable NTP: timedatectl set-ntp true",
        )
    } else {
        Check::ok("clock", "system clock looks sane")
    }
}

/// Whether the kernel counts the clock as synchronised (an NTP client cleared `STA_UNSYNC`).
/// A Pi has no real-time clock: until NTP syncs, the time, and the daily budget's day with it,
/// may be far off.
fn clock_synchronised() -> std::io::Result<bool> {
    // SAFETY: `timex` is plain old data, valid when zeroed; `adjtimex` with `modes == 0` only
    // reads the kernel's clock state into the struct we own and pass exclusively.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: see above; the pointer is to a live, aligned `timex`.
    if unsafe { libc::adjtimex(&mut tx) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tx.status & libc::STA_UNSYNC == 0)
}

fn clock_sync_check(synchronised: std::io::Result<bool>) -> Check {
    const FIX: &str = "enable NTP (timedatectl set-ntp true) and check the kiosk reaches its NTP \
                       servers (timedatectl timesync-status); the unit waits for time-sync.target";
    match synchronised {
        Ok(true) => Check::ok("clock_sync", "system clock synchronised (NTP)"),
        Ok(false) => Check::warn(
            "clock_sync",
            "system clock not synchronised (kernel STA_UNSYNC): timestamps and the daily \
             budget's day may be off",
            FIX,
        ),
        Err(e) => Check::warn(
            "clock_sync",
            format!("cannot read the clock's synchronisation state (adjtimex: {e})"),
            FIX,
        ),
    }
}

fn store_check(path: &Path) -> Check {
    if !path.exists() {
        return Check::warn(
            "storage",
            format!("{} does not exist yet", path.display()),
            "start the daemon once; it creates the store (storage.path)",
        );
    }
    match Store::open_existing(path).and_then(|s| {
        let problems = s.check(IntegrityCheck::Quick)?;
        Ok((s.stats()?, problems))
    }) {
        Ok((stats, problems)) if problems.is_empty() => Check::ok(
            "storage",
            format!(
                "{} ok: {} pending, {} dead-lettered, {} of {} bytes",
                path.display(),
                stats.pending,
                stats.dead,
                stats.bytes,
                stats.max_bytes
            ),
        ),
        Ok((_, problems)) => Check::fail(
            "storage",
            format!("{} is damaged: {}", path.display(), problems.join("; ")),
            "restart the daemon: it moves a corrupt store aside and starts a fresh one",
        ),
        Err(e) => Check::fail("storage", e.to_string(), "see the message"),
    }
}

fn disk_check(store_path: &Path) -> Check {
    let dir = store_path
        .parent()
        .filter(|d| d.exists())
        .unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => {
            // fsblkcnt_t and c_ulong are 32-bit on armv7: the casts are not no-ops there.
            #[allow(clippy::unnecessary_cast)]
            let free = s.blocks_available() as u64 * s.fragment_size() as u64;
            let text = format!("{} MiB free on {}", free / (1024 * 1024), dir.display());
            if free < MIN_FREE_BYTES {
                Check::warn(
                    "disk",
                    text,
                    "free space on the state partition (old logs, /var/cache)",
                )
            } else {
                Check::ok("disk", text)
            }
        }
        Err(e) => Check::warn(
            "disk",
            format!("cannot stat {}: {e}", dir.display()),
            "check the mount",
        ),
    }
}

pub(super) fn print_checks(checks: &[Check], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(checks).unwrap_or_default()
        );
        return;
    }
    for c in checks {
        let level = match c.level {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        println!("{level} {:<28} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            println!("     {:<28} fix: {fix}", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_names_the_relay_or_the_development_key_or_fails_with_the_fix() {
        let mut o = jarvis_config::OpenAiConfig {
            api: VoiceApi::Live,
            ..Default::default()
        };
        o.live.relay_url = Some("https://broker.example.net/v1/live/sessions".into());
        let c = live_check(&o);
        assert_eq!(c.level, Level::Ok);
        assert!(
            c.detail.contains("relay https://broker.example.net"),
            "{}",
            c.detail
        );
        o.live.relay_url = None;
        let c = live_check(&o);
        assert_eq!(c.level, Level::Fail, "{}", c.detail);
        assert!(c.fix.unwrap().contains("openai.live.relay_url"));
    }

    #[test]
    fn clock_before_2025_fails_with_the_fix() {
        let c = clock_check(0);
        assert_eq!(c.level, Level::Fail);
        assert!(c.fix.unwrap().contains("ntp"));
        assert_eq!(clock_check(1_763_700_000_000).level, Level::Ok);
    }

    #[test]
    fn an_unsynchronised_clock_is_a_warning_with_the_fix() {
        let c = clock_sync_check(Ok(false));
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("not synchronised"), "{}", c.detail);
        assert!(c.fix.unwrap().contains("set-ntp true"));
        assert_eq!(clock_sync_check(Ok(true)).level, Level::Ok);
        let denied = clock_sync_check(Err(std::io::Error::from_raw_os_error(libc::EPERM)));
        assert_eq!(denied.level, Level::Warn);
    }

    #[test]
    fn the_kernel_answers_the_synchronisation_query() {
        // Whatever this machine's state, the real call succeeds (read-only, unprivileged).
        clock_synchronised().unwrap();
    }

    #[test]
    fn missing_store_is_a_warning_not_a_failure() {
        let c = store_check(Path::new("/nonexistent/kiosk.db"));
        assert_eq!(c.level, Level::Warn);
    }
}
