//! The page against real Postgres: what an operator sees of the fleet (liveness, live session,
//! spend against budgets, alerts, backlog, SLA), limited to its gyms, behind a login that is
//! audited; the dashboard's role reads no member data and writes no fleet row.

mod support;

use support::{Dashboard, TestDb, add_operator, config};

const PASSWORD: &str = "correct horse battery staple";

/// Two gyms: k1 alive in a session with a backlog, k2 silent with an ended $1.50 session,
/// k3 (other gym) with a critical alert.
fn fleet(db: &TestDb) -> String {
    db.add_kiosk("k1", "gym-a");
    db.add_kiosk("k2", "gym-a");
    db.add_kiosk("k3", "gym-b");
    db.heartbeat("k1", 5, 7, 42);
    db.heartbeat("k2", 900, 0, 0);
    db.heartbeat("k3", 10, 0, 0);
    let live = db.session("k1", 120, false, 0);
    db.session("k2", 1000, true, 1_500_000_000);
    db.alert(
        "k3",
        "store_recovered",
        "critical",
        "the store was recovered <after a crash>",
    );
    live
}

fn row<'a>(html: &'a str, kiosk: &str) -> &'a str {
    let start = html
        .find(&format!("data-kiosk=\"{kiosk}\""))
        .unwrap_or_else(|| panic!("no row for {kiosk} in {html}"));
    let end = html[start..].find("</tr>").unwrap() + start;
    &html[start..end]
}

#[tokio::test]
async fn an_operator_sees_the_fleet_live() {
    let db = TestDb::migrated("page");
    let live = fleet(&db);
    add_operator(&db, "alice", PASSWORD, None).await;
    let dash = Dashboard::start(config(&db)).await;
    let cookie = dash.login("alice", PASSWORD).await.unwrap();

    let (status, html) = dash.get("/?days=7", Some(&cookie)).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<meta name=\"viewport\""),
        "phone-sized layout"
    );
    let k1 = row(&html, "k1");
    assert!(k1.contains("class=\"up\""), "{k1}");
    assert!(k1.contains(&format!("data-live=\"{live}\"")), "{k1}");
    assert!(k1.contains("7 (42 s old)"), "backlog: {k1}");
    let k2 = row(&html, "k2");
    assert!(k2.contains("class=\"down\""), "{k2}");
    assert!(k2.contains("15 min ago"), "{k2}");
    assert!(k2.contains("1 / $1.50"), "{k2}");
    assert!(
        html.contains("today 2 sessions, $1.50 of $100.00 budget"),
        "{html}"
    );
    assert!(html.contains("2/3 kiosks alive"), "{html}");
    assert!(html.contains("<b>store_recovered</b> k3"), "{html}");
    assert!(html.contains("&lt;after a crash&gt;"), "escaped: {html}");
    assert!(html.contains("420 ms avg"), "{html}");
    // 3 heartbeats of 3 kiosks registered a day ago, one expected a minute: 3 / 4320.
    assert!(html.contains("<dd data-uptime>0.07%</dd>"), "{html}");
    assert!(html.contains("goodbye 1"), "{html}");
    assert!(html.contains("Cost per day (USD)") && html.contains("Sessions per hour"));
    assert!(html.contains("<svg class=\"chart\""));

    // The live session ends: the refreshing part shows k1 idle.
    db.event(
        "k1",
        Some(&live),
        "session_ended",
        r#"{"reason": "goodbye", "duration_ms": 1000}"#,
        0,
    );
    let (status, frag) = dash.get("/fragment?days=7", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(row(&frag, "k1").contains("data-live=\"\""), "{frag}");
    assert!(!frag.contains("<html"), "a fragment, not a page");
    // The daily rollup the period figures read agrees with the sessions it was kept from.
    assert_eq!(
        db.psql("SELECT sum(sessions) || ' ' || sum(ended) || ' ' || sum(cost_usd) FROM session_days"),
        db.psql(
            "SELECT count(*) || ' ' || count(ended_at) || ' ' || sum(total_cost_usd) FROM openai_realtime_sessions"
        )
    );
}

