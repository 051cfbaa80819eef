//! The accept loop both local servers (status socket, health endpoint) share.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Pause after a failed accept (out of file descriptors): retry without spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Takes connections until `shutdown`, each handled on its own task.
pub(crate) async fn each_connection<S, A, H, F>(
    server: &'static str,
    shutdown: &CancellationToken,
    mut accept: impl FnMut() -> A,
    handle: H,
) where
    A: Future<Output = std::io::Result<S>>,
    H: Fn(S) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = accept() => match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "{server}: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        tokio::spawn(handle(stream));
    }
}
