//! How fast the running daemon answers what support and monitoring ask: the status socket
//! (one report, store queries included), a `/metrics` scrape, and the whole `status` command as
//! a technician runs it; with an empty store, and with 100 000 events waiting for a central
//! that has been away for weeks (every report counts them). Prints a table; run with
//! `cargo bench --bench status_views`.

#[path = "../tests/central_support/mod.rs"]
mod central_support;
#[path = "../tests/support/mod.rs"]
mod support;

use support::net;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
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
    let dir = tempfile::tempdir().expect("temp dir");
    if backlog_sessions > 0 {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let handle = central_support::open_store(dir.path()).await;
            central_support::append(&handle, central_support::sessions(backlog_sessions, 8)).await;
        });
    }
    let port = net::free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[kiosk]\nid = \"bench\"\n[storage]\npath = \"{0}/kiosk.db\"\n[health]\nruntime_dir = \"{0}/run\"\nlisten = \"127.0.0.1:{port}\"\n[badge]\nsource = \"none\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"))
        .args(["--config", config.to_str().expect("utf-8 path"), "run"])
        .env("NOTIFY_SOCKET", &notify)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn jarvis-kiosk");
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break;
        }
    }

    let runtime_dir = dir.path().join("run");
    let socket = time(|| {
        jarvis_kiosk::health::socket::query(&runtime_dir, Duration::from_secs(2))
            .expect("status report");
    });
    let metrics = time(|| {
        let (code, _) = net::http_get(port, "/metrics").expect("scrape");
        assert_eq!(code, 200);
    });
    let command = time(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"))
            .args(["--config", config.to_str().expect("utf-8 path"), "status"])
            .output()
            .expect("status");
        assert!(out.status.success());
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();

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
