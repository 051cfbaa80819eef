//! Real WebRTC on loopback: the kiosk's str0m peer, the Realtime emulator and its binary.

mod emulator;
mod peer;
mod pipeline;
