//! How fast the running daemon answers what support and monitoring ask: the status socket
//! (one report, store queries included), a `/metrics` scrape, and the whole `status` command as
//! a technician runs it; with an empty store, and with 100 000 events waiting for a central
//! that has been away for weeks (every report counts them). Prints a table; run with
//! `cargo bench --bench status_views`.

#[path = "../tests/central_support/mod.rs"]
mod central_support;
#[path = "../tests/support/mod.rs"]
mod support;

use support::{NotifySocket, Scratch, net, terminate};

use std::process::Stdio;
use std::time::{Duration, Instant};

const RUNS: usize = 50;

/// Whole sessions of 8 responses: 10 events each.
const BACKLOG_SESSIONS: usize = 10_000;

fn main() {
    println!("| status views ({RUNS} runs each) | min | median | p95 | max |");
    println!("|---|---|---|---|---|");
    measure("empty store", 0);
    measure("100 000 events pending", BACKLOG_SESSIONS);
}

fn measure(store: &str, backlog_sessions: usize) {
    let scratch = Scratch::new("[badge]\nsource = \"none\"\n");
    if backlog_sessions > 0 {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let handle = central_support::open_store(&scratch.path().join("state")).await;
            central_support::append(&handle, central_support::sessions(backlog_sessions, 8)).await;
        });
    }
    let port = net::free_port();
    let notify = NotifySocket::bind(scratch.path());
    let mut child = scratch
        .command(&["run"])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("JARVIS_KIOSK__HEALTH__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn jarvis-kiosk");
    notify
        .wait_for("READY=1", Duration::from_secs(20))
        .expect("READY=1 within 20 s");

    let runtime_dir = scratch.path().join("run");
    let socket = time(|| {
        jarvis_kiosk::health::socket::query(&runtime_dir, Duration::from_secs(2))
            .expect("status report");
    });
    let metrics = time(|| {
        let (code, _) = net::http_get(port, "/metrics").expect("scrape");
        assert_eq!(code, 200);
    });
    let command = time(|| {
        let out = scratch.command(&["status"]).output().expect("status");
        assert!(out.status.success());
    });
    terminate(&mut child, Duration::from_secs(5)).expect("stops within 5 s");

    for (what, samples) in [
        ("status socket: one report", socket),
        ("GET /metrics", metrics),
        ("`jarvis-kiosk status` command", command),
    ] {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {what}, {store} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(samples[0]),
            ms(samples[RUNS / 2]),
            ms(samples[RUNS * 95 / 100]),
            ms(samples[RUNS - 1])
        );
    }
}

/// Runs `f` [`RUNS`] times and returns the sorted durations.
fn time(mut f: impl FnMut()) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    samples
}
