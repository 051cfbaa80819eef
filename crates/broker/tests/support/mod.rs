//! A real Postgres database migrated by the real script, the project's emulator acting as
//! OpenAI, and brokers in front of it on loopback ports.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use jarvis_broker::config::BrokerConfig;
use jarvis_broker::db::Central;
use jarvis_broker::server::{self, App};
use jarvis_broker::upstream::Upstream;
use jarvis_config::secrets::Secret;
use jarvis_realtime_emulator::faults::Faults;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig};

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn with_db(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{db}?sslmode=disable")
}

#[path = "../../../../tests/central_support/psql.rs"]
mod psql_command;
pub use psql_command::psql;

/// A fresh database with every central migration, dropped on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn migrated(tag: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "broker_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql(&admin_url(), &format!("CREATE DATABASE \"{name}\""));
        let db = TestDb {
            url: with_db(&admin_url(), &name),
            name,
        };
        let out = Command::new(repo().join("scripts/central-migrate.sh"))
            .arg(&db.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "central-migrate.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Registers a kiosk row (the broker does not need its Postgres login role).
    pub fn add_kiosk(&self, kiosk_id: &str, gym_id: &str) {
        self.psql(&format!(
            "INSERT INTO kiosks (kiosk_id, gym_id) VALUES ('{kiosk_id}', '{gym_id}')"
        ));
    }

    /// A session of today that cost `usd`, as the trigger would have derived it.
    pub fn spent(&self, kiosk_id: &str, gym_id: &str, usd: &str) {
        self.psql(&format!(
            "INSERT INTO openai_realtime_sessions (session_id, session_started_at, kiosk_id, gym_id, \
             output_audio_tokens_cost_usd) VALUES (gen_random_uuid(), now(), '{kiosk_id}', '{gym_id}', {usd})"
        ));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                admin_url().as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// The emulator acting as OpenAI, with these `--fault`s.
pub async fn emulator(faults: &[&str]) -> Emulator {
    let scenario = Scenario::load(&repo().join("tests/fixtures/scenarios/kiosk_e2e.toml")).unwrap();
    let mut config = EmulatorConfig::new(scenario);
    config.faults = Faults::parse(faults).unwrap();
    Emulator::start(config).await.unwrap()
}

/// The emulator acting as OpenAI for GPT-Live (`live_goodbye.toml`), with these `--fault`s.
pub async fn live_emulator(faults: &[&str]) -> Emulator {
    let scenario =
        Scenario::load(&repo().join("tests/fixtures/scenarios/live_goodbye.toml")).unwrap();
    let mut config = EmulatorConfig::new(scenario);
    config.faults = Faults::parse(faults).unwrap();
    Emulator::start(config).await.unwrap()
}

/// The broker config for `db` and `base_url`, on a free loopback port.
pub fn config(db: &TestDb, base_url: &str) -> BrokerConfig {
    let mut cfg = BrokerConfig::default();
    cfg.broker.listen = "127.0.0.1:0".parse().unwrap();
    cfg.broker.instance = Some("test".into());
    cfg.central.url = db.url.clone();
    cfg.openai.base_url = base_url.to_owned();
    cfg
}

/// A running broker; stops when dropped.
pub struct Broker {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Broker {
    pub async fn start(cfg: BrokerConfig) -> Broker {
        let central = Central::new(&cfg.central, "test").unwrap();
        let upstream = Upstream::new(&cfg.openai, Secret::new("sk-org-test")).unwrap();
        let listener = server::bind(cfg.broker.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Arc::new(App::new(cfg, central, upstream));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(app.clone(), listener, async {
            let _ = stopped.await;
        }));
        Broker {
            addr,
            app,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The `openai.token_url` a kiosk would use.
    pub fn token_url(&self) -> String {
        self.url("/v1/realtime/client_secrets")
    }

    /// A new token for `kiosk_id` (as `jarvis-broker kiosk add` issues it).
    pub async fn token(&self, kiosk_id: &str) -> String {
        self.app.central.issue_token(kiosk_id, None).await.unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
