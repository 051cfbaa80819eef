//! Badge benchmarks: scan latency through a REAL pty (bytes written by the "scanner" ->
//! `Scan` received from the reader channel), frame parser throughput, keyboard-wedge
//! decoding and the badge HMAC.
//!
//! Run: `cargo bench --bench badge_scan`.

use std::hint::black_box;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evdev::{EventType, InputEvent, KeyCode};
use jarvis_badge::keymap::WedgeDecoder;
use jarvis_badge::serial::{self, SerialSettings};
use jarvis_badge::{BadgeHasher, HEALTH_ADAPTER, Scan};
use jarvis_config::secrets::Secret;
use jarvis_config::{Charset, KeyboardLayout, LeadingZeros, LetterCase, Parity};
use jarvis_core::badge::frame::{DEFAULT_IDLE_RESET, FrameKind, FrameParser, FrameRules};
use jarvis_core::health::{AdapterState, Health};
use tokio::sync::mpsc;

fn rules(framing: FrameKind) -> FrameRules {
    FrameRules {
        framing,
        strip_prefix: String::new(),
        strip_suffix: String::new(),
        charset: Charset::Alphanumeric,
        case: LetterCase::Upper,
        leading_zeros: LeadingZeros::Keep,
        min_len: 4,
        max_len: 32,
        idle_reset: DEFAULT_IDLE_RESET,
    }
}

/// A raw pty exposed under `link`, as in tests/badge_serial_pty.rs.
fn plug(link: &Path) -> OwnedFd {
    let mut t = {
        let p = nix::pty::openpty(None, None).expect("openpty");
        nix::sys::termios::tcgetattr(&p.slave).expect("tcgetattr")
    };
    nix::sys::termios::cfmakeraw(&mut t);
    let p = nix::pty::openpty(None, Some(&t)).expect("openpty raw");
    let slave = nix::unistd::ttyname(&p.slave).expect("ttyname");
    drop(p.slave);
    std::os::unix::fs::symlink(slave, link).expect("symlink");
    p.master
}

fn scan_latency(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("ttyBENCH");
    let master = plug(&link);
    let health = Health::new("bench", 0);
    let (tx, mut rx) = mpsc::channel::<Scan>(16);
    let reader = serial::spawn(
        SerialSettings {
            path: link,
            baud: 9600,
            parity: Parity::None,
            stop_bits: 1,
            data_bits: 8,
            by_id_dir: dir.path().to_path_buf(),
            rules: rules(FrameKind::Line),
        },
        health.clone(),
        tx,
    )
    .expect("spawn reader");
    let deadline = Instant::now() + Duration::from_secs(10);
    while health.snapshot().adapters.get(HEALTH_ADAPTER) != Some(&AdapterState::Up) {
        assert!(Instant::now() < deadline, "reader never came up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut group = c.benchmark_group("scan_latency");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("pty_write_to_scan_received", |b| {
        b.iter(|| {
            nix::unistd::write(&master, b"0012345678\r\n").expect("write");
            black_box(rx.blocking_recv().expect("scan"))
        })
    });
    group.finish();
    drop(rx);
    reader.stop();
}

fn parser_throughput(c: &mut Criterion) {
    let mut stream = Vec::new();
    let mut i = 0u64;
    while stream.len() < 64 * 1024 {
        if i % 10 == 9 {
            stream.extend_from_slice(b"#garbage!\r\n");
        } else {
            stream.extend_from_slice(format!("{:010}\r\n", i * 7919).as_bytes());
        }
        i += 1;
    }
    let mut stx = Vec::new();
    for n in 0..5000u64 {
        stx.push(0x02);
        stx.extend_from_slice(format!("{:010}", n).as_bytes());
        stx.push(0x03);
    }
    let mut group = c.benchmark_group("frame_parser");
    for (name, kind, input) in [
        ("line_64KiB_chunks_of_64", FrameKind::Line, &stream),
        ("stx_etx_chunks_of_64", FrameKind::StxEtx, &stx),
    ] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            let now = Instant::now();
            b.iter(|| {
                let mut parser = FrameParser::new(rules(kind));
                let mut n = 0usize;
                for chunk in input.chunks(64) {
                    n += parser.push(now, chunk).len();
                }
                black_box(n)
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_frame", |b| {
        let mut parser = FrameParser::new(rules(FrameKind::Line));
        let now = Instant::now();
        b.iter(|| black_box(parser.push(now, black_box(b"0012345678\r\n"))))
    });
    group.finish();
}

fn wedge_and_hash(c: &mut Criterion) {
    let digits = [
        KeyCode::KEY_0,
        KeyCode::KEY_0,
        KeyCode::KEY_1,
        KeyCode::KEY_2,
        KeyCode::KEY_3,
        KeyCode::KEY_4,
        KeyCode::KEY_5,
        KeyCode::KEY_6,
        KeyCode::KEY_7,
        KeyCode::KEY_8,
        KeyCode::KEY_ENTER,
    ];
    let events: Vec<InputEvent> = digits
        .iter()
        .flat_map(|k| {
            [
                InputEvent::new(EventType::KEY.0, KeyCode::KEY_LEFTSHIFT.0, 1),
                InputEvent::new(EventType::KEY.0, k.0, 1),
                InputEvent::new(EventType::KEY.0, k.0, 0),
                InputEvent::new(EventType::KEY.0, KeyCode::KEY_LEFTSHIFT.0, 0),
                InputEvent::new(EventType::SYNCHRONIZATION.0, 0, 0),
            ]
        })
        .collect();
    let mut group = c.benchmark_group("badge");
    group.throughput(Throughput::Elements(1));
    group.bench_function("wedge_decode_fr_10_digits", |b| {
        let mut decoder = WedgeDecoder::new(KeyboardLayout::Fr, rules(FrameKind::Line));
        let now = Instant::now();
        b.iter(|| {
            let mut found = 0;
            for e in &events {
                found += decoder.feed(*e, now).len();
            }
            black_box(found)
        })
    });
    let hasher = BadgeHasher::new(&Secret::new("bench-key-0123456789abcdef")).expect("key");
    let badge = rules(FrameKind::Line)
        .normalize(b"0012345678")
        .expect("badge");
    group.bench_function("hmac_sha256", |b| {
        b.iter(|| black_box(hasher.hash(black_box(&badge))))
    });
    group.finish();
}

criterion_group!(benches, scan_latency, parser_throughput, wedge_and_hash);
criterion_main!(benches);
