//! Start-up to READY: spawn the real binary with a fake `NOTIFY_SOCKET` and time the
//! READY=1 datagram. Budget: 300 ms. Prints a table; run with `cargo bench --bench startup`.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 20;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[kiosk]\nid = \"bench\"\n[storage]\npath = \"{0}/k.db\"\n[health]\nruntime_dir = \"{0}/run\"\n[badge]\nsource = \"none\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut samples = Vec::with_capacity(RUNS);
    let mut buf = [0u8; 4096];
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_jarvis-kiosk"))
            .args([
                "--config",
                config.to_str().expect("utf-8 path"),
                "--log",
                "human",
                "run",
            ])
            .env("NOTIFY_SOCKET", &sock_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jarvis-kiosk");
        loop {
            let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        samples.push(start.elapsed());
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
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
