//! A few connections to central shared by a central service's concurrent requests
//! (tokio-postgres pipelines the queries of each); a broken one is reopened by the next request
//! that picks it. The broker and the dashboard each keep their own `T` per connection: the
//! client alone, or the client with its prepared statements.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::conn::CentralTarget;

/// What a pooled connection holds: at least its client, to tell whether it still works.
pub trait HasClient {
    fn client(&self) -> &Client;
}

impl HasClient for Client {
    fn client(&self) -> &Client {
        self
    }
}

/// `size` connection slots to one target, handed out round robin.
pub struct SharedConnections<T> {
    target: CentralTarget,
    slots: Vec<Mutex<Option<Arc<T>>>>,
    next: AtomicUsize,
}

impl<T: HasClient> SharedConnections<T> {
    /// Connects lazily: nothing happens until the first [`SharedConnections::get`].
    pub fn new(target: CentralTarget, size: usize) -> Self {
        SharedConnections {
            target,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn target(&self) -> &CentralTarget {
        &self.target
    }

    /// The next slot's connection; when it is empty or closed, a new client is connected and
    /// `open` makes the slot's `T` from it (preparing statements, say).
    pub async fn get<E, Fut>(&self, open: impl FnOnce(Client) -> Fut) -> Result<Arc<T>, E>
    where
        E: From<tokio_postgres::Error>,
        Fut: Future<Output = Result<T, E>>,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.client().is_closed()) {
            return Ok(c.clone());
        }
        let conn = Arc::new(open(self.target.connect().await?).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}
