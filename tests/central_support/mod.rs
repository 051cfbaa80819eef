//! Shared by the `central_*` tests: a real Postgres database per test, migrated with the real
//! script, with kiosks registered by the real script, dropped (with its kiosk roles) on drop.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use jarvis_kiosk::sync::conn::CentralTarget;
use jarvis_kiosk::sync::writer::Writer;

/// `DATABASE_URL`, else the local trust-auth server.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The same URL pointing at another database.
pub fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let scheme = base.split("://").next().unwrap_or("postgres");
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

/// Adds `sslmode=disable` unless the URL already says (the local test server has no TLS).
pub fn plain(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A short name unique across parallel tests and processes.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}_{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Runs psql as the admin on `url`; panics with its stderr on failure.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed: {sql}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A registered kiosk: its role, the URL printed by the script, the password file.
#[derive(Debug, Clone)]
pub struct KioskLogin {
    pub kiosk_id: String,
    pub role: String,
    pub url: String,
    pub password_file: PathBuf,
    pub password: String,
}

pub struct TestDb {
    pub name: String,
    /// Admin URL of this database.
    pub url: String,
    pub dir: tempfile::TempDir,
    roles: Mutex<Vec<String>>,
}

impl TestDb {
    /// Creates an empty database.
    pub fn empty(tag: &str) -> TestDb {
        let name = unique(&format!("central_{tag}"));
        psql(&admin_url(), &format!("CREATE DATABASE \"{name}\""));
        TestDb {
            url: with_db(&admin_url(), &name),
            name,
            dir: tempfile::tempdir().unwrap(),
            roles: Mutex::new(Vec::new()),
        }
    }

    /// Creates a database with every migration applied.
    pub fn migrated(tag: &str) -> TestDb {
        let db = TestDb::empty(tag);
        db.migrate(&[]);
        db
    }

    /// Runs scripts/central-migrate.sh with extra arguments; returns its stdout.
    pub fn migrate(&self, extra: &[&str]) -> String {
        let out = Command::new(repo().join("scripts/central-migrate.sh"))
            .args(extra)
            .arg(&self.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "central-migrate.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }

    /// Registers a kiosk with scripts/central-add-kiosk.sh (unique id from `tag`).
    pub fn add_kiosk(&self, tag: &str, gym: &str) -> KioskLogin {
        let kiosk_id = unique(tag).replace('_', "-");
        self.add_kiosk_id(&kiosk_id, gym, &[])
    }

    /// Runs scripts/central-add-kiosk.sh for exactly this id.
    pub fn add_kiosk_id(&self, kiosk_id: &str, gym: &str, extra: &[&str]) -> KioskLogin {
        let password_file = self.dir.path().join(format!("{kiosk_id}.pw"));
        let mut cmd = Command::new(repo().join("scripts/central-add-kiosk.sh"));
        cmd.args(extra)
            .arg("--password-file")
            .arg(&password_file)
            .arg(&self.url)
            .arg(kiosk_id);
        if !gym.is_empty() {
            cmd.arg(gym);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "central-add-kiosk.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().last().unwrap().trim().to_owned();
        let role = self.psql(&format!(
            "SELECT login_role FROM kiosks WHERE kiosk_id = '{kiosk_id}'"
        ));
        self.roles.lock().unwrap().push(role.clone());
        KioskLogin {
            kiosk_id: kiosk_id.to_owned(),
            role,
            url: plain(&url),
            password: std::fs::read_to_string(&password_file).unwrap(),
            password_file,
        }
    }

    /// A connection target for this kiosk, as the daemon would build it.
    pub fn target(&self, k: &KioskLogin) -> CentralTarget {
        CentralTarget::new(&k.url, Some(&k.password), None, &k.kiosk_id).unwrap()
    }

    /// The admin's connection target (superuser: bypasses RLS).
    pub fn admin_target(&self) -> CentralTarget {
        CentralTarget::new(&plain(&self.url), None, None, "admin").unwrap()
    }

    pub async fn admin_writer(&self) -> Writer {
        Writer::connect(&self.admin_target()).await.unwrap()
    }

    /// A raw client logged in as the kiosk's role.
    pub async fn kiosk_client(&self, k: &KioskLogin) -> tokio_postgres::Client {
        self.target(k).connect().await.unwrap()
    }

    pub async fn admin_client(&self) -> tokio_postgres::Client {
        self.admin_target().connect().await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = admin_url();
        let _ = Command::new("psql")
            .args([
                admin.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            ])
            .output();
        for role in self.roles.lock().unwrap().iter() {
            let _ = Command::new("psql")
                .args([
                    admin.as_str(),
                    "-X",
                    "-q",
                    "-c",
                    &format!("DROP ROLE IF EXISTS \"{role}\""),
                ])
                .output();
        }
    }
}

/// The SQLSTATE of a failed statement, if the server answered.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_owned())
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
