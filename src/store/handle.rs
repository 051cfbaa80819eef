//! Async access to the store without blocking the runtime: one dedicated OS thread owns the
//! [`Store`] and runs closures sent over a bounded channel, one at a time, in send order.
//!
//! A commit with `synchronous=FULL` waits for an fsync (milliseconds on a kiosk's SD card);
//! doing that on a tokio worker would stall audio and WebRTC tasks sharing it.

use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

use super::{OpenReport, Store, StoreError, StoreOptions};

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
    pub async fn open(opts: StoreOptions) -> Result<(StoreHandle, OpenReport), StoreError> {
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
}

fn serve(mut store: Store, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.blocking_recv() {
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut store))).is_err() {
            tracing::error!(path = %store.path().display(), "a store job panicked; its transaction was rolled back");
        }
    }
}
