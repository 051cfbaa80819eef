//! Notifications end to end: incidents detected in real Postgres, delivered by two
//! dashboard instances at once to a local webhook server that fails and recovers.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::Mutex;

use jarvis_dashboard::config::{DashboardConfig, Webhook, WebhookFormat};
use jarvis_dashboard::db::Central;
use jarvis_dashboard::notify::Notifier;
use support::{TestDb, config};

/// One request the webhook received.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    accepted: bool,
    body: serde_json::Value,
}

#[derive(Default)]
struct Hook {
    /// Requests still to refuse with a 500.
    fail: AtomicU32,
    seen: Mutex<Vec<Received>>,
}

impl Hook {
    async fn accepted(&self) -> Vec<Received> {
        self.seen
            .lock()
            .await
            .iter()
            .filter(|r| r.accepted)
            .cloned()
            .collect()
    }
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: String) -> StatusCode {
    let refuse = hook
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    hook.seen.lock().await.push(Received {
        delivery: headers
            .get("x-jarvis-delivery")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        accepted: !refuse,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    });
    if refuse {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

/// A webhook receiver on a loopback port, refusing its first `fail` requests.
async fn webhook(fail: u32) -> (String, Arc<Hook>) {
    let hook = Arc::new(Hook::default());
    hook.fail.store(fail, Ordering::SeqCst);
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hook)
}

fn with_hook(db: &TestDb, url: &str, format: WebhookFormat, per_minute: u32) -> DashboardConfig {
    let mut cfg = config(db);
    cfg.alerts.poll_s = 1;
    cfg.alerts.silent_after_s = 300;
    cfg.webhooks = vec![Webhook {
        name: "ops".into(),
        url: Some(url.to_owned()),
        url_file: None,
        format,
        per_minute,
    }];
    cfg
}

/// Two instances, each with its own connections, as two processes would have.
struct Pair {
    a: (Notifier, Central),
    b: (Notifier, Central),
}

impl Pair {
    fn new(cfg: &DashboardConfig) -> Pair {
        let one = |name: &str| {
            (
                Notifier::new(cfg, name).unwrap(),
                Central::new(&cfg.central, name).unwrap(),
            )
        };
        Pair {
            a: one("a"),
            b: one("b"),
        }
    }

    /// Both instances run rounds at the same time until `done` holds (30 s at most).
    async fn until<F, Fut>(&mut self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (ra, rb) = tokio::join!(self.a.0.round(&self.a.1), self.b.0.round(&self.b.1));
            ra.unwrap();
            rb.unwrap();
            if done().await {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A few more rounds of both (to show that nothing else is sent).
    async fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            let (ra, rb) = tokio::join!(self.a.0.round(&self.a.1), self.b.0.round(&self.b.1));
            ra.unwrap();
            rb.unwrap();
        }
    }
}

#[tokio::test]
async fn a_failing_webhook_gets_each_notification_once_when_it_recovers() {
    let db = TestDb::migrated("hookfail");
    db.add_kiosk("k1", "gym-a");
    db.add_kiosk("k2", "gym-a");
    db.heartbeat("k1", 600, 0, 0);
    db.heartbeat("k2", 5, 0, 0);
    // 4 refusals: all 3 quick tries of the first claim, and the first of the next.
    let (url, hook) = webhook(4).await;
    let cfg = with_hook(&db, &url, WebhookFormat::Json, 20);
    let mut pair = Pair::new(&cfg);

    pair.until("the opening", || async {
        !hook.accepted().await.is_empty()
    })
    .await;
    db.heartbeat("k1", 0, 0, 0);
    pair.until("the clearing", || async {
        hook.accepted().await.len() >= 2
    })
    .await;
    pair.rounds(5).await;

    let got = hook.accepted().await;
    let events: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|r| {
            (
                r.body["event"].as_str().unwrap(),
                r.body["kind"].as_str().unwrap(),
                r.body["kiosk_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("open", "kiosk_silent", "k1"),
            ("clear", "kiosk_silent", "k1")
        ],
        "each once, in order, k2 never"
    );
    assert_ne!(got[0].delivery, got[1].delivery);
    assert_eq!(hook.seen.lock().await.len(), 6, "4 refused + 2 accepted");
    assert_eq!(
        db.psql(
            "SELECT string_agg(event || ' ' || status || ' ' || attempts || ' ' || http_status || ' ' || coalesce(last_error, '-'), ', ' ORDER BY delivery_id) FROM dashboard_deliveries"
        ),
        "open sent 2 200 -, clear sent 1 200 -",
        "outcomes recorded"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM dashboard_incidents WHERE cleared_at IS NOT NULL"),
        "1"
    );
}

#[tokio::test]
async fn budget_unpriced_usage_store_recovery_and_stalled_sync_reach_a_slack_webhook() {
    let db = TestDb::migrated("hookkinds");
    db.add_kiosk("k1", "gym-a");
    // Alive, but its oldest unsynced event is older than alerts.sync_stalled_after_s (900).
    db.heartbeat("k1", 5, 40, 1000);
    db.session("k1", 60, true, 2_000_000_000);
    db.alert("k1", "unpriced_model", "critical", "no pricing for gpt-new");
    db.alert(
        "k1",
        "store_recovered",
        "warning",
        "store rebuilt from backup",
    );
    db.alert(
        "k1",
        "buffer_pressure",
        "warning",
        "not critical: no notification",
    );
    let (url, hook) = webhook(0).await;
    let mut cfg = with_hook(&db, &url, WebhookFormat::Slack, 20);
    cfg.budgets.gym_daily_usd = jarvis_core::money::UsdAmount("1.50".parse().unwrap());
    let mut pair = Pair::new(&cfg);

    pair.until("three openings", || async {
        hook.accepted().await.len() >= 3
    })
    .await;
    db.psql("UPDATE kiosk_alerts SET acknowledged_at = now() WHERE code = 'unpriced_model'");
    pair.until("the clearing", || async {
        hook.accepted().await.len() >= 4
    })
    .await;
    pair.rounds(3).await;

    let mut texts: Vec<String> = hook
        .accepted()
        .await
        .iter()
        .map(|r| r.body["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 5, "{texts:?}");
    let clear = texts.pop().unwrap();
    assert!(
        clear.starts_with(":white_check_mark: cleared: unpriced_usage"),
        "{clear}"
    );
    texts.sort();
    assert!(
        texts[0].contains("gym_over_budget: gym gym-a spent 2.00 USD today"),
        "{texts:?}"
    );
    assert!(texts[0].contains("budget 1.50 USD"), "{texts:?}");
    assert!(
        texts[1].contains("store_recovered: kiosk k1: store_recovered: store rebuilt"),
        "{texts:?}"
    );
    assert!(
        texts[2]
            .contains("sync_stalled: kiosk k1 (gym gym-a): oldest unsynced event is 1000 s old"),
        "{texts:?}"
    );
    assert!(
        texts[3].contains("unpriced_usage: kiosk k1: unpriced_model: no pricing for gpt-new"),
        "{texts:?}"
    );
}

#[tokio::test]
async fn deliveries_are_rate_limited_across_instances() {
    let db = TestDb::migrated("hookrate");
    for i in 0..5 {
        db.add_kiosk(&format!("k{i}"), "gym-a");
        db.heartbeat(&format!("k{i}"), 900, 0, 0);
    }
    let (url, hook) = webhook(0).await;
    let cfg = with_hook(&db, &url, WebhookFormat::Json, 2);
    let mut pair = Pair::new(&cfg);
    pair.until("two deliveries", || async {
        hook.accepted().await.len() >= 2
    })
    .await;
    pair.rounds(5).await;
    assert_eq!(
        hook.accepted().await.len(),
        2,
        "2 per minute over both instances"
    );
    assert_eq!(
        db.psql("SELECT status || ' ' || count(*) FROM dashboard_deliveries GROUP BY status ORDER BY status"),
        "pending 3\nsent 2"
    );
}
