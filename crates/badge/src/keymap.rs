//! Keyboard-wedge decoding: evdev key events in, badge frames out. No device, no clock.
//!
//! A wedge scanner "types" the badge as key presses in the layout it was configured for,
//! then presses Enter. The kernel reports physical key codes (named after the US position),
//! so the same badge `12` arrives as `KEY_1 KEY_2` from a US scanner and as
//! `Shift+KEY_1 Shift+KEY_2` from a French AZERTY one. This module maps codes to characters
//! per `badge.hid.layout` and hands them to the same [`FrameParser`] the serial reader uses,
//! so the charset, length and normalisation rules are identical.

use std::time::Instant;

use evdev::{EventType, InputEvent, KeyCode};

use jarvis_config::KeyboardLayout;
use jarvis_core::badge::frame::{Discard, FrameEvent, FrameParser, FrameRules};

/// Fed to the parser for a key the layout cannot map, so the frame is rejected
/// (character outside the charset) rather than silently shortened.
const UNMAPPED: char = '\u{FFFD}';

/// The character a key produces in `layout`, or `None` for keys that type nothing a badge
/// could contain (dead keys, function keys).
pub fn key_char(layout: KeyboardLayout, key: KeyCode, shift: bool) -> Option<char> {
    if let Some(c) = keypad_char(key) {
        return Some(c);
    }
    let (plain, shifted) = match layout {
        KeyboardLayout::Us => us_key(key)?,
        KeyboardLayout::Fr => fr_key(key)?,
    };
    if shift { shifted } else { Some(plain) }
}

/// Keypad keys with Num Lock on: the same on every layout.
fn keypad_char(key: KeyCode) -> Option<char> {
    Some(match key {
        KeyCode::KEY_KP0 => '0',
        KeyCode::KEY_KP1 => '1',
        KeyCode::KEY_KP2 => '2',
        KeyCode::KEY_KP3 => '3',
        KeyCode::KEY_KP4 => '4',
        KeyCode::KEY_KP5 => '5',
        KeyCode::KEY_KP6 => '6',
        KeyCode::KEY_KP7 => '7',
        KeyCode::KEY_KP8 => '8',
        KeyCode::KEY_KP9 => '9',
        KeyCode::KEY_KPMINUS => '-',
        KeyCode::KEY_KPPLUS => '+',
        KeyCode::KEY_KPASTERISK => '*',
        KeyCode::KEY_KPSLASH => '/',
        KeyCode::KEY_KPDOT => '.',
        _ => return None,
    })
}

/// Letters common to both layouts (QWERTY and AZERTY differ only on A, Q, W, Z and M).
fn common_letter(key: KeyCode) -> Option<char> {
    Some(match key {
        KeyCode::KEY_B => 'b',
        KeyCode::KEY_C => 'c',
        KeyCode::KEY_D => 'd',
        KeyCode::KEY_E => 'e',
        KeyCode::KEY_F => 'f',
        KeyCode::KEY_G => 'g',
        KeyCode::KEY_H => 'h',
        KeyCode::KEY_I => 'i',
        KeyCode::KEY_J => 'j',
        KeyCode::KEY_K => 'k',
        KeyCode::KEY_L => 'l',
        KeyCode::KEY_N => 'n',
        KeyCode::KEY_O => 'o',
        KeyCode::KEY_P => 'p',
        KeyCode::KEY_R => 'r',
        KeyCode::KEY_S => 's',
        KeyCode::KEY_T => 't',
        KeyCode::KEY_U => 'u',
        KeyCode::KEY_V => 'v',
        KeyCode::KEY_X => 'x',
        KeyCode::KEY_Y => 'y',
        _ => return None,
    })
}

fn letter(c: char) -> Option<(char, Option<char>)> {
    Some((c, Some(c.to_ascii_uppercase())))
}

