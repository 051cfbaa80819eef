//! What the reader threads share: the reader loop itself (open, read until the device fails,
//! reopen), the reopen schedule, the "log once per cause" rule, and how frame events become
//! scans, warnings and counters.
//!
//! The schedule and the log rule are pure so they are tested without a device; the two
//! adapters (serial, HID) only say how to open and read their device (`ScannerDevice`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::{
    COUNTER_DEVICE_ERRORS, COUNTER_DISCARDED, COUNTER_INPUT, COUNTER_RECONNECTS, COUNTER_SCANS,
    GAUGE_LAST_SCAN_MS, HEALTH_ADAPTER, ReaderHandle, Scan,
};
use jarvis_core::badge::frame::{Discard, FrameEvent};
use jarvis_core::clock;
use jarvis_core::health::{AdapterState, Health};
use jarvis_core::retry::RetryPolicy;

/// Remembers the last device error so the same cause is logged once, not every 100 ms.
#[derive(Debug, Default, Clone)]
pub struct ErrorLog {
    last: Option<String>,
}

impl ErrorLog {
    /// True when `text` differs from the last error recorded (then it should be logged).
    pub fn changed(&mut self, text: &str) -> bool {
        if self.last.as_deref() == Some(text) {
            false
        } else {
            self.last = Some(text.to_owned());
            true
        }
    }

    /// True when an error was pending (the device was down) and forgets it.
    pub fn clear(&mut self) -> bool {
        self.last.take().is_some()
    }
}

/// Ties a reader thread to health and logs: one line per change of cause.
struct Reporter {
    health: Health,
    device: String,
    errors: ErrorLog,
    ever_up: bool,
}

/// Whether the reader should keep going after delivering events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The scan receiver is gone: the daemon is shutting down.
    Closed,
}

impl Reporter {
    pub fn new(health: Health, device: String) -> Self {
        health.set_adapter(HEALTH_ADAPTER, AdapterState::Starting);
        Reporter {
            health,
            device,
            errors: ErrorLog::default(),
            ever_up: false,
        }
    }

    /// The device is unusable: degrade health, log when the cause changed.
    pub fn down(&mut self, error: &str) {
        let reason = format!("disconnected: {}: {error}", self.device);
        self.health.add(COUNTER_DEVICE_ERRORS, 1);
        if self.errors.changed(error) {
            tracing::warn!(
                device = %self.device,
                error = %error,
                "badge scanner unavailable; retrying until it is back (check the cable and badge.serial.path / badge.hid.device)"
            );
            self.health.record_error(format!("scanner {reason}"));
        }
        self.health
            .set_adapter(HEALTH_ADAPTER, AdapterState::Degraded(reason));
    }

    /// The device is open and reading.
    pub fn up(&mut self, opened: &str) {
        let was_down = self.errors.clear();
        if self.ever_up && was_down {
            self.health.add(COUNTER_RECONNECTS, 1);
        }
        if was_down || !self.ever_up {
            tracing::info!(device = %self.device, opened = %opened, "badge scanner connected");
        }
        self.ever_up = true;
        self.health.set_adapter(HEALTH_ADAPTER, AdapterState::Up);
    }

    /// Logs discards, counts everything, and sends badges to the core.
    pub fn deliver(&self, events: Vec<FrameEvent>, scans: &mpsc::Sender<Scan>) -> Flow {
        for event in events {
            match event {
                FrameEvent::Discarded(d) => {
                    tracing::warn!(device = %self.device, bytes = d.bytes, "badge frame {d}");
                    self.health.add(COUNTER_DISCARDED, 1);
                }
                FrameEvent::Badge(badge) => {
                    tracing::debug!(device = %self.device, badge = %badge, "badge read");
                    self.health.add(COUNTER_SCANS, 1);
                    self.health.set_gauge(GAUGE_LAST_SCAN_MS, clock::wall_ms());
                    if scans
                        .blocking_send(Scan {
                            badge,
                            read_at_ms: clock::mono_ms(),
                        })
                        .is_err()
                    {
                        return Flow::Closed;
                    }
                }
            }
        }
        Flow::Continue
    }
}

