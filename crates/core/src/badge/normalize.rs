//! The frame rules: how frames are delimited on the wire, and badge normalisation (one
//! frame's bytes, delimiters removed, to a valid badge or the reason it is not one). Apart from the parser because it defines a valid badge on its own, whatever
//! the framing: [`FrameRules::accepts`] is the invariant the parser guarantees and its
//! property tests and fuzzer check.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::badge::id::Badge;

/// `badge.framing`: how the scanner delimits frames.
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

/// Whitespace a frame may carry around its content on top of prefix and suffix before it
/// counts as overlong.
const RAW_SLACK: usize = 16;

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
    /// See [`DEFAULT_IDLE_RESET`](crate::badge::frame::DEFAULT_IDLE_RESET).
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
pub(super) fn trim_frame(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::badge::frame::DEFAULT_IDLE_RESET;

    pub(crate) fn rules(framing: FrameKind) -> FrameRules {
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
}
