//! Echo cancellation on a synthetic room with a known impulse response (direct path at
//! 40/100/150 ms, -6 dB, 24 reflections over 120 ms, noise at -66 dBFS; `jarvis_audio::room`),
//! with recorded speech as JARVIS (far end) and as the member (near end). Prints, per room
//! delay: ERLE, the median over far-end-only 10 ms blocks after 2 s of convergence (target: at
//! least 25 dB); the correlation of the output with the member's clean voice during double
//! talk, and of the raw microphone for comparison; AEC + noise suppression CPU per 10 ms block
//! at 48 kHz mono (target: at most 300 µs, 3 % of a core). Then criterion times one block.
//! Run: `cargo bench -p jarvis-audio --bench echo_cancellation`.

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use jarvis_audio::EchoCanceller;
use jarvis_audio::echo::BLOCK_SAMPLES;
use jarvis_audio::room::{Room, Signals, median_erle_db, near_end_correlation};

const SECONDS: f32 = 12.0;
/// The member talks over JARVIS from here on.
const NEAR_FROM: f32 = 8.0;

struct Row {
    delay_ms: u32,
    erle_db: f32,
    dt_out: f32,
    dt_mic: f32,
    mean_us: f64,
    p99_us: f64,
}

fn run(delay_ms: u32) -> Row {
    let room = Room::kiosk(delay_ms);
    let s = Signals::double_talk(SECONDS, NEAR_FROM);
    let mic = room.microphone(&s);
    let echo = room.echo(&s.far);
    let mut aec = EchoCanceller::new().expect("canceller");
    let mut out = mic.clone();
    let mut times = Vec::new();
    for (render, block) in s
        .far
        .chunks_exact(BLOCK_SAMPLES)
        .zip(out.chunks_exact_mut(BLOCK_SAMPLES))
    {
        let t = Instant::now();
        aec.process(render, block).expect("block");
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let far_only = (NEAR_FROM * 48_000.0) as usize;
    times.sort_by(f64::total_cmp);
    Row {
        delay_ms,
        erle_db: median_erle_db(&echo[..far_only], &out[..far_only], 2.0),
        dt_out: near_end_correlation(&s, &out),
        dt_mic: near_end_correlation(&s, &mic),
        mean_us: times.iter().sum::<f64>() / times.len() as f64,
        p99_us: times[times.len() * 99 / 100],
    }
}

fn main() {
    println!(
        "echo cancellation (aec3: AEC3 + NS), 48 kHz mono, {SECONDS} s of speech, member from {NEAR_FROM} s"
    );
    println!(
        "{:>8} {:>10} {:>14} {:>14} {:>12} {:>12}",
        "delay", "ERLE dB", "DT corr out", "DT corr mic", "µs/10ms", "p99 µs"
    );
    for delay in [40, 100, 150] {
        let r = run(delay);
        println!(
            "{:>6}ms {:>10.1} {:>14.3} {:>14.3} {:>12.0} {:>12.0}",
            r.delay_ms, r.erle_db, r.dt_out, r.dt_mic, r.mean_us, r.p99_us
        );
    }
    let s = Signals::double_talk(4.0, 2.0);
    let mic = Room::kiosk(100).microphone(&s);
    let mut aec = EchoCanceller::new().expect("canceller");
    let mut c = Criterion::default().configure_from_args();
    let mut i = 0;
    let blocks = s.far.len() / BLOCK_SAMPLES;
    let mut block = [0.0f32; BLOCK_SAMPLES];
    c.bench_function("aec3 + ns, one 10 ms block at 48 kHz", |b| {
        b.iter(|| {
            let at = (i % blocks) * BLOCK_SAMPLES;
            block.copy_from_slice(&mic[at..at + BLOCK_SAMPLES]);
            aec.process(black_box(&s.far[at..at + BLOCK_SAMPLES]), &mut block)
                .expect("block");
            i += 1;
        })
    });
    c.final_summary();
}
