//! Badge frame parser: bytes in (in any chunking), badges or discard notices out.
//!
//! No I/O and no clock: the serial and HID adapters feed it bytes with the time they arrived,
//! so every framing rule (split frames, several frames per read, noise, overlong input, an
//! idle gap that abandons a half frame) is tested here without a device.
//!
//! Every rejected run of input yields exactly one [`Discard`], so the adapter logs one warning
//! and bumps one counter per garbage run, never one per byte. A `Discard` never carries the
//! rejected bytes: they may be a real badge number.
//!
//! The rules that turn one frame into a badge live in [`super::normalize`]; they are
//! re-exported here, where the readers, tests and benches import them from.

use std::fmt;
use std::time::{Duration, Instant};

use crate::badge::id::Badge;
use crate::badge::normalize::trim_frame;
pub use crate::badge::normalize::{
    Charset, DiscardReason, FrameKind, FrameRules, Framing, LeadingZeros, LetterCase,
};

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
/// A half frame older than this is abandoned when more bytes arrive. Scanners send a whole
/// frame within a few milliseconds (9600 baud is about 1 ms per byte), so a longer silence
/// means the rest was lost; without this, the next scan would be glued to the fragment.
pub const DEFAULT_IDLE_RESET: Duration = Duration::from_millis(500);

/// One discarded run of input: log it once, count it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discard {
    pub reason: DiscardReason,
    /// How many bytes were dropped (for overlong input: the bound reached).
    pub bytes: usize,
}

impl fmt::Display for Discard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "discarded {} bytes: {}", self.bytes, self.reason)
    }
}

/// What the parser found in the bytes it was fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    Badge(Badge),
    Discarded(Discard),
}

/// Bytes that separate frames without being noise.
fn is_filler(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// Collecting a frame's bytes.
    InFrame,
    /// After an overlong frame was reported: dropping bytes until the next frame boundary.
    Skipping,
}

/// The stateful parser: feed it bytes with [`FrameParser::push`], it returns what it found.
#[derive(Debug, Clone)]
pub struct FrameParser {
    rules: FrameRules,
    buf: Vec<u8>,
    state: State,
    /// Noise bytes seen between STX/ETX frames and not yet reported.
    noise: usize,
    last_byte_at: Option<Instant>,
}

impl FrameParser {
    pub fn new(rules: FrameRules) -> Self {
        let cap = rules.raw_bound();
        FrameParser {
            rules,
            buf: Vec::with_capacity(cap),
            state: State::Idle,
            noise: 0,
            last_byte_at: None,
        }
    }

    pub fn rules(&self) -> &FrameRules {
        &self.rules
    }

    /// Feeds bytes that arrived at `now`; returns the badges and discards they completed,
    /// in arrival order.
    pub fn push(&mut self, now: Instant, bytes: &[u8]) -> Vec<FrameEvent> {
        let mut out = Vec::new();
        if let Some(last) = self.last_byte_at
            && now.saturating_duration_since(last) >= self.rules.idle_reset
        {
            out.extend(self.reset().map(FrameEvent::Discarded));
        }
        if !bytes.is_empty() {
            self.last_byte_at = Some(now);
        }
        for &b in bytes {
            match self.rules.framing {
                FrameKind::Line => self.line_byte(b, &mut out),
                FrameKind::StxEtx => self.stx_byte(b, &mut out),
                FrameKind::Fixed(n) => self.fixed_byte(b, n, &mut out),
            }
        }
        out
    }

    /// Forgets any half frame (the device went away or was reopened), so it can never be
    /// glued to the next frame. Returns the discard to report, if something was pending.
    pub fn reset(&mut self) -> Option<Discard> {
        let pending = match self.state {
            State::InFrame if !self.buf.iter().all(|&b| is_filler(b)) => Some(Discard {
                reason: DiscardReason::Incomplete,
                bytes: self.buf.len(),
            }),
            _ if self.noise > 0 => Some(Discard {
                reason: DiscardReason::Noise,
                bytes: self.noise,
            }),
            _ => None,
        };
        self.buf.clear();
        self.state = State::Idle;
        self.noise = 0;
        self.last_byte_at = None;
        pending
    }

