//! The status socket: `status` connects to `{health.runtime_dir}/status.sock` and reads one
//! JSON [`StatusReport`]. A socket, unlike a file the daemon rewrites, tells a dead daemon
//! (refused) from a hung one (accepts, never answers) and is always current.

use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use super::report::{Observer, StatusReport};

/// Largest report `status` accepts (a real one is a few KiB).
const MAX_REPORT: u64 = 1024 * 1024;

/// How long the daemon may take to write a report to a slow reader.
const WRITE_WAIT: Duration = Duration::from_secs(5);

pub fn path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("status.sock")
}

/// Why the daemon could not open its status socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketBindError {
    #[error(
        "another jarvis-kiosk is already running on this kiosk (it answers on {}{}): \
         stop it first (systemctl stop jarvis-kiosk), two daemons would fight over the scanner",
        path.display(),
        pid.map(|p| format!(", pid {p}")).unwrap_or_default()
    )]
    AlreadyRunning { path: PathBuf, pid: Option<u32> },
    #[error(
        "cannot open the status socket {}: {source}; health.runtime_dir must exist and be \
         writable by the service user (systemd's RuntimeDirectory= does this)",
        path.display()
    )]
    Io { path: PathBuf, source: io::Error },
}

/// Binds the socket, replacing one left by a daemon that died, and lets the service's group
/// (technicians added to it) connect.
pub fn bind(runtime_dir: &Path) -> Result<UnixListener, SocketBindError> {
    let path = path(runtime_dir);
    let io_err = |source| SocketBindError::Io {
        path: path.clone(),
        source,
    };
    match UnixStream::connect(&path) {
        Ok(stream) => {
            let pid = read_report(stream, Duration::from_secs(1))
                .ok()
                .map(|r| r.health.pid);
            return Err(SocketBindError::AlreadyRunning { path, pid });
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(&path).map_err(io_err)?;
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(&path).map_err(io_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(io_err)?;
    Ok(listener)
}

/// Answers every connection with a fresh report until `shutdown`, then removes the socket.
pub async fn serve(listener: UnixListener, observer: Observer, shutdown: CancellationToken) {
    let bound = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    let listener = &listener;
    super::accept::each_connection(
        "status socket",
        &shutdown,
        move || async move { listener.accept().await.map(|(stream, _)| stream) },
        |mut stream| {
            let observer = observer.clone();
            async move {
                let report = observer.report().await;
                let Ok(body) = serde_json::to_vec(&report) else {
                    return;
                };
                let write = async {
                    stream.write_all(&body).await?;
                    stream.shutdown().await
                };
                if let Ok(Err(e)) = tokio::time::timeout(WRITE_WAIT, write).await {
                    tracing::debug!(error = %e, "status socket: reader went away");
                }
            }
        },
    )
    .await;
    if let Some(path) = bound {
        let _ = std::fs::remove_file(path);
    }
}

/// Why `status` got no report from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("not running (nothing listens on {})", .0.display())]
    NotRunning(PathBuf),
    #[error(
        "not allowed to read {}: run `sudo jarvis-kiosk status`, or add yourself to the \
         jarvis-kiosk group",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    #[error(
        "NOT RESPONDING: it accepted the connection on {} but sent nothing for {} s (hung? \
         `journalctl -u jarvis-kiosk` shows its last words; systemd's watchdog restarts it)",
        path.display(),
        waited.as_secs()
    )]
    NoAnswer { path: PathBuf, waited: Duration },
    #[error("answered on {} with something that is not a status report ({source}): is the \
             running daemon another version? restart it", path.display())]
    Garbled {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Asks the daemon whose runtime directory is `runtime_dir` for its report.
pub fn query(runtime_dir: &Path, wait: Duration) -> Result<StatusReport, QueryError> {
    let path = path(runtime_dir);
    let stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            QueryError::NotRunning(path.clone())
        }
        io::ErrorKind::PermissionDenied => QueryError::PermissionDenied(path.clone()),
        _ => QueryError::Io {
            path: path.clone(),
            source: e,
        },
    })?;
    read_report(stream, wait).map_err(|e| match e {
        ReadError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            QueryError::NoAnswer {
                path: path.clone(),
                waited: wait,
            }
        }
        ReadError::Io(source) => QueryError::Io {
            path: path.clone(),
            source,
        },
        ReadError::Json(source) => QueryError::Garbled {
            path: path.clone(),
            source,
        },
    })
}

enum ReadError {
    Io(io::Error),
    Json(serde_json::Error),
}

