//! Fuzzes the badge frame parser: any bytes, any chunking, any rules. It must never panic,
//! never yield a badge the rules reject, and give the same result however bytes are split.
//!
//! Run: `cargo +nightly fuzz run badge_frame` from the repository root.

#![no_main]

use std::time::{Duration, Instant};

use jarvis_core::badge::frame::{
    Charset, FrameEvent, FrameKind, FrameParser, FrameRules, LeadingZeros, LetterCase,
};
use libfuzzer_sys::fuzz_target;

/// The first two bytes choose the rules, the next one the chunk size, the rest is input.
fn rules(a: u8, b: u8) -> FrameRules {
    let framing = match a % 3 {
        0 => FrameKind::Line,
        1 => FrameKind::StxEtx,
        _ => FrameKind::Fixed(usize::from(b % 16) + 1),
    };
    let charset = match (a / 3) % 3 {
        0 => Charset::Digits,
        1 => Charset::Hex,
        _ => Charset::Alphanumeric,
    };
    let case = match (a / 9) % 3 {
        0 => LetterCase::Keep,
        1 => LetterCase::Upper,
        _ => LetterCase::Lower,
    };
    let leading_zeros = if (a / 27) % 2 == 0 {
        LeadingZeros::Keep
    } else {
        LeadingZeros::Strip
    };
    let min_len = usize::from(b % 8) + 1;
    FrameRules {
        framing,
        strip_prefix: if a & 0x40 != 0 {
            "]C0".into()
        } else {
            String::new()
        },
        strip_suffix: if a & 0x80 != 0 {
            "#".into()
        } else {
            String::new()
        },
        charset,
        case,
        leading_zeros,
        min_len,
        max_len: min_len + usize::from(b / 8),
        idle_reset: Duration::from_millis(500),
    }
}

fn run(rules: &FrameRules, input: &[u8], chunk: usize) -> Vec<FrameEvent> {
    let mut parser = FrameParser::new(rules.clone());
    let now = Instant::now();
    input
        .chunks(chunk.max(1))
        .flat_map(|c| parser.push(now, c))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [a, b, chunk, input @ ..] = data else {
        return;
    };
    let rules = rules(*a, *b);
    let whole = run(&rules, input, input.len().max(1));
    let chunked = run(&rules, input, usize::from(*chunk));
    for event in &whole {
        if let FrameEvent::Badge(badge) = event {
            assert!(rules.accepts(badge), "invalid badge from {rules:?}");
        }
    }
    assert_eq!(whole, chunked, "chunking changed the result");
});
