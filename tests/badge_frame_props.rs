//! Property tests of the badge frame parser: chunking never changes the result, garbage
//! never panics nor yields an invalid badge, and the parser always resyncs.

use std::time::{Duration, Instant};

use jarvis_config::{Charset, LeadingZeros, LetterCase};
use jarvis_core::badge::frame::{
    DEFAULT_IDLE_RESET, FrameEvent, FrameKind, FrameParser, FrameRules,
};
use proptest::prelude::*;

fn rules_strategy() -> impl Strategy<Value = FrameRules> {
    (
        prop_oneof![
            Just(FrameKind::Line),
            Just(FrameKind::StxEtx),
            (4usize..=12).prop_map(FrameKind::Fixed)
        ],
        prop_oneof![
            Just(Charset::Digits),
            Just(Charset::Hex),
            Just(Charset::Alphanumeric)
        ],
        prop_oneof![
            Just(LetterCase::Keep),
            Just(LetterCase::Upper),
            Just(LetterCase::Lower)
        ],
        prop_oneof![Just(LeadingZeros::Keep), Just(LeadingZeros::Strip)],
        prop_oneof![Just(""), Just("]C0"), Just("ID:")],
        prop_oneof![Just(""), Just("#")],
    )
        .prop_map(|(framing, charset, case, leading_zeros, prefix, suffix)| {
            let (min_len, max_len) = match framing {
                FrameKind::Fixed(_) => (1, 32),
                _ => (4, 16),
            };
            FrameRules {
                framing,
                strip_prefix: prefix.into(),
                strip_suffix: suffix.into(),
                charset,
                case,
                leading_zeros,
                min_len,
                max_len,
                idle_reset: DEFAULT_IDLE_RESET,
            }
        })
}

/// A badge value the rules accept on the wire (before normalisation).
fn raw_badge(rules: &FrameRules) -> BoxedStrategy<String> {
    let class = match rules.charset {
        Charset::Digits => "[0-9]",
        Charset::Hex => "[0-9a-fA-F]",
        Charset::Alphanumeric => "[0-9a-zA-Z]",
    };
    let (lo, hi) = match rules.framing {
        FrameKind::Fixed(n) => {
            // The whole fixed frame is prefix + badge + suffix.
            let body = n.saturating_sub(rules.strip_prefix.len() + rules.strip_suffix.len());
            (body.max(1), body.max(1))
        }
        _ => (rules.min_len, rules.max_len),
    };
    // Leading-zero stripping may shorten the value: start with a non-zero digit then.
    let first = if rules.leading_zeros == LeadingZeros::Strip {
        "[1-9]"
    } else {
        class
    };
    let pattern = format!("{first}{class}{{{},{}}}", lo - 1, hi - 1);
    proptest::string::string_regex(&pattern)
        .expect("valid regex")
        .boxed()
}