/// US QWERTY: (unshifted, shifted).
fn us_key(key: KeyCode) -> Option<(char, Option<char>)> {
    if let Some(c) = common_letter(key) {
        return letter(c);
    }
    let (plain, shifted) = match key {
        KeyCode::KEY_A => return letter('a'),
        KeyCode::KEY_Q => return letter('q'),
        KeyCode::KEY_W => return letter('w'),
        KeyCode::KEY_Z => return letter('z'),
        KeyCode::KEY_M => return letter('m'),
        KeyCode::KEY_1 => ('1', '!'),
        KeyCode::KEY_2 => ('2', '@'),
        KeyCode::KEY_3 => ('3', '#'),
        KeyCode::KEY_4 => ('4', '$'),
        KeyCode::KEY_5 => ('5', '%'),
        KeyCode::KEY_6 => ('6', '^'),
        KeyCode::KEY_7 => ('7', '&'),
        KeyCode::KEY_8 => ('8', '*'),
        KeyCode::KEY_9 => ('9', '('),
        KeyCode::KEY_0 => ('0', ')'),
        KeyCode::KEY_MINUS => ('-', '_'),
        KeyCode::KEY_EQUAL => ('=', '+'),
        KeyCode::KEY_LEFTBRACE => ('[', '{'),
        KeyCode::KEY_RIGHTBRACE => (']', '}'),
        KeyCode::KEY_SEMICOLON => (';', ':'),
        KeyCode::KEY_APOSTROPHE => ('\'', '"'),
        KeyCode::KEY_GRAVE => ('`', '~'),
        KeyCode::KEY_BACKSLASH => ('\\', '|'),
        KeyCode::KEY_COMMA => (',', '<'),
        KeyCode::KEY_DOT => ('.', '>'),
        KeyCode::KEY_SLASH => ('/', '?'),
        KeyCode::KEY_SPACE => (' ', ' '),
        _ => return None,
    };
    Some((plain, Some(shifted)))
}

/// French AZERTY (Linux `fr`): digits need Shift on the top row.
fn fr_key(key: KeyCode) -> Option<(char, Option<char>)> {
    if let Some(c) = common_letter(key) {
        return letter(c);
    }
    let (plain, shifted) = match key {
        KeyCode::KEY_Q => return letter('a'),
        KeyCode::KEY_A => return letter('q'),
        KeyCode::KEY_W => return letter('z'),
        KeyCode::KEY_Z => return letter('w'),
        KeyCode::KEY_SEMICOLON => return letter('m'),
        KeyCode::KEY_1 => ('&', Some('1')),
        KeyCode::KEY_2 => ('é', Some('2')),
        KeyCode::KEY_3 => ('"', Some('3')),
        KeyCode::KEY_4 => ('\'', Some('4')),
        KeyCode::KEY_5 => ('(', Some('5')),
        KeyCode::KEY_6 => ('-', Some('6')),
        KeyCode::KEY_7 => ('è', Some('7')),
        KeyCode::KEY_8 => ('_', Some('8')),
        KeyCode::KEY_9 => ('ç', Some('9')),
        KeyCode::KEY_0 => ('à', Some('0')),
        KeyCode::KEY_MINUS => (')', Some('°')),
        KeyCode::KEY_EQUAL => ('=', Some('+')),
        KeyCode::KEY_RIGHTBRACE => ('$', Some('£')),
        KeyCode::KEY_APOSTROPHE => ('ù', Some('%')),
        KeyCode::KEY_GRAVE => ('²', None),
        KeyCode::KEY_BACKSLASH => ('*', Some('µ')),
        KeyCode::KEY_102ND => ('<', Some('>')),
        KeyCode::KEY_M => (',', Some('?')),
        KeyCode::KEY_COMMA => (';', Some('.')),
        KeyCode::KEY_DOT => (':', Some('/')),
        KeyCode::KEY_SLASH => ('!', Some('§')),
        KeyCode::KEY_SPACE => (' ', Some(' ')),
        _ => return None,
    };
    Some((plain, shifted))
}

/// Keys that change state but type nothing; ignored rather than treated as unmapped.
fn is_ignored_modifier(key: KeyCode) -> bool {
    matches!(
        key,
        KeyCode::KEY_LEFTCTRL
            | KeyCode::KEY_RIGHTCTRL
            | KeyCode::KEY_LEFTALT
            | KeyCode::KEY_LEFTMETA
            | KeyCode::KEY_RIGHTMETA
            | KeyCode::KEY_CAPSLOCK
            | KeyCode::KEY_NUMLOCK
            | KeyCode::KEY_SCROLLLOCK
    )
}

const KEY_RELEASE: i32 = 0;
const KEY_PRESS: i32 = 1;

/// Turns a wedge's key events into badge frames: Enter ends a frame.
#[derive(Debug, Clone)]
pub struct WedgeDecoder {
    layout: KeyboardLayout,
    left_shift: bool,
    right_shift: bool,
    /// AltGr (right Alt) types symbols no badge contains: such keys count as unmapped.
    altgr: bool,
    parser: FrameParser,
}

impl WedgeDecoder {
    pub fn new(layout: KeyboardLayout, rules: FrameRules) -> Self {
        WedgeDecoder {
            layout,
            left_shift: false,
            right_shift: false,
            altgr: false,
            parser: FrameParser::new(rules),
        }
    }

