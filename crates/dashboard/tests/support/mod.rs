//! A real Postgres database migrated by the real script, kiosk rows written the way the sync
//! path writes them (`kiosk_events`, derived by the central trigger), a dashboard login role
//! that is only a member of `dashboard_service`, and dashboards on loopback ports.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jarvis_dashboard::config::DashboardConfig;
use jarvis_dashboard::db::Central;
use jarvis_dashboard::server::{self, App};

pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The same server, database `db`, user `user` (trust auth on the test server).
pub fn url_for(user: &str, db: &str) -> String {
    let base = admin_url();
    let base = base.split('?').next().unwrap_or(&base).to_owned();
    let (scheme, rest) = base.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{user}@{host}/{db}?sslmode=disable")
}

#[path = "../../../../tests/central_support/psql.rs"]
mod psql_command;
pub use psql_command::psql;

/// A fresh database with every central migration and its own dashboard login role, both
/// dropped on drop.
pub struct TestDb {
    pub name: String,
    /// The schema owner's URL.
    pub url: String,
    /// The dashboard's role (member of dashboard_service only).
    pub role: String,
    seq: AtomicU32,
}

impl TestDb {
    pub fn migrated(tag: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dash_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql(&admin_url(), &format!("CREATE DATABASE \"{name}\""));
        let db = TestDb {
            url: url_for("postgres", &name),
            role: format!("{name}_role"),
            name,
            seq: AtomicU32::new(1),
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
        db.psql(&format!(
            "CREATE ROLE \"{r}\" LOGIN IN ROLE dashboard_service",
            r = db.role
        ));
        db
    }

    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// The dashboard's own connection URL.
    pub fn dashboard_url(&self) -> String {
        url_for(&self.role, &self.name)
    }

    pub fn add_kiosk(&self, kiosk_id: &str, gym_id: &str) {
        self.psql(&format!(
            "INSERT INTO kiosks (kiosk_id, gym_id, label, created_at) \
             VALUES ('{kiosk_id}', '{gym_id}', 'front desk', now() - interval '1 day')"
        ));
    }

    /// One event as the sync path inserts it; `ago_s` before now (received then too).
    pub fn event(
        &self,
        kiosk_id: &str,
        session: Option<&str>,
        kind: &str,
        payload: &str,
        ago_s: u64,
    ) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let session = session.map_or("NULL".into(), |s| format!("'{s}'"));
        self.psql(&format!(
            "INSERT INTO kiosk_events (event_id, kiosk_id, session_id, seq, kind, occurred_at, payload, received_at) \
             VALUES (gen_random_uuid(), '{kiosk_id}', {session}, {seq}, '{kind}', \
                     now() - make_interval(secs => {ago_s}), \
                     jsonb_build_object('kind', '{kind}') || '{payload}'::jsonb, \
                     now() - make_interval(secs => {ago_s}))"
        ));
    }

    pub fn heartbeat(&self, kiosk_id: &str, ago_s: u64, backlog: u64, oldest_s: u64) {
        self.event(
            kiosk_id,
            None,
            "heartbeat",
            &format!(
                r#"{{"health": {{"version": "0.1.0", "uptime_s": 100, "outbox_backlog": {backlog}, "outbox_oldest_age_s": {oldest_s}}}}}"#
            ),
            ago_s,
        );
    }

    /// A session started `ago_s` ago; ended with `nusd` of output audio if `ended`.
    pub fn session(&self, kiosk_id: &str, ago_s: u64, ended: bool, nusd: u64) -> String {
        let id = self.psql("SELECT gen_random_uuid()");
        self.event(
            kiosk_id,
            Some(&id),
            "session_started",
            r#"{"model": "gpt-realtime"}"#,
            ago_s,
        );
        self.event(
            kiosk_id,
            Some(&id),
            "session_connected",
            r#"{"connect_ms": 420}"#,
            ago_s,
        );
        if nusd > 0 {
            self.event(
                kiosk_id,
                Some(&id),
                "response_usage",
                &format!(
                    r#"{{"tokens": {{"output_audio": 100}}, "cost": {{"input_audio_nusd": 0, "output_audio_nusd": {nusd}, "input_text_nusd": 0, "output_text_nusd": 0, "transcription_nusd": 0}}}}"#
                ),
                ago_s.saturating_sub(1),
            );
        }
        if ended {
            self.event(
                kiosk_id,
                Some(&id),
                "session_ended",
                r#"{"reason": "goodbye", "duration_ms": 30000}"#,
                ago_s.saturating_sub(2),
            );
        }
        id
    }

    pub fn alert(&self, kiosk_id: &str, code: &str, severity: &str, message: &str) {
        self.event(
            kiosk_id,
            None,
            "alert",
            &format!(r#"{{"code": "{code}", "severity": "{severity}", "message": "{message}"}}"#),
            1,
        );
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Two -c: each runs on its own (DROP DATABASE refuses a transaction block).
        let _ = Command::new("psql")
            .args([admin_url().as_str(), "-X", "-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .arg("-c")
            .arg(format!("DROP ROLE IF EXISTS \"{}\"", self.role))
            .output();
    }
}

/// The config of a dashboard on `db` as its own role, on a free loopback port.
pub fn config(db: &TestDb) -> DashboardConfig {
    let mut cfg = DashboardConfig::default();
    cfg.budgets.timezone = midday_zone();
    cfg.dashboard.listen = "127.0.0.1:0".parse().unwrap();
    cfg.dashboard.instance = Some("test".into());
    cfg.dashboard.secure_cookie = false;
    cfg.central.url = db.dashboard_url();
    cfg
}

/// A fixed-offset time zone where it is about noon now: the tests' events, minutes or hours
/// old, then fall on the budget's "today" whatever hour of the UTC day the tests run (a run
/// just after midnight UTC would otherwise see them yesterday).
pub fn midday_zone() -> String {
    let utc_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    // POSIX names invert the sign: Etc/GMT-2 is UTC+2.
    match 12 - utc_hour as i64 {
        0 => "UTC".into(),
        east if east > 0 => format!("Etc/GMT-{east}"),
        west => format!("Etc/GMT+{}", -west),
    }
}

/// Adds an operator as the admin would (`jarvis-dashboard operator add`).
pub async fn add_operator(db: &TestDb, name: &str, password: &str, gyms: Option<&[String]>) {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    jarvis_dashboard::auth::upsert_operator(&client, name, password, gyms)
        .await
        .unwrap();
}

/// A running dashboard (page only); stops when dropped.
pub struct Dashboard {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Dashboard {
    pub async fn start(cfg: DashboardConfig) -> Dashboard {
        let db = Central::new(&cfg.central, "test").unwrap();
        let listener = server::bind(cfg.dashboard.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Arc::new(App {
            cfg,
            db,
            instance: "test".into(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(app.clone(), listener, async {
            let _ = stopped.await;
        }));
        Dashboard {
            addr,
            app,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Logs in; returns the `Cookie` header value, or the HTTP status of a refusal.
    pub async fn login(&self, operator: &str, password: &str) -> Result<String, u16> {
        let resp = http()
            .post(self.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("operator", operator), ("password", password)]))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 303 {
            return Err(resp.status().as_u16());
        }
        let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        Ok(set.split(';').next().unwrap().to_owned())
    }

    /// GET `path` with the cookie: status and body.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, String) {
        let mut req = http().get(self.url(path));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A client that shows redirects instead of following them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// An `application/x-www-form-urlencoded` body, as a browser's form sends it.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
