//! The real `jarvis-broker` for the daemon's end-to-end tests: on its own runtime and port,
//! in front of the emulator acting as OpenAI, with its state in a test Postgres.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use super::central_support::{TestDb, plain};
use jarvis_broker::config::BrokerConfig;
use jarvis_broker::db::Central;
use jarvis_broker::server::{self, App};
use jarvis_broker::upstream::Upstream;
use jarvis_config::secrets::Secret;

/// A `jarvis-broker` on its own runtime and port, until dropped.
pub struct Broker {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Broker {
    pub fn start(db: &TestDb, upstream_url: &str, listen: &str) -> Broker {
        Broker::start_with(db, upstream_url, listen, |_| {})
    }

    /// [`Broker::start`] with the config adjusted first (the fleet's `[live]` policy, limits).
    pub fn start_with(
        db: &TestDb,
        upstream_url: &str,
        listen: &str,
        adjust: impl FnOnce(&mut BrokerConfig),
    ) -> Broker {
        let mut cfg = BrokerConfig::default();
        cfg.broker.listen = listen.parse().unwrap();
        cfg.broker.instance = Some("e2e".into());
        cfg.central.url = plain(&db.url);
        cfg.openai.base_url = upstream_url.to_owned();
        adjust(&mut cfg);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let central = Central::new(&cfg.central, "e2e").unwrap();
                let upstream = Upstream::new(&cfg.openai, Secret::new("sk-org-e2e")).unwrap();
                let listener = server::bind(cfg.broker.listen).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Arc::new(App::new(cfg, central, upstream));
                server::serve(app, listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().expect("the broker did not start");
        Broker {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The mint, for `openai.token_url`.
    pub fn token_url(&self) -> String {
        format!("http://{}/v1/realtime/client_secrets", self.addr)
    }

    /// The GPT-Live relay, for `openai.live.relay_url`.
    pub fn relay_url(&self) -> String {
        format!("http://{}/v1/live/sessions", self.addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Registers `kiosk_id` and writes its token as `jarvis-broker kiosk add --token-file` does
/// (that command is tested in the broker crate).
pub fn register(db: &TestDb, kiosk_id: &str, token_file: &Path) {
    db.psql(&format!(
        "INSERT INTO kiosks (kiosk_id, gym_id) VALUES ('{kiosk_id}', 'gym-e2e')"
    ));
    issue_token(db, kiosk_id, token_file);
}

/// Writes a broker token for a kiosk central already knows.
pub fn issue_token(db: &TestDb, kiosk_id: &str, token_file: &Path) {
    let mut cfg = BrokerConfig::default().central;
    cfg.url = plain(&db.url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = rt.block_on(async {
        let central = Central::new(&cfg, "e2e").unwrap();
        central.issue_token(kiosk_id, None).await.unwrap()
    });
    std::fs::write(token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(
        token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}
