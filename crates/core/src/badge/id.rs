//! The badge value itself, masked everywhere it could be printed.
//!
//! A raw badge number is personal data that opens a gym's door: it must never reach a log
//! line, a health snapshot or the disk. `Badge` has no `Serialize`, and its `Debug` and
//! `Display` print only `••••••78`, so a stray `{:?}` in a `tracing` call cannot leak it.

use std::fmt;

/// What a masked badge starts with: a fixed width, so the mask does not reveal the length.
const MASK: &str = "••••••";
/// Shortest badge whose last characters are shown; shorter ones are fully masked.
const MIN_LEN_TO_REVEAL: usize = 6;
/// How many trailing characters the mask reveals (enough for support to tell scans apart).
const REVEALED: usize = 2;

/// A validated, normalised badge (made only by [`crate::badge::frame::FrameRules`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Badge(String);

impl Badge {
    /// Wraps a value that already passed the frame rules (charset, case, length).
    pub(crate) fn from_normalized(value: String) -> Self {
        Badge(value)
    }

    /// The raw value, for the one place that needs it: the member directory query and the
    /// keyed hash. Never log or store what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Number of characters (the badge is ASCII after normalisation).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false for a badge made by the frame rules (`badge.min_len` is at least 1).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The printable form: `••••••78`.
    pub fn masked(&self) -> String {
        let mut out = String::from(MASK);
        if self.0.len() >= MIN_LEN_TO_REVEAL {
            out.push_str(&self.0[self.0.len() - REVEALED..]);
        }
        out
    }
}

impl fmt::Display for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Badge({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_show_only_the_last_two_characters() {
        let b = Badge::from_normalized("0012345678".into());
        assert_eq!(b.to_string(), "••••••78");
        assert_eq!(format!("{b:?}"), "Badge(••••••78)");
        assert_eq!(format!("{b:#?}"), "Badge(••••••78)");
        assert!(!format!("{b} {b:?}").contains("123456"));
        assert_eq!(b.expose(), "0012345678");
    }

    #[test]
    fn short_badges_are_fully_masked() {
        let b = Badge::from_normalized("1234".into());
        assert_eq!(b.to_string(), "••••••");
        let b = Badge::from_normalized("123456".into());
        assert_eq!(b.to_string(), "••••••56");
    }

    #[test]
    fn mask_width_does_not_depend_on_length() {
        let a = Badge::from_normalized("AB123456".into()).masked();
        let b = Badge::from_normalized("AB1234567890123456".into()).masked();
        assert_eq!(a.chars().count(), b.chars().count());
    }
}
