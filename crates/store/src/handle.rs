//! Async access to the store without blocking the runtime: one dedicated OS thread owns the
//! [`Store`] and runs closures sent over a bounded channel, one at a time, in send order.
//!
//! A commit with `synchronous=FULL` waits for an fsync (milliseconds on a kiosk's SD card);
//! doing that on a tokio worker would stall audio and WebRTC tasks sharing it.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Store, StoreError, StoreOpened, StoreOptions};

/// Queued jobs before `call` starts waiting (back-pressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 256;

type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// Cloneable async handle to the store thread. The thread (and the SQLite connection) ends
/// when the last handle is dropped, after finishing the jobs already queued.
#[derive(Clone, Debug)]
pub struct StoreHandle {
    jobs: mpsc::Sender<Job>,
}

impl StoreHandle {
    /// Opens the store on its own thread (integrity check and migrations included, so they do
    /// not block the runtime either) and returns the handle with the open report.
    pub async fn open(opts: StoreOptions) -> Result<(StoreHandle, StoreOpened), StoreError> {
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("kiosk-store".into())
            .spawn(move || match Store::open_with(opts) {
                Ok((store, report)) => {
                    if ready_tx.send(Ok(report)).is_ok() {
                        serve(store, rx);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| StoreError::WorkerGone(format!("cannot start the store thread: {e}")))?;
        let report = ready_rx
            .await
            .map_err(|_| StoreError::WorkerGone("it panicked while opening the store".into()))??;
        Ok((StoreHandle { jobs }, report))
    }

    /// Moves an already opened store onto its own thread.
    pub fn spawn(store: Store) -> Result<StoreHandle, StoreError> {
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("kiosk-store".into())
            .spawn(move || serve(store, rx))
            .map_err(|e| StoreError::WorkerGone(format!("cannot start the store thread: {e}")))?;
        Ok(StoreHandle { jobs })
    }

    /// Runs `f` on the store thread and returns its result:
    /// `handle.call(move |s| s.append(&event)).await?`.
    ///
    /// If `f` panics, the transaction it had open rolls back, the thread keeps serving, and
    /// this call returns [`StoreError::WorkerGone`].
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::WorkerGone("the store thread has exited".into()))?;
        rx.await
            .map_err(|_| StoreError::WorkerGone("a store job panicked (see the log)".into()))?
    }

    /// Runs `f` on the store thread from synchronous code and waits at most `timeout`.
    ///
    /// For sync traits called inside async code (the badge module's member cache): it never
    /// waits for queue space (a full queue is an error at once), replies over a std channel so
    /// it works under any runtime flavour, and inside a multi-thread runtime it lets tokio move
    /// the worker's other tasks elsewhere while it waits.
    pub fn call_blocking<R, F>(&self, timeout: Duration, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                StoreError::Busy("its queue is full (the disk may be very slow)".into())
            }
            mpsc::error::TrySendError::Closed(_) => {
                StoreError::WorkerGone("the store thread has exited".into())
            }
        })?;
        let wait = || {
            rx.recv_timeout(timeout).map_err(|e| match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => StoreError::Busy(format!(
                    "no answer within {} ms (the job still runs)",
                    timeout.as_millis()
                )),
                std::sync::mpsc::RecvTimeoutError::Disconnected => {
                    StoreError::WorkerGone("a store job panicked (see the log)".into())
                }
            })
        };
        let in_multi_thread_runtime = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if in_multi_thread_runtime {
            tokio::task::block_in_place(wait)?
        } else {
            wait()?
        }
    }

    /// Queues `f` without waiting for it or its result (errors are logged on the store
    /// thread). For cache writes whose failure must never delay a member.
    pub fn submit<F>(&self, what: &'static str, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&mut Store) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |store| {
            if let Err(e) = f(store) {
                tracing::warn!(error = %e, "{what} failed");
            }
        });
        self.jobs.try_send(job).map_err(|_| {
            StoreError::Busy(format!(
                "{what} not queued: the store queue is full or closed"
            ))
        })
    }
}

fn serve(mut store: Store, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut store))).is_err() {
            tracing::error!(path = %store.path().display(), "a store job panicked; its transaction was rolled back");
        }
    }
}