/// Encodes one badge as its frame on the wire, with the terminator variant `variant`.
fn encode(rules: &FrameRules, value: &str, variant: u8) -> Vec<u8> {
    let body = format!("{}{}{}", rules.strip_prefix, value, rules.strip_suffix);
    let mut out = Vec::new();
    match rules.framing {
        FrameKind::Line => {
            out.extend_from_slice(body.as_bytes());
            out.extend_from_slice(match variant % 3 {
                0 => b"\r".as_slice(),
                1 => b"\n",
                _ => b"\r\n",
            });
        }
        FrameKind::StxEtx => {
            out.push(0x02);
            out.extend_from_slice(body.as_bytes());
            out.push(0x03);
            if variant.is_multiple_of(2) {
                out.extend_from_slice(b"\r\n");
            }
        }
        FrameKind::Fixed(_) => {
            out.extend_from_slice(body.as_bytes());
            if variant.is_multiple_of(2) {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out
}

fn fits_fixed(rules: &FrameRules) -> bool {
    match rules.framing {
        FrameKind::Fixed(n) => n > rules.strip_prefix.len() + rules.strip_suffix.len(),
        _ => true,
    }
}

fn run(rules: &FrameRules, input: &[u8], cuts: &[usize]) -> Vec<FrameEvent> {
    let mut parser = FrameParser::new(rules.clone());
    let now = Instant::now();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([input.len()]) {
        // Gaps below the idle reset must not matter either.
        let t = now + Duration::from_millis(start as u64 % 300);
        out.extend(parser.push(t, &input[start..p]));
        start = p;
    }
    out
}

fn badges(events: &[FrameEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            FrameEvent::Badge(b) => Some(b.expose().to_owned()),
            FrameEvent::Discarded(_) => None,
        })
        .collect()
}

fn rules_and_frames() -> impl Strategy<Value = (FrameRules, Vec<(String, u8)>)> {
    rules_strategy()
        .prop_filter("fixed frame too short for prefix and suffix", fits_fixed)
        .prop_flat_map(|rules| {
            let frames = prop::collection::vec((raw_badge(&rules), any::<u8>()), 1..8);
            (Just(rules), frames)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_chunking_of_valid_frames_yields_the_same_badges(
        (rules, frames) in rules_and_frames(),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (value, variant) in &frames {
            input.extend(encode(&rules, value, *variant));
            let body = format!("{}{}{}", rules.strip_prefix, value, rules.strip_suffix);
            let badge = rules.normalize(body.as_bytes());
            prop_assert!(badge.is_ok(), "generated frame rejected: {:?}", badge);
            expected.push(badge.unwrap().expose().to_owned());
        }
        let whole = run(&rules, &input, &[]);
        let chunked = run(&rules, &input, &cuts);
        prop_assert_eq!(badges(&whole), expected.clone());
        prop_assert_eq!(badges(&chunked), expected);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn random_bytes_never_panic_nor_yield_an_invalid_badge(
        rules in rules_strategy(),
        input in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let whole = run(&rules, &input, &[]);
        let chunked = run(&rules, &input, &cuts);
        for event in &whole {
            if let FrameEvent::Badge(b) = event {
                prop_assert!(rules.accepts(b), "invalid badge {:?} from {:?}", b.expose(), rules);
            }
        }
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn the_parser_resyncs_after_any_garbage(
        (rules, frames) in rules_and_frames(),
        garbage in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let (value, variant) = &frames[0];
        let mut parser = FrameParser::new(rules.clone());
        let t0 = Instant::now();
        let mut events = parser.push(t0, &garbage);
        let mut input = Vec::new();
        // Lines resync on the next terminator and STX frames on the next STX, at once;
        // fixed frames have no delimiter, so they resync on the idle gap.
        let t1 = match rules.framing {
            FrameKind::Line => {
                input.push(b'\n');
                t0
            }
            FrameKind::StxEtx => t0,
            FrameKind::Fixed(_) => t0 + DEFAULT_IDLE_RESET,
        };
        input.extend(encode(&rules, value, *variant));
        events.extend(parser.push(t1, &input));
        let body = format!("{}{}{}", rules.strip_prefix, value, rules.strip_suffix);
        let expected = rules.normalize(body.as_bytes()).unwrap();
        let found = badges(&events);
        prop_assert_eq!(found.last().map(String::as_str), Some(expected.expose()));
    }

    #[test]
    fn masked_badges_reveal_at_most_two_characters(
        (rules, frames) in rules_and_frames(),
    ) {
        let body = format!("{}{}{}", rules.strip_prefix, frames[0].0, rules.strip_suffix);
        let badge = rules.normalize(body.as_bytes()).unwrap();
        let shown = format!("{badge} {badge:?}");
        let visible: String = badge.to_string().chars().filter(|c| *c != '•').collect();
        prop_assert!(visible.len() <= 2, "{}", shown);
        if badge.len() >= 3 {
            prop_assert!(!shown.contains(badge.expose()), "{}", shown);
        }
    }
}
