//! An in-test TCP proxy on 127.0.0.1:0 whose link can be cut and restored.
//!
//! A cut is a black hole, as when a kiosk's uplink goes down: established connections stop
//! carrying bytes (held open, silent) and new ones are accepted but never answered, so the
//! client has to notice by its own timeouts. Restoring closes the held sockets and forwards
//! new connections again.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    cut: watch::Sender<bool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = watch::channel(false);
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let held_acc = held.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    held_acc.lock().unwrap().push(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_rx = cut_rx.clone();
                let held = held_acc.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await
                    else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {
                            let mut h = held.lock().unwrap();
                            h.push(c);
                            h.push(s);
                        }
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            held,
            accept,
        }
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// New connections go through again while the ones cut stay black holes, as after a
    /// NAT or uplink change that forgot them.
    pub fn restore_new_only(&self) {
        self.cut.send_replace(false);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
        self.held.lock().unwrap().clear();
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let user = authority.rsplit_once('@').map(|(u, _)| u);
        match user {
            Some(u) => format!("{scheme}://{u}@127.0.0.1:{}{tail}", self.port),
            None => format!("{scheme}://127.0.0.1:{}{tail}", self.port),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
