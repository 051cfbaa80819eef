//! The `audio` health adapter, combined from the capture and playback sides (either being down
//! degrades it).

use std::sync::{Arc, Mutex};

use super::device::Direction;
use jarvis_core::health::{AdapterState, Health};

/// Health adapter name.
pub const ADAPTER: &str = "audio";

#[derive(Clone, Debug, Default, PartialEq)]
enum Side {
    #[default]
    Starting,
    /// This process does not run that direction (capture or playback started alone).
    Unused,
    Up,
    Down(String),
}

/// Shared by both directions; writes the combined `audio` adapter state on every change.
#[derive(Clone)]
pub struct AudioStatus {
    health: Health,
    sides: Arc<Mutex<(Side, Side)>>,
}

impl AudioStatus {
    /// `used` says which directions (input, output) this process runs.
    pub fn new(health: Health, used: (bool, bool)) -> Self {
        let side = |u: bool| if u { Side::Starting } else { Side::Unused };
        health.set_adapter(ADAPTER, AdapterState::Starting);
        AudioStatus {
            health,
            sides: Arc::new(Mutex::new((side(used.0), side(used.1)))),
        }
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    pub fn up(&self, dir: Direction) {
        self.set(dir, Side::Up);
    }

    /// Marks `dir` down with a reason naming the device and the error; records it once per
    /// distinct reason so a retry loop does not flood `last_errors`.
    pub fn down(&self, dir: Direction, reason: String) {
        self.set(dir, Side::Down(reason));
    }

    fn set(&self, dir: Direction, side: Side) {
        let state = {
            let mut s = self.sides.lock().unwrap_or_else(|p| p.into_inner());
            let slot = match dir {
                Direction::Input => &mut s.0,
                Direction::Output => &mut s.1,
            };
            if *slot == side {
                return;
            }
            if let Side::Down(r) = &side {
                self.health
                    .record_error(format!("audio {}: {r}", dir.label()));
            }
            *slot = side;
            combine(&s.0, &s.1)
        };
        self.health.set_adapter(ADAPTER, state);
    }
}

fn combine(input: &Side, output: &Side) -> AdapterState {
    let mut reasons = Vec::new();
    for (label, side) in [("input", input), ("output", output)] {
        if let Side::Down(r) = side {
            reasons.push(format!("{label}: {r}"));
        }
    }
    if !reasons.is_empty() {
        return AdapterState::Degraded(reasons.join("; "));
    }
    let ready = |s: &Side| matches!(s, Side::Up | Side::Unused);
    if ready(input) && ready(output) {
        AdapterState::Up
    } else {
        AdapterState::Starting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_side_down_degrades_with_both_reasons() {
        let h = Health::new("k", 0);
        let s = AudioStatus::new(h.clone(), (true, true));
        s.up(Direction::Input);
        assert_eq!(h.snapshot().adapters[ADAPTER], AdapterState::Starting);
        s.up(Direction::Output);
        assert_eq!(h.snapshot().adapters[ADAPTER], AdapterState::Up);
        s.down(Direction::Output, "device \"usb\" gone".into());
        s.down(Direction::Output, "device \"usb\" gone".into());
        assert_eq!(
            h.snapshot().adapters[ADAPTER],
            AdapterState::Degraded("output: device \"usb\" gone".into())
        );
        assert_eq!(
            h.snapshot().last_errors.len(),
            1,
            "repeated reason recorded once"
        );
        s.down(Direction::Input, "x".into());
        assert_eq!(
            h.snapshot().adapters[ADAPTER],
            AdapterState::Degraded("input: x; output: device \"usb\" gone".into())
        );
    }

    #[test]
    fn a_direction_not_run_does_not_hold_the_adapter_back() {
        let h = Health::new("k", 0);
        let s = AudioStatus::new(h.clone(), (false, true));
        assert_eq!(h.snapshot().adapters[ADAPTER], AdapterState::Starting);
        s.up(Direction::Output);
        assert_eq!(h.snapshot().adapters[ADAPTER], AdapterState::Up);
    }
}
