//! Helpers shared by the integration tests: a scratch kiosk and a fake systemd notify socket.
#![allow(dead_code)] // each test binary uses a different subset

pub mod journal;
pub mod net;
pub mod price;
pub mod rig;
pub mod room;
pub mod voice;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A temporary directory holding a config file, state and runtime dirs for one daemon.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Scratch {
    /// The example config with storage and runtime pointed into the scratch dir, plus `extra`
    /// TOML appended (later keys must not repeat a section already in the base).
    pub fn new(extra: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let body = format!(
            "[kiosk]\nid = \"kiosk-test\"\n[storage]\npath = \"{state}/kiosk.db\"\n[health]\nruntime_dir = \"{run}\"\n{extra}",
            state = dir.path().join("state").display(),
            run = dir.path().join("run").display(),
        );
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(&config, body).unwrap();
        Scratch { dir, config }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `jarvis-kiosk` command with this config and a clean environment for our variables.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"));
        c.arg("--config").arg(&self.config).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("JARVIS_KIOSK")
                || k == "NOTIFY_SOCKET"
                || k == "JOURNAL_STREAM"
                || k.starts_with("WATCHDOG_")
            {
                c.env_remove(k);
            }
        }
        c
    }
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket { path, sock }
    }

    /// Waits for a datagram containing `needle`; returns every message seen until then.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(seen);
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let hit = msg.lines().any(|l| l == needle);
                    seen.push(msg);
                    if hit {
                        return Ok(seen);
                    }
                }
                Err(_) => return Err(seen),
            }
        }
    }
}

impl NotifySocket {
    /// Keeps reading (and discarding) in a thread until the socket file is removed, as
    /// systemd does: a queue nobody reads fills up and blocks the daemon's next notify.
    pub fn drain_in_background(self) {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            self.sock
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            while self.path.exists() {
                let _ = self.sock.recv(&mut buf);
            }
        });
    }

    /// Every datagram received during `window`, each with when it arrived.
    pub fn collect(&self, window: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return seen;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.sock.recv(&mut buf) {
                seen.push((
                    Instant::now(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// CPU time of each thread of process `pid` (user + system), by thread name; threads of the
/// same name are summed.
pub fn thread_cpu_times(pid: u32) -> std::collections::BTreeMap<String, Duration> {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as u64;
    let mut by_name = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        // A thread may exit between listing and reading.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        *by_name.entry(name).or_insert(Duration::ZERO) += Duration::from_millis(ticks * 1000 / hz);
    }
    by_name
}

/// Sends `signal` to a child process.
pub fn send_signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// Sends SIGTERM and waits for the exit, at most `limit`.
pub fn terminate(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

pub fn quiet(c: &mut Command) -> &mut Command {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// Waits until `check` returns `Some`, polling every 100 ms, or panics naming `what`.
pub fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
