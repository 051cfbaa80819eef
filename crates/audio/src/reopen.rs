//! The device loop the capture and playback threads share: open the device, pump it until it
//! fails, reopen it with [`RetryPolicy::SOUND_CARD_REOPEN`], until asked to stop. Both sides must treat a
//! missing or vanished sound card the same way (reopens counted, the `audio` adapter up or
//! degraded, one log line per change of cause), so that policy lives here once.
//!
//! Only the worker threads run this loop; the device callbacks never allocate, lock or log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use cpal::traits::StreamTrait;

use super::alsa_messages::AlsaMessages;
use super::counters;
use super::device::{DeviceError, Direction};
use super::status::AudioStatus;
use jarvis_core::retry::RetryPolicy;

/// Why a running stream ended.
pub(crate) enum End {
    /// Stop requested, or nobody is left to use the audio: leave the loop.
    Stop,
    /// The device failed mid-stream (the reason names it): reopen.
    Failed(String),
}

/// One side's device, as the loop drives it.
pub(crate) trait StreamWorker {
    /// The side this worker runs: its health direction and its name in the log.
    const DIRECTION: Direction;
    /// An open stream (a [`Stream`]) with this side's end of the ring.
    type Running;

    /// Opens the configured device and starts its stream with [`Stream::start`].
    fn open(&self, host: &cpal::Host) -> Result<Self::Running, DeviceError>;
    /// Moves audio until the stream fails or the worker must stop.
    fn pump(&self, running: Self::Running) -> End;
    /// The `audio` adapter this side reports to.
    fn status(&self) -> &AudioStatus;
    /// False once the worker is no longer wanted although no stop was requested.
    fn wanted(&self) -> bool {
        true
    }
    /// Runs after each failed attempt or stream, before the backoff wait.
    fn between_attempts(&self) {}
}

/// A worker thread running the loop. Dropping it asks the loop to stop and waits for the
/// device to close.
pub(crate) struct WorkerThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerThread {
    /// Wakes the thread early (it parks between rounds of work).
    pub fn wake(&self) {
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Starts the loop on its own thread (`audio-capture` / `audio-playback`) for the worker that
/// `worker` builds around the stop flag.
pub(crate) fn spawn<W>(worker: impl FnOnce(Arc<AtomicBool>) -> W) -> WorkerThread
where
    W: StreamWorker + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let worker = worker(stop.clone());
    let thread_stop = stop.clone();
    let side = side(W::DIRECTION);
    let thread = thread::Builder::new()
        .name(format!("audio-{side}"))
        .spawn(move || run(&worker, &thread_stop))
        .ok();
    if thread.is_none() {
        tracing::error!("cannot spawn the audio {side} thread");
    }
    WorkerThread { stop, thread }
}

fn side(dir: Direction) -> &'static str {
    match dir {
        Direction::Input => "capture",
        Direction::Output => "playback",
    }
}

