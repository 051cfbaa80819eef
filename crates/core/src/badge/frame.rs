//! Badge frame parser: bytes in (in any chunking), badges or discard notices out.
//!
//! No I/O and no clock: the serial and HID adapters feed it bytes with the time they arrived,
//! so every framing rule (split frames, several frames per read, noise, overlong input, an
//! idle gap that abandons a half frame) is tested here without a device.
//!
//! Every rejected run of input yields exactly one [`Discard`], so the adapter logs one warning
//! and bumps one counter per garbage run, never one per byte. A `Discard` never carries the
//! rejected bytes: they may be a real badge number.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::badge::id::Badge;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
/// Whitespace a frame may carry around its content on top of prefix and suffix before it
/// counts as overlong.
const RAW_SLACK: usize = 16;
/// A half frame older than this is abandoned when more bytes arrive. Scanners send a whole
/// frame within a few milliseconds (9600 baud is about 1 ms per byte), so a longer silence
/// means the rest was lost; without this, the next scan would be glued to the fragment.
pub const DEFAULT_IDLE_RESET: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Frames end with CR, LF or CRLF.
    Line,
    /// Frames are STX (0x02) ... ETX (0x03).
    StxEtx,
    /// Every `badge.fixed_len` bytes are one frame.
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    Digits,
    Hex,
    Alphanumeric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterCase {
    Keep,
    Upper,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadingZeros {
    Keep,
    Strip,
}

/// How frames are delimited on the wire (from `badge.framing` and `badge.fixed_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Ends with CR, LF or CRLF.
    Line,
    /// STX (0x02) ... ETX (0x03); bytes outside are noise.
    StxEtx,
    /// Every `n` bytes are one frame; whitespace between frames is skipped.
    Fixed(usize),
}

/// Everything that turns raw bytes into a valid badge, taken from `[badge]` once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRules {
    pub framing: FrameKind,
    pub strip_prefix: String,
    pub strip_suffix: String,
    pub charset: Charset,
    pub case: LetterCase,
    pub leading_zeros: LeadingZeros,
    pub min_len: usize,
    pub max_len: usize,
    /// See [`DEFAULT_IDLE_RESET`].
    pub idle_reset: Duration,
}

/// Why input was thrown away. Carries sizes and positions only, never content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// The frame is not UTF-8 (line noise, wrong baud rate or parity).
    NotUtf8,
    /// A character outside `badge.charset` (or a key the HID layout cannot map) at this
    /// 0-based position of the normalised frame.
    NotAllowed {
        position: usize,
    },
    TooShort {
        len: usize,
        min: usize,
    },
    TooLong {
        len: usize,
        max: usize,
    },
    /// No end of frame within `bound` bytes; the rest up to the next frame is skipped.
    Overlong {
        bound: usize,
    },
    /// The frame was cut off: a new STX, an idle gap, or the device went away.
    Incomplete,
    /// Bytes outside any STX..ETX frame.
    Noise,
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscardReason::NotUtf8 => {
                f.write_str("not UTF-8 (check badge.serial.baud, parity and data bits)")
            }
            DiscardReason::NotAllowed { position } => write!(
                f,
                "character at position {position} is outside badge.charset \
                 (or a key badge.hid.layout cannot map)"
            ),
            DiscardReason::TooShort { len, min } => {
                write!(f, "{len} characters, fewer than badge.min_len = {min}")
            }
            DiscardReason::TooLong { len, max } => {
                write!(f, "{len} characters, more than badge.max_len = {max}")
            }
            DiscardReason::Overlong { bound } => write!(
                f,
                "no end of frame within {bound} bytes (check badge.framing; skipping to the next frame)"
            ),
            DiscardReason::Incomplete => f.write_str("frame cut off before its end"),
            DiscardReason::Noise => f.write_str("bytes outside any STX..ETX frame"),
        }
    }
}

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

impl FrameRules {
    /// Most bytes a frame may hold before it is declared overlong.
    pub fn raw_bound(&self) -> usize {
        self.max_len + self.strip_prefix.len() + self.strip_suffix.len() + RAW_SLACK
    }