    /// Feeds one event read at `now`. Only key presses type; releases update modifiers;
    /// auto-repeat, SYN and MSC events are ignored.
    pub fn feed(&mut self, event: InputEvent, now: Instant) -> Vec<FrameEvent> {
        if event.event_type() != EventType::KEY {
            return Vec::new();
        }
        let key = KeyCode(event.code());
        let value = event.value();
        let down = match value {
            KEY_PRESS => true,
            KEY_RELEASE => false,
            _ => return Vec::new(),
        };
        match key {
            KeyCode::KEY_LEFTSHIFT => self.left_shift = down,
            KeyCode::KEY_RIGHTSHIFT => self.right_shift = down,
            KeyCode::KEY_RIGHTALT => self.altgr = down,
            _ if !down || is_ignored_modifier(key) => {}
            KeyCode::KEY_ENTER | KeyCode::KEY_KPENTER => return self.parser.push(now, b"\r"),
            _ => {
                let shift = self.left_shift || self.right_shift;
                let typed = if self.altgr {
                    None
                } else {
                    key_char(self.layout, key, shift)
                };
                let mut utf8 = [0u8; 4];
                return self.parser.push(
                    now,
                    typed.unwrap_or(UNMAPPED).encode_utf8(&mut utf8).as_bytes(),
                );
            }
        }
        Vec::new()
    }

