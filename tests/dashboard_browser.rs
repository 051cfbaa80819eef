//! The dashboard in a real headless browser (Debian's `chromium` driven by `chromedriver` over
//! WebDriver) while a real kiosk daemon, on the emulator, syncs to the same central: the page
//! renders on a phone-sized screen, shows the kiosk's live session, and updates by itself
//! when the session ends. A screenshot of the live session is kept under
//! `target/tmp/dashboard-live-session.png` (the path is printed) as the CI artefact.

#[path = "central_support/mod.rs"]
mod central_support;
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use jarvis_dashboard::config::DashboardConfig;
use jarvis_dashboard::db::Central;
use jarvis_dashboard::server::{self, App};
use support::rig::{Emulator, Kiosk};

const PASSWORD: &str = "correct horse battery staple";
/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port, and one headless chromium session; both end on drop.
struct Browser {
    rt: Arc<tokio::runtime::Runtime>,
    http: reqwest::Client,
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(rt: Arc<tokio::runtime::Runtime>) -> Browser {
        let port = support::net::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/lib.sh installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        support::wait_until("chromedriver ready", Duration::from_secs(20), || {
            rt.block_on(async {
                let v: Value = http
                    .get(format!("{base}/status"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                v["value"]["ready"].as_bool().filter(|r| *r)
            })
        });
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            rt,
            http,
            base,
            session: String::new(),
            driver,
            _profile: profile,
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // A phone's screen (headless windows are never narrower than 500 px).
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0}},
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", b._profile.path().display())]
            }
        }}});
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        b
    }

    /// One WebDriver command; panics with the driver's answer on an error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        self.rt.block_on(async {
            let req = match method {
                "POST" => self.http.post(&url).json(&body.unwrap_or(json!({}))),
                "DELETE" => self.http.delete(&url),
                _ => self.http.get(&url),
            };
            let resp = req.send().await.expect("chromedriver answers");
            let status = resp.status();
            let v: Value = resp.json().await.expect("WebDriver JSON");
            assert!(status.is_success(), "{method} {path}: {status} {v}");
            v["value"].clone()
        })
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), None);
    }

    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The PNG screenshot, written to `path`.
    fn screenshot(&self, path: &std::path::Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let mut dec = Command::new("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        dec.stdin
            .take()
            .unwrap()
            .write_all(b64.as_str().unwrap().as_bytes())
            .unwrap();
        let out = dec.wait_with_output().unwrap();
        assert!(out.status.success() && out.stdout.starts_with(b"\x89PNG"));
        std::fs::write(path, out.stdout).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = self.rt.block_on(self.http.delete(url).send());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The dashboard's login role (member of dashboard_service only), dropped on drop.
struct DashRole(String);

impl Drop for DashRole {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([central_support::admin_url().as_str(), "-X", "-q", "-c"])
            .arg(format!("DROP ROLE IF EXISTS \"{}\"", self.0))
            .output();
    }
}

#[test]
fn the_page_follows_a_real_kiosk_session_in_a_headless_browser() {
    let db = central_support::TestDb::migrated("dash_browser");
    let login = db.add_kiosk("kiosk-dash", "gym-dash");
    db.psql(
        "INSERT INTO members (member_id, gym_id, badge, first_name) VALUES ('m-1', 'gym-dash', '0012345678', 'Marie')",
    );
    let role = DashRole(format!("{}_dash", db.name));
    db.psql(&format!(
        "CREATE ROLE \"{}\" LOGIN IN ROLE dashboard_service",
        role.0
    ));
    let hash = jarvis_dashboard::auth::hash_password(PASSWORD).unwrap();
    db.psql(&format!(
        "INSERT INTO dashboard_operators (operator, password_hash) VALUES ('alice', '{hash}')"
    ));

    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let mut cfg = DashboardConfig::default();
    cfg.dashboard.listen = "127.0.0.1:0".parse().unwrap();
    cfg.dashboard.secure_cookie = false;
    cfg.dashboard.refresh_s = 1;
    cfg.alerts.silent_after_s = 30;
    cfg.central.url = {
        let admin = central_support::with_db(&central_support::admin_url(), &db.name);
        let (scheme, rest) = admin.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        central_support::plain(&format!("{scheme}://{}@{host}", role.0))
    };
    let (addr, _stop) = rt.block_on(async {
        let db = Central::new(&cfg.central, "browser").unwrap();
        let listener = server::bind(cfg.dashboard.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Arc::new(App {
            cfg,
            db,
            instance: "browser".into(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(app, listener, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    });

    // The kiosk: heartbeats every second, a session that stays live until 15 s of silence.
    let emulator = Emulator::start("live_until_idle.toml", &[]);
    let kiosk = Kiosk::start_with_env(
        &emulator,
        &login.kiosk_id,
        "[central]\nheartbeat_s = 1\nbatch_max_ms = 100\n[session]\nidle_timeout_s = 15\n",
        &[
            ("JARVIS_KIOSK__CENTRAL__URL", login.url.as_str()),
            (
                "JARVIS_KIOSK__CENTRAL__PASSWORD_FILE",
                login.password_file.to_str().unwrap(),
            ),
        ],
    );
    support::wait_until(
        "the kiosk's first heartbeat in central",
        Duration::from_secs(20),
        || {
            (db.psql(&format!(
                "SELECT count(*) FROM kiosk_heartbeats WHERE kiosk_id = '{}'",
                login.kiosk_id
            )) != "0")
                .then_some(())
        },
    );

    let browser = Browser::start(rt.clone());
    browser.goto(&format!("http://{addr}/"));
    browser.type_into("input[name=operator]", "alice");
    browser.type_into("input[name=password]", PASSWORD);
    browser.click("button");
    let row = format!("[data-kiosk=\"{}\"]", login.kiosk_id);
    support::wait_until(
        "the page with the kiosk alive",
        Duration::from_secs(20),
        || {
            let cls = browser.eval(&format!(
                "var r = document.querySelector('{row}'); return r ? r.className : null"
            ));
            (cls == "up").then_some(())
        },
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    browser.screenshot(&dir.join("dashboard-phone.png"));
    let widths = browser.eval("return [window.innerWidth, document.documentElement.scrollWidth]");
    assert_eq!(widths[0], 390, "a phone-sized viewport");
    assert!(
        widths[1].as_u64() <= Some(390),
        "no sideways scrolling on a phone: {widths}"
    );

    // A member scans: the page (no reload) shows the session live.
    kiosk.scanner.scan("0012345678");
    let live_js = format!(
        "var l = document.querySelector('{row} [data-live]'); return l ? l.dataset.live : null"
    );
    let session = support::wait_until(
        "the live session on the page",
        Duration::from_secs(20),
        || {
            let v = browser.eval(&live_js);
            v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
        },
    );
    let central = db.psql(&format!(
        "SELECT session_id FROM openai_realtime_sessions WHERE kiosk_id = '{}' AND ended_at IS NULL",
        login.kiosk_id
    ));
    assert_eq!(session, central, "the page shows central's live session");
    let shot = dir.join("dashboard-live-session.png");
    browser.screenshot(&shot);
    println!("screenshot of the live session: {}", shot.display());

    // The member goes silent: the kiosk ends the session, the page follows by itself.
    support::wait_until(
        "the page showing the kiosk idle again",
        Duration::from_secs(40),
        || (browser.eval(&live_js).as_str() == Some("")).then_some(()),
    );
    let updates = browser.eval("return +document.getElementById('live').dataset.updates");
    assert!(
        updates.as_u64().unwrap() >= 2,
        "updated in place: {updates}"
    );
    let reason = db.psql(&format!(
        "SELECT end_reason FROM openai_realtime_sessions WHERE session_id = '{session}'"
    ));
    assert_eq!(reason, "idle_timeout");
    let text = browser.eval("return document.body.innerText");
    assert!(text.as_str().unwrap().contains("idle_timeout 1"), "{text}");
    drop(browser);
    kiosk.stop();
}