    fn finish(&mut self, out: &mut Vec<FrameEvent>) {
        let event = match self.rules.normalize(&self.buf) {
            Ok(badge) => FrameEvent::Badge(badge),
            Err(reason) => FrameEvent::Discarded(Discard {
                reason,
                bytes: self.buf.len(),
            }),
        };
        out.push(event);
        self.buf.clear();
        self.state = State::Idle;
    }

    /// Adds a byte to the current frame, switching to skipping when it grows past the bound.
    fn collect(&mut self, b: u8, out: &mut Vec<FrameEvent>) {
        self.buf.push(b);
        let bound = self.rules.raw_bound();
        if self.buf.len() > bound {
            out.push(FrameEvent::Discarded(Discard {
                reason: DiscardReason::Overlong { bound },
                bytes: bound,
            }));
            self.buf.clear();
            self.state = State::Skipping;
        }
    }

    fn line_byte(&mut self, b: u8, out: &mut Vec<FrameEvent>) {
        let end = b == b'\r' || b == b'\n';
        match (self.state, end) {
            (State::Skipping, true) => self.state = State::Idle,
            (State::Skipping, false) => {}
            (State::Idle, true) => {}
            (State::InFrame, true) => {
                let blank = std::str::from_utf8(&self.buf).is_ok_and(|s| trim_frame(s).is_empty());
                if blank {
                    self.buf.clear();
                    self.state = State::Idle;
                } else {
                    self.finish(out);
                }
            }
            (State::Idle | State::InFrame, false) => {
                self.state = State::InFrame;
                self.collect(b, out);
            }
        }
    }

    fn report_noise(&mut self, out: &mut Vec<FrameEvent>) {
        if self.noise > 0 {
            out.push(FrameEvent::Discarded(Discard {
                reason: DiscardReason::Noise,
                bytes: self.noise,
            }));
            self.noise = 0;
        }
    }

    fn stx_byte(&mut self, b: u8, out: &mut Vec<FrameEvent>) {
        match (self.state, b) {
            (State::Idle, STX) => {
                self.report_noise(out);
                self.state = State::InFrame;
            }
            (State::Idle, _) => {
                if !is_filler(b) {
                    self.noise += 1;
                    if self.noise > self.rules.raw_bound() {
                        self.report_noise(out);
                    }
                }
            }
            (State::InFrame, STX) => {
                out.push(FrameEvent::Discarded(Discard {
                    reason: DiscardReason::Incomplete,
                    bytes: self.buf.len(),
                }));
                self.buf.clear();
            }
            (State::InFrame, ETX) => self.finish(out),
            (State::InFrame, _) => self.collect(b, out),
            (State::Skipping, STX) => {
                self.buf.clear();
                self.state = State::InFrame;
            }
            (State::Skipping, ETX) => self.state = State::Idle,
            (State::Skipping, _) => {}
        }
    }

