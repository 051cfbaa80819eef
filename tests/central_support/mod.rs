//! Shared by the `central_*` tests: a real Postgres database per test, migrated with the real
//! script, with kiosks registered by the real script, dropped (with its kiosk roles) on drop.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub use crate::support::net::free_port;
use std::sync::atomic::{AtomicU32, Ordering};

pub mod proxy;

use jarvis_sync::conn::CentralTarget;
use jarvis_sync::writer::Writer;

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
#[path = "psql.rs"]
mod psql_command;
pub use psql_command::psql;

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

/// Host and port of the test server (for proxies and poolers in front of it).
pub fn server_addr() -> (String, u16) {
    let cfg: tokio_postgres::Config = admin_url().parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    (host, cfg.get_ports().first().copied().unwrap_or(5432))
}

/// A PgBouncer in transaction pooling mode in front of the test server, in a temp dir.
/// PgBouncer 1.18 has no prepared-statement support in this mode: a client that prepares
/// named statements fails through it, which is what the sync must survive.
pub struct PgBouncer {
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts one that knows `users` (role, password) and forwards every database.
    pub fn start(users: &[(&str, &str)]) -> PgBouncer {
        let dir = tempfile::tempdir().unwrap();
        let (host, server_port) = server_addr();
        let port = free_port();
        let auth: String = users
            .iter()
            .map(|(u, p)| format!("\"{u}\" \"{p}\"\n"))
            .collect();
        std::fs::write(dir.path().join("users.txt"), auth).unwrap();
        let ini = format!(
            "[databases]\n* = host={host} port={server_port}\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             auth_type = md5\nauth_file = {users}\npool_mode = transaction\n\
             default_pool_size = 4\nmax_client_conn = 50\nunix_socket_dir =\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {log}\n",
            users = dir.path().join("users.txt").display(),
            log = dir.path().join("pgbouncer.log").display(),
        );
        let ini_path = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).unwrap();
        let mut cmd = Command::new("pgbouncer");
        // PgBouncer refuses to run as root: drop to the postgres user when we are root.
        if nix::unistd::geteuid().is_root() {
            let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
            for p in std::fs::read_dir(dir.path()).unwrap() {
                nix::unistd::chown(&p.unwrap().path(), Some(pg.uid), None).unwrap();
            }
            nix::unistd::chown(dir.path(), Some(pg.uid), None).unwrap();
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pgbouncer is installed (Debian package `pgbouncer`)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not listen on {port}: {}",
                std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PgBouncer {
            port,
            child,
            _dir: dir,
        }
    }

    /// `url` with its host and port replaced by this pooler's.
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

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens (creating) a local store in `dir`, as the daemon does.
pub async fn open_store(dir: &Path) -> jarvis_store::StoreHandle {
    let cfg = jarvis_config::StorageConfig {
        path: dir.join("kiosk.db"),
        ..Default::default()
    };
    let opts = jarvis_store::StoreOptions::from_config(&cfg);
    jarvis_store::StoreHandle::open(opts).await.unwrap().0
}

/// `sessions` whole sessions of `responses` priced responses each, as the core records them.
pub fn sessions(sessions: usize, responses: usize) -> Vec<jarvis_core::events::KioskEvent> {
    use jarvis_core::events::*;
    use jarvis_core::money::NanoUsd;
    let mut out = Vec::new();
    let t0 = 1_763_700_000_000i64;
    for s in 0..sessions {
        let sid = Some(uuid::Uuid::now_v7());
        let t = t0 + s as i64 * 1000;
        out.push(KioskEvent::new(
            sid,
            t,
            EventPayload::SessionStarted {
                member_id: Some(format!("m{s}")),
                badge_hash: None,
                membership: MembershipStatus::Active,
                model: "gpt-realtime".into(),
            },
        ));
        for r in 0..responses {
            out.push(KioskEvent::new(
                sid,
                t + r as i64 + 1,
                EventPayload::ResponseUsage {
                    response_id: format!("resp_{s}_{r}"),
                    model: "gpt-realtime".into(),
                    tokens: TokenCounts {
                        input_audio: 100,
                        output_audio: 200,
                        ..Default::default()
                    },
                    cost: CostBreakdown {
                        input_audio_nusd: NanoUsd(3_200_000),
                        output_audio_nusd: NanoUsd(12_800_001),
                        ..Default::default()
                    },
                    raw_usage: serde_json::json!({"total_tokens": 300}),
                },
            ));
        }
        out.push(KioskEvent::new(
            sid,
            t + 999,
            EventPayload::SessionEnded {
                reason: EndReason::Goodbye,
                duration_ms: 999,
                tokens: TokenCounts::default(),
                cost: CostBreakdown::default(),
                detail: None,
                live: None,
            },
        ));
    }
    out
}

/// Appends events in chunks (one transaction each); returns `(seq, event)` in order.
pub async fn append(
    store: &jarvis_store::StoreHandle,
    events: Vec<jarvis_core::events::KioskEvent>,
) -> Vec<(i64, jarvis_core::events::KioskEvent)> {
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(1000) {
        let chunk = chunk.to_vec();
        let copy = chunk.clone();
        let seqs = store.call(move |s| s.append_batch(&copy)).await.unwrap();
        out.extend(seqs.into_iter().zip(chunk));
    }
    out
}

/// Settings for tests: small batches, quick retries, no heartbeats unless asked.
pub fn settings(kiosk_id: &str, dir: &Path) -> jarvis_sync::SyncSettings {
    use std::time::Duration;
    jarvis_sync::SyncSettings {
        kiosk_id: kiosk_id.to_owned(),
        batch: jarvis_core::sync_policy::BatchPolicy {
            max_events: 100,
            max_wait_ms: 10,
        },
        retry: jarvis_core::retry::RetryPolicy {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            factor: 2.0,
            jitter: true,
        },
        heartbeat_every: Duration::from_secs(3600),
        setup_retry: Duration::from_millis(300),
        statement_timeout: Duration::from_secs(3),
        idle_poll: Duration::from_millis(20),
        storage_path: dir.join("kiosk.db"),
    }
}

/// Waits until the outbox has nothing pending; panics after `secs`.
pub async fn wait_drained(
    store: &jarvis_store::StoreHandle,
    secs: u64,
) -> jarvis_store::OutboxStats {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let stats = store.call(|s| s.stats()).await.unwrap();
        if stats.pending == 0 {
            return stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "outbox not drained after {secs} s: {stats:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Asserts central holds exactly these events once each, with the same seq and session.
pub fn assert_central_matches(
    db: &TestDb,
    kiosk_id: &str,
    sent: &[(i64, jarvis_core::events::KioskEvent)],
) {
    let central = db.psql(&format!(
        "SELECT string_agg(event_id::text || ':' || seq || ':' || coalesce(session_id::text, '-'), ',' ORDER BY seq)
         FROM kiosk_events WHERE kiosk_id = '{kiosk_id}' AND kind NOT IN ('heartbeat', 'alert')"
    ));
    let local: Vec<String> = sent
        .iter()
        .map(|(seq, e)| {
            format!(
                "{}:{seq}:{}",
                e.event_id,
                e.session_id.map_or("-".into(), |s| s.to_string())
            )
        })
        .collect();
    assert_eq!(
        central,
        local.join(","),
        "central rows differ from the local outbox"
    );
    // Derived rows: every session counted each of its events exactly once.
    let miscounted = db.psql(
        "SELECT count(*) FROM openai_realtime_sessions s
         WHERE s.event_count <> (SELECT count(*) FROM kiosk_events e WHERE e.session_id = s.session_id)",
    );
    assert_eq!(miscounted, "0");
}