#[tokio::test]
async fn an_operator_limited_to_a_gym_sees_only_it() {
    let db = TestDb::migrated("gyms");
    fleet(&db);
    add_operator(&db, "bob", PASSWORD, Some(&["gym-b".to_owned()])).await;
    let dash = Dashboard::start(config(&db)).await;
    let cookie = dash.login("bob", PASSWORD).await.unwrap();
    let (_, html) = dash.get("/", Some(&cookie)).await;
    assert!(html.contains("data-kiosk=\"k3\""), "{html}");
    assert!(
        !html.contains("data-kiosk=\"k1\"") && !html.contains("gym-a"),
        "{html}"
    );
    assert!(html.contains("<dd>0 (0 connected, 0 ended)</dd>"), "{html}");
}

#[tokio::test]
async fn logins_are_required_safe_and_audited() {
    let db = TestDb::migrated("login");
    add_operator(&db, "alice", PASSWORD, None).await;
    let dash = Dashboard::start(config(&db)).await;

    let (status, _) = dash.get("/", None).await;
    assert_eq!(status, 303, "the page needs a login");
    let (status, _) = dash.get("/fragment", None).await;
    assert_eq!(status, 401);
    let (status, _) = dash.get("/", Some("jarvis_dashboard=forged")).await;
    assert_eq!(status, 303, "a made-up token is no session");

    assert_eq!(dash.login("alice", "wrong password!!").await, Err(401));
    assert_eq!(dash.login("mallory", PASSWORD).await, Err(401));
    let resp = support::http()
        .post(dash.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(support::form(&[
            ("operator", "alice"),
            ("password", PASSWORD),
        ]))
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let token = cookie.split_once('=').unwrap().1;
    assert_eq!(
        db.psql(&format!(
            "SELECT count(*) FROM dashboard_sessions WHERE token_hash = sha256('{token}'::bytea)"
        )),
        "1",
        "only the token's hash is stored"
    );
    assert_eq!(dash.get("/", Some(&cookie)).await.0, 200);

    let resp = support::http()
        .post(dash.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(dash.get("/", Some(&cookie)).await.0, 303, "logged out");

    assert_eq!(
        db.psql(
            "SELECT string_agg(operator || ' ' || action || ' ' || outcome || ' ' || coalesce(reason, '-'), ', ' ORDER BY audit_id) FROM dashboard_audit"
        ),
        "alice login refused bad_password, mallory login refused unknown_operator, alice login ok -, alice logout ok -"
    );
    assert!(db.psql("SELECT bool_and(remote LIKE '127.0.0.1:%') FROM dashboard_audit") == "t");

    // A disabled operator's password no longer opens anything.
    db.psql("UPDATE dashboard_operators SET disabled_at = now() WHERE operator = 'alice'");
    assert_eq!(dash.login("alice", PASSWORD).await, Err(401));
}

#[test]
fn the_dashboard_role_reads_no_member_and_writes_no_fleet_row() {
    let db = TestDb::migrated("grants");
    db.add_kiosk("k1", "gym-a");
    let me = db.dashboard_url();
    let denied = |sql: &str| {
        let out = std::process::Command::new("psql")
            .args([me.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{sql} was allowed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("permission denied"), "{sql}: {err}");
    };
    denied("SELECT * FROM members");
    denied("UPDATE kiosks SET gym_id = 'x'");
    denied(
        "INSERT INTO dashboard_operators (operator, password_hash) VALUES ('eve', '$argon2id$x')",
    );
    denied("UPDATE kiosk_alerts SET acknowledged_at = now()");
    assert_eq!(support::psql(&me, "SELECT count(*) FROM kiosks"), "1");
}

#[tokio::test]
async fn the_operator_command_adds_an_operator_limited_to_gyms() {
    let db = TestDb::migrated("cli");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jarvis-dashboard"))
        .args([
            "operator",
            "add",
            "carol",
            "--gym",
            "gym-a,gym-c",
            "--database-url",
            &db.url,
        ])
        .arg("--password-file")
        .arg(&pw)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("operator carol saved (gyms gym-a, gym-c)"),
        "{err}"
    );
    assert_eq!(
        db.psql("SELECT array_to_string(gyms, ',') || ' ' || left(password_hash, 10) FROM dashboard_operators"),
        "gym-a,gym-c $argon2id$"
    );
    let dash = Dashboard::start(config(&db)).await;
    assert!(dash.login("carol", PASSWORD).await.is_ok());

    std::fs::write(&pw, "short\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jarvis-dashboard"))
        .args(["operator", "add", "dave", "--database-url", &db.url])
        .arg("--password-file")
        .arg(&pw)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 12"));
}

/// `jarvis-dashboard run` as systemd runs it: configured by `JARVIS_DASHBOARD__*`, serving
/// until SIGTERM, then exiting cleanly; a bad key is named with exit status 78.
#[test]
fn the_binary_serves_until_sigterm_and_names_a_bad_key() {
    let db = TestDb::migrated("bin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jarvis-dashboard"))
        .args(["--log", "human", "run"])
        .env("JARVIS_DASHBOARD__DASHBOARD__LISTEN", &listen)
        .env("JARVIS_DASHBOARD__CENTRAL__URL", db.dashboard_url())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let login_page = loop {
        let got = std::net::TcpStream::connect(&listen)
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            });
        if let Some(page) = got {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "not listening");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(login_page.starts_with("HTTP/1.1 200"), "{login_page}");
    assert!(
        login_page.contains("content-security-policy"),
        "{login_page}"
    );
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jarvis-dashboard"))
        .args(["config", "check"])
        .env("JARVIS_DASHBOARD__DASHBOARD__REFRESH_S", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dashboard.refresh_s"));
}

