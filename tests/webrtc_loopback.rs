//! One integration binary for the WebRTC tests (one link instead of three: disk and time).

mod webrtc;