    fn fixed_byte(&mut self, b: u8, n: usize, out: &mut Vec<FrameEvent>) {
        if self.state == State::Idle {
            if is_filler(b) {
                return;
            }
            self.state = State::InFrame;
        }
        self.buf.push(b);
        if self.buf.len() >= n {
            self.finish(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::badge::normalize::tests::rules;

    fn badges(events: &[FrameEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                FrameEvent::Badge(b) => Some(b.expose().to_owned()),
                FrameEvent::Discarded(_) => None,
            })
            .collect()
    }

    fn discards(events: &[FrameEvent]) -> Vec<DiscardReason> {
        events
            .iter()
            .filter_map(|e| match e {
                FrameEvent::Discarded(d) => Some(d.reason),
                FrameEvent::Badge(_) => None,
            })
            .collect()
    }

    fn feed(r: FrameRules, chunks: &[&[u8]]) -> Vec<FrameEvent> {
        let mut p = FrameParser::new(r);
        let now = Instant::now();
        chunks.iter().flat_map(|c| p.push(now, c)).collect()
    }

    #[test]
    fn line_framing_accepts_cr_lf_and_crlf() {
        let ev = feed(rules(FrameKind::Line), &[b"1111\r2222\n3333\r\n4444\n\r"]);
        assert_eq!(badges(&ev), ["1111", "2222", "3333", "4444"]);
        assert!(discards(&ev).is_empty());
    }

    #[test]
    fn split_frames_are_joined() {
        let ev = feed(rules(FrameKind::Line), &[b"00", b"1234", b"5678\r", b"\n"]);
        assert_eq!(badges(&ev), ["0012345678"]);
    }

    #[test]
    fn blank_lines_and_padding_are_silent() {
        let ev = feed(
            rules(FrameKind::Line),
            &[b"\r\n\r\n  \r\n\0\0 1234 \t\r\n\x021234\x03\r\n"],
        );
        assert_eq!(badges(&ev), ["1234", "1234"]);
        assert!(discards(&ev).is_empty());
    }

    #[test]
    fn garbage_line_gives_one_discard_then_resyncs() {
        let ev = feed(rules(FrameKind::Line), &[b"12#$%^&*()34\r\n5678\r\n"]);
        assert_eq!(badges(&ev), ["5678"]);
        assert_eq!(discards(&ev), [DiscardReason::NotAllowed { position: 2 }]);
    }

    #[test]
    fn non_utf8_is_discarded_once() {
        let ev = feed(rules(FrameKind::Line), &[b"\xff\xfe\xfd\xfc\r\n1234\n"]);
        assert_eq!(discards(&ev), [DiscardReason::NotUtf8]);
        assert_eq!(badges(&ev), ["1234"]);
    }

    #[test]
    fn overlong_line_gives_one_discard_and_skips_to_the_next_line() {
        let r = rules(FrameKind::Line);
        let bound = r.raw_bound();
        let long = vec![b'7'; bound * 10];
        let ev = feed(r, &[&long[..100], &long[100..], b"\r\n1234\r\n"]);
        assert_eq!(discards(&ev), [DiscardReason::Overlong { bound }]);
        assert_eq!(badges(&ev), ["1234"]);
    }

    #[test]
    fn too_long_within_the_bound_is_reported_as_too_long() {
        let ev = feed(rules(FrameKind::Line), &[b"12345678901234567\r"]);
        assert_eq!(discards(&ev), [DiscardReason::TooLong { len: 17, max: 16 }]);
    }

    #[test]
    fn too_short_is_reported() {
        let ev = feed(rules(FrameKind::Line), &[b"123\r"]);
        assert_eq!(discards(&ev), [DiscardReason::TooShort { len: 3, min: 4 }]);
    }

    #[test]
    fn stx_etx_frames_with_noise_between() {
        let ev = feed(
            rules(FrameKind::StxEtx),
            &[
                b"zz\x021234\x03\r\n\x02",
                b"5678\x03junk\x03\x029999",
                b"\x03",
            ],
        );
        assert_eq!(badges(&ev), ["1234", "5678", "9999"]);
        assert_eq!(discards(&ev), [DiscardReason::Noise, DiscardReason::Noise]);
    }

    #[test]
    fn stx_inside_a_frame_restarts_it() {
        let ev = feed(rules(FrameKind::StxEtx), &[b"\x0212\x025678\x03"]);
        assert_eq!(badges(&ev), ["5678"]);
        assert_eq!(discards(&ev), [DiscardReason::Incomplete]);
    }

    #[test]
    fn stx_overlong_resyncs_on_next_stx() {
        let r = rules(FrameKind::StxEtx);
        let bound = r.raw_bound();
        let mut input = vec![STX];
        input.extend(std::iter::repeat_n(b'1', bound * 3));
        input.extend_from_slice(b"\x024321\x03");
        let ev = feed(r, &[&input]);
        assert_eq!(discards(&ev), [DiscardReason::Overlong { bound }]);
        assert_eq!(badges(&ev), ["4321"]);
    }

    #[test]
    fn endless_noise_is_reported_in_bounded_runs() {
        let r = rules(FrameKind::StxEtx);
        let bound = r.raw_bound();
        let noise = vec![b'x'; bound * 2 + 5];
        let ev = feed(r, &[&noise, b"\x021234\x03"]);
        assert_eq!(
            discards(&ev),
            [
                DiscardReason::Noise,
                DiscardReason::Noise,
                DiscardReason::Noise
            ]
        );
        assert_eq!(badges(&ev), ["1234"]);
    }

    #[test]
    fn a_line_and_an_stx_frame_in_one_read_under_line_framing() {
        let ev = feed(rules(FrameKind::Line), &[b"1234\r\n\x025678\x03\r\n"]);
        assert_eq!(badges(&ev), ["1234", "5678"]);
    }

    #[test]
    fn fixed_length_frames_skip_separators() {
        let ev = feed(
            rules(FrameKind::Fixed(6)),
            &[b"123", b"456\r\n654", b"321", b"abcdef"],
        );
        assert_eq!(badges(&ev), ["123456", "654321", "ABCDEF"]);
    }

    #[test]
    fn idle_gap_abandons_a_half_frame() {
        let mut p = FrameParser::new(rules(FrameKind::Line));
        let t0 = Instant::now();
        assert!(p.push(t0, b"0012").is_empty());
        let ev = p.push(t0 + Duration::from_millis(600), b"5678\r\n");
        assert_eq!(discards(&ev), [DiscardReason::Incomplete]);
        assert_eq!(badges(&ev), ["5678"]);
        let mut p = FrameParser::new(rules(FrameKind::Fixed(4)));
        assert!(p.push(t0, b"12").is_empty());
        let ev = p.push(t0 + Duration::from_secs(2), b"9876");
        assert_eq!(badges(&ev), ["9876"]);
    }

    #[test]
    fn small_gaps_do_not_split_a_frame() {
        let mut p = FrameParser::new(rules(FrameKind::Line));
        let t0 = Instant::now();
        let mut ev = p.push(t0, b"0012");
        ev.extend(p.push(t0 + Duration::from_millis(400), b"34"));
        ev.extend(p.push(t0 + Duration::from_millis(800), b"56\r"));
        assert_eq!(badges(&ev), ["00123456"]);
    }

    #[test]
    fn reset_reports_a_pending_half_frame_and_forgets_it() {
        let mut p = FrameParser::new(rules(FrameKind::Line));
        let now = Instant::now();
        assert!(p.push(now, b"0012").is_empty());
        assert_eq!(
            p.reset(),
            Some(Discard {
                reason: DiscardReason::Incomplete,
                bytes: 4
            })
        );
        assert_eq!(p.reset(), None);
        assert_eq!(badges(&p.push(now, b"5678\r")), ["5678"]);
        let mut p = FrameParser::new(rules(FrameKind::StxEtx));
        p.push(now, b"xx");
        assert_eq!(p.reset().map(|d| d.reason), Some(DiscardReason::Noise));
    }

    #[test]
    fn prefix_and_suffix_are_stripped_when_present() {
        let r = FrameRules {
            strip_prefix: "]C0".into(),
            strip_suffix: "#".into(),
            ..rules(FrameKind::Line)
        };
        let ev = feed(r, &[b"]C0 1234#\r]C05678\r9012#\r"]);
        assert_eq!(badges(&ev), ["1234", "5678", "9012"]);
    }

    #[test]
    fn discard_messages_never_contain_the_input() {
        let ev = feed(rules(FrameKind::Line), &[b"98765432!\r"]);
        let FrameEvent::Discarded(d) = &ev[0] else {
            panic!("expected a discard, got {ev:?}");
        };
        let text = d.to_string();
        assert!(!text.contains("98765432"), "{text}");
        assert!(text.contains("badge.charset"), "{text}");
    }
}