fn sigterm(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn a_gpt_live_session_counts_in_the_period_with_its_billed_seconds() {
    let db = TestDb::migrated("live");
    db.add_kiosk("k1", "gym-a");
    db.session("k1", 600, true, 1_500_000_000);
    let live = db.psql("SELECT gen_random_uuid()");
    let event =
        |kind: &str, payload: &str, ago_s: u64| db.event("k1", Some(&live), kind, payload, ago_s);
    event("session_started", r#"{"model": "gpt-live-1"}"#, 300);
    event(
        "live_usage",
        r#"{"model": "gpt-live-1", "seconds": 88, "billed_seconds": 88, "voice_nusd": 73333333, "upper_bound": false, "closed": true}"#,
        210,
    );
    event(
        "delegation_usage",
        r#"{"model": "gpt-5-mini", "response_id": "resp_1", "cost_nusd": 855000}"#,
        250,
    );
    event(
        "session_ended",
        r#"{"reason": "goodbye", "duration_ms": 90000, "live": {"billed_seconds": 90, "voice_nusd": 75000000, "delegation_nusd": 855000, "upper_bound": false, "estimated": false, "charged_nusd": 0}}"#,
        209,
    );
    add_operator(&db, "alice", PASSWORD, None).await;
    let dash = Dashboard::start(config(&db)).await;
    let cookie = dash.login("alice", PASSWORD).await.unwrap();
    let (status, html) = dash.get("/?days=7", Some(&cookie)).await;
    assert_eq!(status, 200, "{html}");
    // $1.50 + $0.073333333 (the close's 88 s) + $0.000855.
    assert!(html.contains("today 2 sessions, $1.57"), "{html}");
    assert!(
        html.contains("<dt>GPT-Live</dt><dd>1 of them, 88 s billed</dd>"),
        "{html}"
    );
    assert_eq!(
        db.psql("SELECT sum(sessions) || ' ' || sum(cost_usd) || ' ' || sum(live_sessions) || ' ' || sum(billed_seconds) FROM session_days"),
        "2 1.574188333 1 88"
    );
}
