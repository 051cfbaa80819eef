//! Start-up to READY: spawn the real binary with a fake `NOTIFY_SOCKET` and time the
//! READY=1 datagram. Budget: 300 ms. Prints a table; run with `cargo bench --bench startup`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{NotifySocket, Scratch, terminate};

const RUNS: usize = 20;

fn main() {
    let scratch = Scratch::new("[badge]\nsource = \"none\"\n");
    let notify = NotifySocket::bind(scratch.path());
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut child = scratch
            .command(&["--log", "human", "run"])
            .env("NOTIFY_SOCKET", &notify.path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jarvis-kiosk");
        notify
            .wait_for("READY=1", Duration::from_secs(10))
            .expect("READY=1 within 10 s");
        samples.push(start.elapsed());
        terminate(&mut child, Duration::from_secs(5)).expect("stops within 5 s");
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| start-up to READY ({RUNS} runs) | min | median | p95 | max | budget |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| jarvis-kiosk run | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | 300 ms |",
        ms(samples[0]),
        ms(samples[RUNS / 2]),
        ms(samples[RUNS * 95 / 100]),
        ms(samples[RUNS - 1])
    );
}
