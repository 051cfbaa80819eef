//! Offer creation -> `oai-events` data channel open, kiosk peer against the local emulator on
//! loopback (budget: 250 ms from badge scan to connected). Prints a table of N runs.
//!
//! `cargo bench --bench webrtc_connect` (runs: `WEBRTC_BENCH_RUNS`, default 50). With
//! `WEBRTC_BENCH_FAULTS=block-udp` the emulator's UDP goes unanswered and the kiosk connects
//! over ICE-TCP (the gym network that blocks UDP).

use std::path::Path;
use std::time::{Duration, Instant};

use jarvis_realtime::peer::{self, Peer, PeerEvent, PeerOptions};
use jarvis_realtime_emulator::faults::Faults;
use jarvis_realtime_emulator::scenario::Scenario;
use jarvis_realtime_emulator::{Emulator, EmulatorConfig};

/// Reads one milestone of a run.
type Milestone = fn(&Run) -> Duration;

const BUDGET: Duration = Duration::from_millis(250);

/// Milestones of one connect, each measured from the start of `Peer::offer`.
struct Run {
    offer: Duration,
    answer: Duration,
    connected: Duration,
    open: Duration,
}

async fn connect_once(client: &reqwest::Client, emu: &Emulator) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let (pending, offer) = Peer::offer(PeerOptions::for_base_url(&emu.base_url()))?;
    let offer_at = t0.elapsed();
    let resp = client
        .post(format!("{}/realtime/calls", emu.base_url()))
        .bearer_auth("ek_bench")
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await?
        .error_for_status()?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let answer = resp.text().await?;
    let answer_at = t0.elapsed();
    let (handle, mut events) = pending.accept(&answer)?;
    let mut connected = Duration::ZERO;
    let open = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await? {
            Some(PeerEvent::Connected) => connected = t0.elapsed(),
            Some(PeerEvent::ChannelOpen) => break t0.elapsed(),
            Some(PeerEvent::Closed { reason }) => anyhow::bail!("closed: {reason}"),
            Some(_) => {}
            None => anyhow::bail!("events ended"),
        }
    };
    drop(handle);
    client
        .post(format!("http://{}{location}/hangup", emu.addr()))
        .bearer_auth("sk_bench")
        .send()
        .await?;
    Ok(Run {
        offer: offer_at,
        answer: answer_at,
        connected,
        open,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("WEBRTC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    let scenario = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios/goodbye.toml"),
    )?;
    let faults = std::env::var("WEBRTC_BENCH_FAULTS").unwrap_or_default();
    let specs: Vec<&str> = faults.split(',').filter(|s| !s.trim().is_empty()).collect();
    let emu = Emulator::start(EmulatorConfig {
        faults: Faults::parse(&specs)?,
        ..EmulatorConfig::new(scenario)
    })
    .await?;
    let client = reqwest::Client::new();

    // The first connect of the process generates the DTLS certificate; the daemon does that at
    // start-up (`peer::warm_up`), so it is reported apart.
    let cold = connect_once(&client, &emu).await?;
    peer::warm_up()?;
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        all.push(connect_once(&client, &emu).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!(
        "webrtc_connect: kiosk peer -> local emulator over loopback, {runs} runs (+1 cold), \
         faults: {}",
        if specs.is_empty() {
            "none".into()
        } else {
            specs.join(",")
        }
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9}",
        "milestone (from Peer::offer)", "median ms", "p95 ms", "min ms", "max ms"
    );
    let rows: [(&str, Milestone); 4] = [
        ("offer built", |r| r.offer),
        ("SDP answer received (HTTP POST)", |r| r.answer),
        ("DTLS connected", |r| r.connected),
        ("oai-events channel open", |r| r.open),
    ];
    for (name, get) in rows {
        let mut v: Vec<Duration> = all.iter().map(get).collect();
        v.sort();
        println!(
            "{:<34} {:>9} {:>9} {:>9} {:>9}",
            name,
            ms(percentile(&v, 0.5)),
            ms(percentile(&v, 0.95)),
            ms(v[0]),
            ms(v[v.len() - 1])
        );
    }
    let mut open: Vec<Duration> = all.iter().map(|r| r.open).collect();
    open.sort();
    let p95 = percentile(&open, 0.95);
    println!(
        "cold first connect (incl. DTLS certificate): {} ms to open",
        ms(cold.open)
    );
    println!(
        "budget {} ms for channel open, p95 {} ms: {}",
        BUDGET.as_millis(),
        ms(p95),
        if p95 <= BUDGET { "PASS" } else { "OVER BUDGET" }
    );
    Ok(())
}