/// What one read of a scanner gave.
#[derive(Debug, Default)]
pub(crate) struct Input {
    /// Bytes (serial) or characters (HID) taken from the device.
    pub units: usize,
    /// The badges and discards they completed.
    pub events: Vec<FrameEvent>,
}

/// A scanner as the reader loop drives it: how to open it, read it, and drop a half frame.
pub(crate) trait ScannerDevice {
    /// An open device.
    type Port;

    /// Opens the device: the port and the path actually opened (for the log), or the cause.
    fn open(&mut self) -> Result<(Self::Port, String), String>;
    /// Waits for input for at most one poll or read timeout (about 100 ms) and decodes it (nothing
    /// on a timeout), or the cause of a failure.
    fn read(&mut self, port: &mut Self::Port) -> Result<Input, String>;
    /// Forgets a half-read frame; returns it as a discard, if there was one.
    fn reset(&mut self) -> Option<Discard>;
}

/// Starts the reader loop for `device` on its own thread called `name`. `shown` names the
/// device in health and logs. See [`crate::spawn_reader`].
pub(crate) fn spawn<D>(
    name: &str,
    shown: String,
    device: D,
    health: Health,
    scans: mpsc::Sender<Scan>,
) -> std::io::Result<ReaderHandle>
where
    D: ScannerDevice + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let reporter = Reporter::new(health, shown);
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(device, reporter, &scans, &thread_stop))?;
    Ok(ReaderHandle::new(stop, thread))
}

/// Opens, reads until the device fails, reopens on [`RetryPolicy::SCANNER_REOPEN`]; ends on a stop
/// request or when the scan receiver is gone.
fn run<D: ScannerDevice>(
    mut device: D,
    mut reporter: Reporter,
    scans: &mpsc::Sender<Scan>,
    stop: &AtomicBool,
) {
    let stopped = || stop.load(Ordering::Relaxed) || scans.is_closed();
    let mut backoff = RetryPolicy::SCANNER_REOPEN.backoff();
    while !stopped() {
        match device.open() {
            Ok((port, opened)) => {
                backoff.reset();
                reporter.up(&opened);
                let end = read_until_error(&mut device, port, &reporter, scans, &stopped);
                // A half frame must never be glued to the first frame after a re-plug.
                let pending: Vec<FrameEvent> = device
                    .reset()
                    .map(FrameEvent::Discarded)
                    .into_iter()
                    .collect();
                if reporter.deliver(pending, scans) == Flow::Closed {
                    return;
                }
                match end {
                    Ok(()) => return,
                    Err(error) => reporter.down(&error),
                }
            }
            Err(error) => reporter.down(&error),
        }
        let delay = backoff.next_delay();
        if !sleep_unless(delay, stopped) {
            return;
        }
    }
}

/// Reads and delivers until the device fails (`Err` with the cause) or the reader must stop
/// (`Ok`). The port closes on return.
fn read_until_error<D: ScannerDevice>(
    device: &mut D,
    mut port: D::Port,
    reporter: &Reporter,
    scans: &mpsc::Sender<Scan>,
    stopped: &impl Fn() -> bool,
) -> Result<(), String> {
    loop {
        if stopped() {
            return Ok(());
        }
        let input = device.read(&mut port)?;
        if input.units > 0 {
            reporter.health.add(COUNTER_INPUT, input.units as u64);
        }
        if reporter.deliver(input.events, scans) == Flow::Closed {
            return Ok(());
        }
    }
}

