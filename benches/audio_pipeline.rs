//! Audio pipeline cost and added latency, each way, on the real signal chains (resampler,
//! framing, echo cancellation (or the half-duplex gate, last row), Opus; jitter buffer, Opus
//! decode, resampler) fed with speech.
//! Budgets: <= 30 ms added each way beyond the device buffer, <= 5 % of one core for both
//! directions together. Prints a table; run with `cargo bench --bench audio_pipeline`.
//!
//! Latency each way = algorithmic delay (10 ms Opus framing out, resampler filter delay, the
//! playback ring kept 10 ms ahead of the device period) + measured processing time of the
//! call that completes a frame + measured thread wake-up time (the callback unparks the
//! worker). The device's own buffer is excluded, as the budget says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use jarvis_audio::pipeline::{CaptureChain, EchoStage, PlaybackChain};
use jarvis_audio::{
    FRAME_MS, FRAME_SAMPLES, HalfDuplexGate, OpusEncoder, OpusFrame, SEND_FRAME_MS, wav,
};

const SECONDS: usize = 20;
/// The playback ring is kept this far ahead of the device's measured burst (see
/// `playback.rs`), which is one period on a steady device (`crates/audio/benches/playout.rs`
/// measures it on the virtual card).
const PLAYBACK_AHEAD_MS: f64 = 10.0;

fn speech(rate: u32) -> Vec<f32> {
    let w =
        wav::decode_mono_f32(include_bytes!("../assets/prompts/unavailable.wav")).expect("prompt");
    // Simple linear interpolation is enough to make bench input at any rate.
    let step = f64::from(w.sample_rate) / f64::from(rate);
    let one: Vec<f32> = (0..((w.samples.len() as f64) / step) as usize)
        .map(|i| {
            let x = i as f64 * step;
            let (j, f) = (x as usize, (x.fract()) as f32);
            let a = w.samples[j];
            let b = *w.samples.get(j + 1).unwrap_or(&a);
            a + (b - a) * f
        })
        .collect();
    one.iter()
        .copied()
        .cycle()
        .take(rate as usize * SECONDS)
        .collect()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    what: String,
    cpu_percent: f64,
    algo_ms: f64,
    proc_p50_ms: f64,
    proc_p99_ms: f64,
}

/// Capture at `rate` in device periods of 10 ms, with echo cancellation (the default) or the
/// half-duplex gate.
fn capture(rate: u32, aec: bool) -> Row {
    let input = speech(rate);
    let period = rate as usize / 100;
    let echo = if aec {
        EchoStage::aec(300).expect("canceller")
    } else {
        EchoStage::HalfDuplex(HalfDuplexGate::new(300))
    };
    let mut chain = CaptureChain::new(rate, echo).expect("chain");
    let mut frames = Vec::new();
    let mut completing = Vec::new();
    let start = Instant::now();
    for (i, block) in input.chunks(period).enumerate() {
        let t = Instant::now();
        let before = frames.len();
        chain.push(block, false, i as u64 * 10, &mut |f| {
            frames.push(f.expect("encode"))
        });
        if frames.len() > before {
            completing.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let total = start.elapsed().as_secs_f64();
    let algo = SEND_FRAME_MS as f64 + chain.algorithmic_delay_samples() as f64 * 1e3 / 48_000.0;
    let row = Row {
        what: format!(
            "capture {rate} Hz {} -> Opus",
            if aec { "+ AEC" } else { "gate" }
        ),
        cpu_percent: total / SECONDS as f64 * 100.0,
        algo_ms: algo,
        proc_p50_ms: percentile(&mut completing.clone(), 0.5),
        proc_p99_ms: percentile(&mut completing, 0.99),
    };
    assert!(!frames.is_empty());
    row
}

/// The speech as the server sends it: 20 ms Opus packets.
fn server_packets() -> Vec<OpusFrame> {
    let mut enc = OpusEncoder::new().expect("encoder");
    speech(48_000)
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| OpusFrame {
            data: enc.encode(f).expect("encode"),
            samples: FRAME_SAMPLES as u32,
        })
        .collect()
}

/// Playback of `frames` to a device at `rate`, one 20 ms slot at a time.
fn playback(frames: &[OpusFrame], rate: u32) -> Row {
    let mut chain = PlaybackChain::new(rate).expect("chain");
    let mut per_slot = Vec::with_capacity(frames.len());
    let mut sink = 0usize;
    let start = Instant::now();
    for (i, f) in frames.iter().enumerate() {
        let now = i as u64 * FRAME_MS;
        chain.push_rtp(i as u16, i as u32 * f.samples, &f.data, now);
        let t = Instant::now();
        chain.next_slot(now, &mut |s| sink += s.len());
        per_slot.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = start.elapsed().as_secs_f64();
    assert!(sink > 0);
    let algo = PLAYBACK_AHEAD_MS + chain.resampler_delay_samples() as f64 * 1e3 / f64::from(rate);
    Row {
        what: format!("RTP -> decode -> {rate} Hz"),
        cpu_percent: total / SECONDS as f64 * 100.0,
        algo_ms: algo,
        proc_p50_ms: percentile(&mut per_slot.clone(), 0.5),
        proc_p99_ms: percentile(&mut per_slot, 0.99),
    }
}

/// Time from `unpark` (what the device callback does) to the parked worker running, p99 in ms.
fn wake_latency_p99_ms() -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::new(AtomicBool::new(false));
    let (d, f) = (done.clone(), flag.clone());
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    let worker = thread::spawn(move || {
        let mut lat = Vec::new();
        while !d.load(Ordering::Acquire) {
            thread::park_timeout(Duration::from_millis(50));
            if f.swap(false, Ordering::AcqRel)
                && let Ok(sent) = rx.try_recv()
            {
                lat.push(sent.elapsed().as_secs_f64() * 1e3);
            }
        }
        lat
    });
    for _ in 0..500 {
        thread::sleep(Duration::from_millis(2));
        let _ = tx.send(Instant::now());
        flag.store(true, Ordering::Release);
        worker.thread().unpark();
    }
    done.store(true, Ordering::Release);
    worker.thread().unpark();
    let mut lat = worker.join().expect("worker");
    percentile(&mut lat, 0.99)
}

fn main() {
    let wake = wake_latency_p99_ms();
    let mut rows = Vec::new();
    for rate in [48_000, 44_100, 16_000] {
        rows.push(capture(rate, true));
    }
    let captures = rows.len();
    let frames = server_packets();
    for rate in [48_000, 44_100] {
        rows.push(playback(&frames, rate));
    }
    rows.push(capture(48_000, false));
    println!("audio pipeline, {SECONDS} s of speech per row; thread wake-up p99 {wake:.3} ms");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "direction", "CPU %core", "algo ms", "proc p50", "proc p99", "added ms (max)"
    );
    for r in &rows {
        println!(
            "{:<28} {:>10.2} {:>10.2} {:>10.3} {:>10.3} {:>14.2}",
            r.what,
            r.cpu_percent,
            r.algo_ms,
            r.proc_p50_ms,
            r.proc_p99_ms,
            r.algo_ms + r.proc_p99_ms + wake
        );
    }
    let worst_cpu = rows[..captures]
        .iter()
        .map(|r| r.cpu_percent)
        .fold(0.0, f64::max)
        + rows[captures..captures + 2]
            .iter()
            .map(|r| r.cpu_percent)
            .fold(0.0, f64::max);
    println!("both directions, worst rates: {worst_cpu:.2} % of one core (budget 5 %)");
}