    /// The device went away: forget the half-typed frame and any held modifier.
    pub fn reset(&mut self) -> Option<Discard> {
        self.left_shift = false;
        self.right_shift = false;
        self.altgr = false;
        self.parser.reset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jarvis_config::{Charset, LeadingZeros, LetterCase};
    use jarvis_core::badge::frame::{DEFAULT_IDLE_RESET, DiscardReason, FrameKind};

    fn rules() -> FrameRules {
        FrameRules {
            framing: FrameKind::Line,
            strip_prefix: String::new(),
            strip_suffix: String::new(),
            charset: Charset::Alphanumeric,
            case: LetterCase::Keep,
            leading_zeros: LeadingZeros::Keep,
            min_len: 4,
            max_len: 32,
            idle_reset: DEFAULT_IDLE_RESET,
        }
    }

    fn key(code: KeyCode, value: i32) -> InputEvent {
        InputEvent::new(EventType::KEY.0, code.0, value)
    }

    fn syn() -> InputEvent {
        InputEvent::new(EventType::SYNCHRONIZATION.0, 0, 0)
    }

    /// Events a scanner sends for one key stroke, with optional Shift around it.
    fn stroke(code: KeyCode, shift: bool) -> Vec<InputEvent> {
        let mut v = Vec::new();
        if shift {
            v.extend([key(KeyCode::KEY_LEFTSHIFT, 1), syn()]);
        }
        v.extend([
            InputEvent::new(EventType::MISC.0, 4, 0x7001e),
            key(code, 1),
            syn(),
            key(code, 0),
            syn(),
        ]);
        if shift {
            v.extend([key(KeyCode::KEY_LEFTSHIFT, 0), syn()]);
        }
        v
    }

    fn run(layout: KeyboardLayout, events: Vec<InputEvent>) -> Vec<FrameEvent> {
        let mut d = WedgeDecoder::new(layout, rules());
        let now = Instant::now();
        events.into_iter().flat_map(|e| d.feed(e, now)).collect()
    }

    fn badges(ev: &[FrameEvent]) -> Vec<String> {
        ev.iter()
            .filter_map(|e| match e {
                FrameEvent::Badge(b) => Some(b.expose().to_owned()),
                FrameEvent::Discarded(_) => None,
            })
            .collect()
    }

    const TOP_ROW: [KeyCode; 10] = [
        KeyCode::KEY_0,
        KeyCode::KEY_1,
        KeyCode::KEY_2,
        KeyCode::KEY_3,
        KeyCode::KEY_4,
        KeyCode::KEY_5,
        KeyCode::KEY_6,
        KeyCode::KEY_7,
        KeyCode::KEY_8,
        KeyCode::KEY_9,
    ];

    fn digits(s: &str, shift: bool) -> Vec<InputEvent> {
        s.bytes()
            .flat_map(|b| stroke(TOP_ROW[usize::from(b - b'0')], shift))
            .chain(stroke(KeyCode::KEY_ENTER, false))
            .collect()
    }

    #[test]
    fn us_digits_then_enter() {
        let ev = run(KeyboardLayout::Us, digits("0012345678", false));
        assert_eq!(badges(&ev), ["0012345678"]);
    }

    #[test]
    fn fr_digits_need_shift() {
        let ev = run(KeyboardLayout::Fr, digits("0012345678", true));
        assert_eq!(badges(&ev), ["0012345678"]);
        let ev = run(KeyboardLayout::Fr, digits("0012345678", false));
        assert!(badges(&ev).is_empty());
        assert!(matches!(
            ev[..],
            [FrameEvent::Discarded(d)] if d.reason == DiscardReason::NotAllowed { position: 0 }
        ));
    }

    #[test]
    fn fr_letters_are_azerty() {
        let mut ev: Vec<InputEvent> = [
            (KeyCode::KEY_Q, true),
            (KeyCode::KEY_W, false),
            (KeyCode::KEY_A, false),
            (KeyCode::KEY_Z, true),
            (KeyCode::KEY_SEMICOLON, false),
            (KeyCode::KEY_1, true),
        ]
        .into_iter()
        .flat_map(|(k, s)| stroke(k, s))
        .collect();
        ev.extend(stroke(KeyCode::KEY_KPENTER, false));
        assert_eq!(badges(&run(KeyboardLayout::Fr, ev.clone())), ["AzqWm1"]);
        // The same strokes from a US scanner type `QwaZ;!`, which the charset rejects.
        assert!(badges(&run(KeyboardLayout::Us, ev)).is_empty());
    }

    #[test]
    fn us_letters_with_right_shift() {
        let ev: Vec<InputEvent> = [
            key(KeyCode::KEY_RIGHTSHIFT, 1),
            key(KeyCode::KEY_A, 1),
            key(KeyCode::KEY_A, 0),
            key(KeyCode::KEY_RIGHTSHIFT, 0),
            key(KeyCode::KEY_B, 1),
            key(KeyCode::KEY_KP1, 1),
            key(KeyCode::KEY_KP2, 1),
            key(KeyCode::KEY_ENTER, 1),
        ]
        .into();
        assert_eq!(badges(&run(KeyboardLayout::Us, ev)), ["Ab12"]);
    }

    #[test]
    fn repeats_and_ignored_modifiers_type_nothing() {
        let mut ev = digits("1234", false);
        ev.insert(0, key(KeyCode::KEY_CAPSLOCK, 1));
        ev.insert(1, key(KeyCode::KEY_1, 2));
        ev.insert(2, key(KeyCode::KEY_LEFTCTRL, 1));
        assert_eq!(badges(&run(KeyboardLayout::Us, ev)), ["1234"]);
    }

    #[test]
    fn unmapped_and_altgr_keys_reject_the_frame_not_shorten_it() {
        let mut ev = stroke(KeyCode::KEY_F1, false);
        ev.extend(digits("1234", false));
        let out = run(KeyboardLayout::Us, ev);
        assert!(badges(&out).is_empty(), "{out:?}");
        let mut ev = vec![key(KeyCode::KEY_RIGHTALT, 1)];
        ev.extend(stroke(KeyCode::KEY_2, true));
        ev.push(key(KeyCode::KEY_RIGHTALT, 0));
        ev.extend(digits("1234", true));
        let out = run(KeyboardLayout::Fr, ev);
        assert!(badges(&out).is_empty(), "{out:?}");
        let ev = digits("5678", true);
        assert_eq!(badges(&run(KeyboardLayout::Fr, ev)), ["5678"]);
    }

    #[test]
    fn reset_drops_the_half_frame_and_held_shift() {
        let mut d = WedgeDecoder::new(KeyboardLayout::Fr, rules());
        let now = Instant::now();
        for e in [key(KeyCode::KEY_LEFTSHIFT, 1), key(KeyCode::KEY_1, 1)] {
            assert!(d.feed(e, now).is_empty());
        }
        assert_eq!(d.reset().map(|x| x.reason), Some(DiscardReason::Incomplete));
        let out: Vec<_> = digits("2222", true)
            .into_iter()
            .flat_map(|e| d.feed(e, now))
            .collect();
        assert_eq!(badges(&out), ["2222"]);
    }

    #[test]
    fn every_layout_types_every_digit_and_letter() {
        for layout in [KeyboardLayout::Us, KeyboardLayout::Fr] {
            let mut typed = std::collections::BTreeSet::new();
            for code in 0..=255u16 {
                for shift in [false, true] {
                    if let Some(c) = key_char(layout, KeyCode(code), shift) {
                        typed.insert(c);
                    }
                }
            }
            for c in ('0'..='9').chain('a'..='z').chain('A'..='Z') {
                assert!(typed.contains(&c), "{layout:?} cannot type {c}");
            }
        }
    }
}
