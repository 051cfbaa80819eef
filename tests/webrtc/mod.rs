//! Real WebRTC on loopback: the kiosk's str0m peer, the Realtime emulator and its binary.

mod emulator;
mod network;
mod peer;
mod pipeline;
