//! Nano-dollars per token of the shipped gpt-realtime table (reference §9), written out
//! independently of the code under test.

pub const TEXT_IN: u64 = 4_000;
pub const CACHED: u64 = 400;
pub const TEXT_OUT: u64 = 16_000;
pub const AUDIO_IN: u64 = 32_000;
pub const AUDIO_OUT: u64 = 64_000;
/// gpt-4o-mini-transcribe: audio in $3 / 1M, text out $5 / 1M.
pub const ASR_AUDIO_IN: u64 = 3_000;
pub const ASR_TEXT_OUT: u64 = 5_000;