/// Sleeps `total` in short slices so a stop request or a closed channel ends the wait early.
fn sleep_unless(total: Duration, stopped: impl Fn() -> bool) -> bool {
    const SLICE: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + total;
    loop {
        if stopped() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_config::BadgeConfig;
    use jarvis_core::badge::frame::FrameParser;

    /// Missing at first; once open, unplugged mid-frame; once back, reads a badge and then
    /// asks the loop to stop.
    struct Flaky {
        opens: u32,
        reads: u32,
        parser: FrameParser,
        stop: Arc<AtomicBool>,
    }

    impl ScannerDevice for Flaky {
        type Port = ();

        fn open(&mut self) -> Result<((), String), String> {
            self.opens += 1;
            if self.opens == 1 {
                return Err("No such file or directory".into());
            }
            Ok(((), format!("/dev/pts/{}", self.opens)))
        }

        fn read(&mut self, (): &mut ()) -> Result<Input, String> {
            self.reads += 1;
            let now = Instant::now();
            if self.reads == 1 {
                let events = self.parser.push(now, b"00123");
                assert!(events.is_empty());
                return Err("Broken pipe".into());
            }
            self.stop.store(true, Ordering::Relaxed);
            let line = b"0012345678\r\n";
            Ok(Input {
                units: line.len(),
                events: self.parser.push(now, line),
            })
        }

        fn reset(&mut self) -> Option<Discard> {
            self.parser.reset()
        }
    }

    #[test]
    fn the_loop_reopens_drops_half_frames_and_delivers_until_stopped() {
        let health = Health::new("k", 0);
        let (tx, mut rx) = mpsc::channel(4);
        let stop = Arc::new(AtomicBool::new(false));
        let device = Flaky {
            opens: 0,
            reads: 0,
            parser: FrameParser::new(BadgeConfig::default().frame_rules()),
            stop: stop.clone(),
        };
        run(
            device,
            Reporter::new(health.clone(), "/dev/scanner".into()),
            &tx,
            &stop,
        );
        let scan = rx.try_recv().expect("the badge read after the re-plug");
        assert!(rx.try_recv().is_err(), "the half frame is not glued to it");
        assert_eq!(scan.badge.expose(), "0012345678");
        let s = health.snapshot();
        assert_eq!(s.adapters[HEALTH_ADAPTER], AdapterState::Up);
        assert_eq!(s.counters[COUNTER_RECONNECTS], 1);
        assert_eq!(s.counters[COUNTER_DISCARDED], 1);
        assert_eq!(s.counters[COUNTER_SCANS], 1);
        assert_eq!(s.last_errors.len(), 2, "{:?}", s.last_errors);
    }

    #[test]
    fn error_log_reports_only_changes() {
        let mut log = ErrorLog::default();
        assert!(log.changed("Broken pipe"));
        assert!(!log.changed("Broken pipe"));
        assert!(log.changed("No such file or directory"));
        assert!(!log.changed("No such file or directory"));
        assert!(log.clear());
        assert!(!log.clear());
        assert!(log.changed("No such file or directory"));
    }

    #[test]
    fn reporter_degrades_once_per_cause_and_counts_reconnects() {
        let health = Health::new("k", 0);
        let mut r = Reporter::new(health.clone(), "/dev/scanner".into());
        r.down("No such file or directory");
        r.down("No such file or directory");
        assert_eq!(
            health.snapshot().adapters[HEALTH_ADAPTER],
            AdapterState::Degraded("disconnected: /dev/scanner: No such file or directory".into())
        );
        assert_eq!(health.snapshot().last_errors.len(), 1);
        r.up("/dev/pts/3");
        assert_eq!(health.snapshot().adapters[HEALTH_ADAPTER], AdapterState::Up);
        assert_eq!(health.snapshot().counters.get(COUNTER_RECONNECTS), None);
        r.down("Broken pipe");
        r.up("/dev/pts/4");
        assert_eq!(health.snapshot().counters[COUNTER_RECONNECTS], 1);
    }

    #[test]
    fn sleep_unless_stops_early() {
        let start = Instant::now();
        assert!(!sleep_unless(Duration::from_secs(10), || true));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(sleep_unless(Duration::from_millis(1), || false));
    }
}