    /// Turns one frame's bytes (delimiters removed) into a badge: trim, strip prefix and
    /// suffix, apply case, check charset, apply the leading-zeros policy, check length.
    pub fn normalize(&self, raw: &[u8]) -> Result<Badge, DiscardReason> {
        let text = std::str::from_utf8(raw).map_err(|_| DiscardReason::NotUtf8)?;
        let mut s = trim_frame(text);
        if !self.strip_prefix.is_empty() {
            s = trim_frame(s.strip_prefix(self.strip_prefix.as_str()).unwrap_or(s));
        }
        if !self.strip_suffix.is_empty() {
            s = trim_frame(s.strip_suffix(self.strip_suffix.as_str()).unwrap_or(s));
        }
        let cased = match self.case {
            LetterCase::Keep => s.to_owned(),
            LetterCase::Upper => s.to_ascii_uppercase(),
            LetterCase::Lower => s.to_ascii_lowercase(),
        };
        if let Some(position) = cased.chars().position(|c| !self.allows(c)) {
            return Err(DiscardReason::NotAllowed { position });
        }
        let value = match self.leading_zeros {
            LeadingZeros::Keep => cased,
            LeadingZeros::Strip => {
                let stripped = cased.trim_start_matches('0');
                if stripped.is_empty() && !cased.is_empty() {
                    "0".to_owned()
                } else {
                    stripped.to_owned()
                }
            }
        };
        let len = value.len();
        if len < self.min_len {
            return Err(DiscardReason::TooShort {
                len,
                min: self.min_len,
            });
        }
        if len > self.max_len {
            return Err(DiscardReason::TooLong {
                len,
                max: self.max_len,
            });
        }
        Ok(Badge::from_normalized(value))
    }

    /// True when `badge` satisfies every rule: the invariant the parser guarantees.
    pub fn accepts(&self, badge: &Badge) -> bool {
        let v = badge.expose();
        let case_ok = match self.case {
            LetterCase::Keep => true,
            LetterCase::Upper => !v.chars().any(|c| c.is_ascii_lowercase()),
            LetterCase::Lower => !v.chars().any(|c| c.is_ascii_uppercase()),
        };
        let zeros_ok = match self.leading_zeros {
            LeadingZeros::Keep => true,
            LeadingZeros::Strip => v == "0" || !v.starts_with('0'),
        };
        (self.min_len..=self.max_len).contains(&v.len())
            && v.chars().all(|c| self.allows(c))
            && case_ok
            && zeros_ok
    }

    fn allows(&self, c: char) -> bool {
        match self.charset {
            Charset::Digits => c.is_ascii_digit(),
            Charset::Hex => c.is_ascii_hexdigit(),
            Charset::Alphanumeric => c.is_ascii_alphanumeric(),
        }
    }
}

/// Frames are trimmed of whitespace and control bytes (NUL padding, stray STX/ETX).
fn trim_frame(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c.is_control())
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

    fn rules(framing: FrameKind) -> FrameRules {
        FrameRules {
            framing,
            strip_prefix: String::new(),
            strip_suffix: String::new(),
            charset: Charset::Alphanumeric,
            case: LetterCase::Upper,
            leading_zeros: LeadingZeros::Keep,
            min_len: 4,
            max_len: 16,
            idle_reset: DEFAULT_IDLE_RESET,
        }
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
    fn case_and_charset_rules() {
        let hex = FrameRules {
            charset: Charset::Hex,
            case: LetterCase::Lower,
            ..rules(FrameKind::Line)
        };
        assert_eq!(hex.normalize(b"DEADbeef").unwrap().expose(), "deadbeef");
        assert_eq!(
            hex.normalize(b"DEADBEEG"),
            Err(DiscardReason::NotAllowed { position: 7 })
        );
        let digits = FrameRules {
            charset: Charset::Digits,
            ..rules(FrameKind::Line)
        };
        assert_eq!(
            digits.normalize(b"12a4"),
            Err(DiscardReason::NotAllowed { position: 2 })
        );
        let keep = FrameRules {
            case: LetterCase::Keep,
            ..rules(FrameKind::Line)
        };
        assert_eq!(keep.normalize(b"AbCd").unwrap().expose(), "AbCd");
        assert_eq!(
            rules(FrameKind::Line).normalize("12é4".as_bytes()),
            Err(DiscardReason::NotAllowed { position: 2 })
        );
    }

    #[test]
    fn leading_zeros_policy() {
        let strip = FrameRules {
            leading_zeros: LeadingZeros::Strip,
            min_len: 1,
            ..rules(FrameKind::Line)
        };
        assert_eq!(strip.normalize(b"0012345678").unwrap().expose(), "12345678");
        assert_eq!(strip.normalize(b"0000").unwrap().expose(), "0");
        assert_eq!(
            rules(FrameKind::Line)
                .normalize(b"0012345678")
                .unwrap()
                .expose(),
            "0012345678"
        );
        let strict = FrameRules {
            leading_zeros: LeadingZeros::Strip,
            ..rules(FrameKind::Line)
        };
        assert_eq!(
            strict.normalize(b"000123"),
            Err(DiscardReason::TooShort { len: 3, min: 4 })
        );
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