/// Runs `worker`'s device until `stop` is set or the worker is no longer wanted.
fn run<W: StreamWorker>(worker: &W, stop: &AtomicBool) {
    let dir = W::DIRECTION;
    let side = side(dir);
    let status = worker.status();
    let mut backoff = RetryPolicy::SOUND_CARD_REOPEN.backoff();
    let mut opened_before = false;
    let mut last_error = String::new();
    let mut alsa = AlsaMessages::capture();
    while !stop.load(Ordering::Acquire) && worker.wanted() {
        let host = cpal::default_host();
        match worker.open(&host) {
            Ok(running) => {
                if opened_before {
                    status.health().add(counters::REOPENS, 1);
                }
                opened_before = true;
                status.up(dir);
                last_error.clear();
                backoff.reset();
                match worker.pump(running) {
                    End::Stop => break,
                    End::Failed(reason) => {
                        tracing::warn!(%reason, "audio {side} failed; reopening");
                        status.down(dir, reason);
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let said = alsa.take();
                if msg != last_error {
                    tracing::warn!(error = %msg, "audio {side} unavailable; retrying");
                    if !said.is_empty() {
                        tracing::debug!(alsa = %said, "what alsa-lib said");
                    }
                    last_error = msg.clone();
                }
                status.down(dir, msg);
            }
        }
        worker.between_attempts();
        let wait = backoff.next_delay();
        sleep_unless_stopped(stop, wait);
    }
}

/// An open, playing stream: dropping it closes the device.
pub(crate) struct Stream {
    _stream: cpal::Stream,
    /// The device's name, as `jarvis-kiosk devices` shows it.
    pub name: String,
    pub rate: u32,
    errors: std_mpsc::Receiver<cpal::Error>,
    xruns: Arc<AtomicU64>,
    xruns_taken: u64,
}

impl Stream {
    /// Builds a stream with `build` and starts it. The error callback handed to `build` counts
    /// xruns in `xruns`, queues errors for [`Stream::next_error`] and wakes the calling worker
    /// thread; failures name the device. Called from [`StreamWorker::open`], on the worker
    /// thread.
    pub fn start(
        dir: Direction,
        name: String,
        rate: u32,
        xruns: Arc<AtomicU64>,
        build: impl FnOnce(ErrorCallback) -> Result<cpal::Stream, cpal::Error>,
    ) -> Result<Stream, DeviceError> {
        let (err_tx, errors) = std_mpsc::channel();
        let worker = thread::current();
        let counted = xruns.clone();
        let xruns_taken = xruns.load(Ordering::Acquire);
        let backend = |source: cpal::Error| DeviceError::Backend {
            dir: dir.label(),
            device: name.clone(),
            source,
        };
        let stream = build(Box::new(move |e| {
            if e.kind() == cpal::ErrorKind::Xrun {
                counted.fetch_add(1, Ordering::AcqRel);
            }
            let _ = err_tx.send(e);
            worker.unpark();
        }))
        .map_err(backend)?;
        stream.play().map_err(backend)?;
        tracing::info!(device = %name, rate, "audio {} started", side(dir));
        Ok(Stream {
            _stream: stream,
            name,
            rate,
            errors,
            xruns,
            xruns_taken,
        })
    }

    /// Xruns (the device ran out of audio, or overflowed) since the last call: each one moves
    /// the speaker's or the microphone's timeline against the other.
    pub fn take_xruns(&mut self) -> u64 {
        let now = self.xruns.load(Ordering::Acquire);
        let new = now.saturating_sub(self.xruns_taken);
        self.xruns_taken = now;
        new
    }

    /// The next stream error that needs a reopen; xruns are glitches, not failures.
    pub fn next_error(&self) -> Option<cpal::Error> {
        while let Ok(e) = self.errors.try_recv() {
            if e.kind() != cpal::ErrorKind::Xrun {
                return Some(e);
            }
        }
        None
    }
}

/// What `build` gets to pass as a stream's error callback.
pub(crate) type ErrorCallback = Box<dyn FnMut(cpal::Error) + Send>;

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Acquire) {
        let d = left.min(step);
        thread::park_timeout(d);
        left = left.saturating_sub(d);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use jarvis_core::health::{AdapterState, Health};

    /// Missing for two attempts, then open; the first stream fails, the second is stopped.
    struct Flaky {
        status: AudioStatus,
        opens: Cell<u32>,
        pumps: Cell<u32>,
        between: Cell<u32>,
    }

    impl Flaky {
        fn new(health: &Health) -> Self {
            Flaky {
                status: AudioStatus::new(health.clone(), (false, true)),
                opens: Cell::new(0),
                pumps: Cell::new(0),
                between: Cell::new(0),
            }
        }
    }

    impl StreamWorker for Flaky {
        const DIRECTION: Direction = Direction::Output;
        type Running = ();

        fn open(&self, _: &cpal::Host) -> Result<(), DeviceError> {
            let n = self.opens.replace(self.opens.get() + 1);
            if n < 2 {
                return Err(DeviceError::NotFound {
                    dir: "output",
                    key: "audio.output_device",
                    wanted: "usb".into(),
                    available: "none".into(),
                });
            }
            Ok(())
        }

        fn pump(&self, (): ()) -> End {
            if self.pumps.replace(self.pumps.get() + 1) == 0 {
                End::Failed("usb: gone".into())
            } else {
                End::Stop
            }
        }

        fn status(&self) -> &AudioStatus {
            &self.status
        }

        fn between_attempts(&self) {
            self.between.set(self.between.get() + 1);
        }
    }

    #[test]
    fn reopens_until_the_stream_stops_and_reports_each_change_once() {
        let h = Health::new("k", 0);
        let worker = Flaky::new(&h);
        run(&worker, &AtomicBool::new(false));
        assert_eq!(
            (worker.opens.get(), worker.pumps.get(), worker.between.get()),
            (4, 2, 3)
        );
        let s = h.snapshot();
        assert_eq!(s.adapters["audio"], AdapterState::Up);
        assert_eq!(
            s.counters[counters::REOPENS],
            1,
            "the first open is no reopen"
        );
        assert_eq!(s.last_errors.len(), 2, "{:?}", s.last_errors);
    }

    #[test]
    fn a_stop_request_ends_the_loop_before_any_open() {
        let worker = Flaky::new(&Health::new("k", 0));
        run(&worker, &AtomicBool::new(true));
        assert_eq!(worker.opens.get(), 0);
    }
}