fn read_report(stream: UnixStream, wait: Duration) -> Result<StatusReport, ReadError> {
    stream.set_read_timeout(Some(wait)).map_err(ReadError::Io)?;
    let mut body = Vec::new();
    stream
        .take(MAX_REPORT)
        .read_to_end(&mut body)
        .map_err(ReadError::Io)?;
    serde_json::from_slice(&body).map_err(ReadError::Json)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixListener as StdListener;

    use super::*;
    use jarvis_config::StorageConfig;
    use jarvis_core::health::{CurrentSession, Health};
    use jarvis_core::money::NanoUsd;
    use jarvis_store::{StoreHandle, StoreOptions};

    const WAIT: Duration = Duration::from_secs(5);

    async fn observer(dir: &Path) -> Observer {
        let cfg = StorageConfig {
            path: dir.join("kiosk.db"),
            ..Default::default()
        };
        let (store, _) = StoreHandle::open(StoreOptions::from_config(&cfg))
            .await
            .unwrap();
        let health = Health::new("kiosk-7", 1_000);
        health.set_current_session(Some(CurrentSession {
            session_id: uuid::Uuid::from_u128(7),
            first_name: Some("Camille".into()),
            started_at_ms: 1_000,
            cost: NanoUsd(42),
            billed_seconds: None,
        }));
        Observer { health, store }
    }

    /// A daemon's status server on `dir`, stopped by cancelling the token.
    async fn running(dir: &Path) -> (tokio::task::JoinHandle<()>, CancellationToken) {
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(bind(dir).unwrap(), observer(dir).await, stop.clone()));
        (server, stop)
    }

    /// Runs the blocking client off the runtime, as the `status` command does.
    async fn query_async(dir: &Path, wait: Duration) -> Result<StatusReport, QueryError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || query(&dir, wait))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_daemon_answers_with_its_report_and_removes_the_socket_on_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (server, stop) = running(dir.path()).await;
        let report = query_async(dir.path(), WAIT).await.unwrap();
        assert_eq!(report.health.kiosk_id, "kiosk-7");
        assert_eq!(report.health.pid, std::process::id());
        let session = report.health.current_session.as_ref().unwrap();
        assert_eq!(session.first_name.as_deref(), Some("Camille"));
        assert_eq!(session.cost, NanoUsd(42));
        assert!(report.current_session_ms().unwrap() > 0);
        assert_eq!(report.outbox.as_ref().unwrap().pending, 0);
        assert!(report.store_error.is_none());

        let mode = std::fs::metadata(path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660, "the service's group may connect");

        stop.cancel();
        server.await.unwrap();
        assert!(!path(dir.path()).exists());
        assert!(matches!(
            query_async(dir.path(), WAIT).await,
            Err(QueryError::NotRunning(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_daemon_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let (server, stop) = running(dir.path()).await;
        let dir2 = dir.path().to_path_buf();
        let err = tokio::task::spawn_blocking(move || bind(&dir2).map(|_| ()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&err, SocketBindError::AlreadyRunning { pid: Some(p), .. } if *p == std::process::id()),
            "{err}"
        );
        assert!(err.to_string().contains("systemctl stop jarvis-kiosk"));
        stop.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_socket_left_by_a_dead_daemon_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        drop(StdListener::bind(path(dir.path())).unwrap());
        assert!(path(dir.path()).exists());
        assert!(matches!(
            query(dir.path(), WAIT),
            Err(QueryError::NotRunning(_))
        ));
        bind(dir.path()).expect("the stale socket is replaced");
    }

    #[test]
    fn a_daemon_that_accepts_but_never_answers_is_reported_hung() {
        let dir = tempfile::tempdir().unwrap();
        let _listener = StdListener::bind(path(dir.path())).unwrap();
        let err = query(dir.path(), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, QueryError::NoAnswer { .. }), "{err}");
        assert!(err.to_string().contains("NOT RESPONDING"));
    }

    #[test]
    fn something_else_on_the_socket_is_named_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let listener = StdListener::bind(path(dir.path())).unwrap();
        let writer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"hello").unwrap();
        });
        let err = query(dir.path(), WAIT).unwrap_err();
        writer.join().unwrap();
        assert!(matches!(err, QueryError::Garbled { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_missing_runtime_dir_is_not_running_and_cannot_be_bound() {
        let missing = Path::new("/nonexistent/jarvis-kiosk");
        assert!(matches!(
            query(missing, WAIT),
            Err(QueryError::NotRunning(_))
        ));
        let err = bind(missing).unwrap_err();
        assert!(err.to_string().contains("health.runtime_dir"), "{err}");
    }
}
