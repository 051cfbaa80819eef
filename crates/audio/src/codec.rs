//! Opus encode/decode: mono, 48 kHz, `Voip` mode with in-band FEC; 10 ms frames out, any
//! frame length in.
//!
//! # C dependency
//! The `opus` crate links the system **libopus** through `audiopus_sys` and pkg-config
//! (`opus.pc`). Native builds need `libopus-dev` (Debian/Ubuntu/Raspberry Pi OS). Cross builds
//! need the target's package and pkg-config pointed at it, for example for aarch64:
//! ```sh
//! dpkg --add-architecture arm64 && apt-get update
//! apt-get install -y libopus-dev:arm64 libasound2-dev:arm64 libudev-dev:arm64
//! export PKG_CONFIG_ALLOW_CROSS=1
//! export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
//! ```
//! (armv7: `:armhf` packages and `/usr/lib/arm-linux-gnueabihf/pkgconfig`). With cross-rs, the
//! same packages go in `Cross.toml`'s `pre-build`. The kiosk then needs the `libopus0` runtime
//! package. `audiopus_sys` can instead build its bundled copy of libopus with CMake when
//! pkg-config finds none; the `.deb` should depend on `libopus0` so that never happens silently.

use thiserror::Error;

use super::SAMPLE_RATE;

/// The longest Opus packet duration (120 ms) in samples: size decode buffers with this.
pub const MAX_PACKET_SAMPLES: usize = 5_760;
/// Encoder bitrate: plenty for wideband speech and leaves room for in-band FEC.
pub const BITRATE_BPS: i32 = 32_000;
/// Expected loss the encoder plans FEC for; libopus only adds FEC data when this is non-zero.
pub const EXPECTED_LOSS_PERCENT: i32 = 10;
const MAX_PACKET_BYTES: usize = 1_275;

/// A libopus call failed.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
}

/// Encodes 10 ms mono frames for the Realtime API.
pub struct OpusEncoder {
    enc: opus::Encoder,
    buf: Vec<u8>,
}

impl OpusEncoder {
    /// Opens a 48 kHz mono `Voip` encoder with in-band FEC at `BITRATE_BPS`.
    pub fn new() -> Result<Self, CodecError> {
        let mut enc =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        enc.set_bitrate(opus::Bitrate::Bits(BITRATE_BPS))?;
        enc.set_inband_fec(true)?;
        enc.set_packet_loss_perc(EXPECTED_LOSS_PERCENT)?;
        Ok(OpusEncoder {
            enc,
            buf: vec![0; MAX_PACKET_BYTES],
        })
    }

    /// Encodes one frame: 2.5, 5, 10, 20, 40 or 60 ms of samples (libopus refuses any other
    /// length). The capture chain sends [`super::SEND_FRAME_SAMPLES`].
    pub fn encode(&mut self, frame: &[f32]) -> Result<Vec<u8>, CodecError> {
        let n = self.enc.encode_float(frame, &mut self.buf)?;
        Ok(self.buf[..n].to_vec())
    }
}

/// Decodes the Realtime API's Opus packets, with loss concealment and FEC recovery.
pub struct OpusDecoder {
    dec: opus::Decoder,
}

impl OpusDecoder {
    /// Opens a 48 kHz mono decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(OpusDecoder {
            dec: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
        })
    }

    /// Decodes one packet into `out` (at least `MAX_PACKET_SAMPLES` long); returns samples.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        Ok(self.dec.decode_float(packet, out, false)?)
    }

    /// Invents `out.len()` samples (a multiple of 2.5 ms) for a packet that never came (PLC).
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<usize, CodecError> {
        Ok(self.dec.decode_float(&[], out, false)?)
    }

    /// Rebuilds the lost packet just before `next` from `next`'s in-band FEC data, filling
    /// `out.len()` samples (the lost packet's duration). Falls back to PLC inside libopus when
    /// `next` carries no FEC.
    pub fn recover(&mut self, next: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        Ok(self.dec.decode_float(next, out, true)?)
    }

    /// Forgets decoder state (after a flush, so old speech does not bleed into concealment).
    pub fn reset(&mut self) -> Result<(), CodecError> {
        Ok(self.dec.reset_state()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FRAME_SAMPLES, SEND_FRAME_SAMPLES};

    fn tone(i: usize) -> f32 {
        0.4 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin()
    }

    fn encode_tone(frames: usize) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new().unwrap();
        (0..frames)
            .map(|f| {
                let frame: Vec<f32> = (0..FRAME_SAMPLES)
                    .map(|i| tone(f * FRAME_SAMPLES + i))
                    .collect();
                enc.encode(&frame).unwrap()
            })
            .collect()
    }

    fn rms(s: &[f32]) -> f32 {
        (s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32).sqrt()
    }

    #[test]
    fn round_trips_a_tone() {
        let packets = encode_tone(50);
        assert!(packets.iter().all(|p| !p.is_empty() && p.len() < 400));
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = vec![0.0; MAX_PACKET_SAMPLES];
        let mut all = Vec::new();
        for p in &packets {
            let n = dec.decode(p, &mut out).unwrap();
            assert_eq!(n, FRAME_SAMPLES);
            all.extend_from_slice(&out[..n]);
        }
        let level = rms(&all[9_600..]);
        assert!((level - 0.2828).abs() < 0.03, "rms {level}");
    }

    #[test]
    fn conceals_and_recovers_with_fec() {
        let packets = encode_tone(30);
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = vec![0.0; MAX_PACKET_SAMPLES];
        for p in &packets[..20] {
            dec.decode(p, &mut out).unwrap();
        }
        // Packet 20 lost: rebuild it from packet 21's FEC.
        let mut lost = vec![0.0; FRAME_SAMPLES];
        assert_eq!(dec.recover(&packets[21], &mut lost).unwrap(), FRAME_SAMPLES);
        assert!(rms(&lost) > 0.1, "FEC frame is audible: {}", rms(&lost));
        // Packet 22 lost with nothing after it: conceal.
        let mut hidden = vec![0.0; FRAME_SAMPLES];
        assert_eq!(dec.conceal(&mut hidden).unwrap(), FRAME_SAMPLES);
        assert!(
            rms(&hidden) > 0.05,
            "PLC continues the tone: {}",
            rms(&hidden)
        );
    }

    #[test]
    fn ten_ms_frames_round_trip() {
        let mut enc = OpusEncoder::new().unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = vec![0.0; MAX_PACKET_SAMPLES];
        let mut all = Vec::new();
        for f in 0..100 {
            let frame: Vec<f32> = (0..SEND_FRAME_SAMPLES)
                .map(|i| tone(f * SEND_FRAME_SAMPLES + i))
                .collect();
            let n = dec.decode(&enc.encode(&frame).unwrap(), &mut out).unwrap();
            assert_eq!(n, SEND_FRAME_SAMPLES);
            all.extend_from_slice(&out[..n]);
        }
        let level = rms(&all[9_600..]);
        assert!((level - 0.2828).abs() < 0.03, "rms {level}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut enc = OpusEncoder::new().unwrap();
        assert!(matches!(enc.encode(&[0.0; 100]), Err(CodecError::Opus(_))));
        let mut dec = OpusDecoder::new().unwrap();
        let mut out = vec![0.0; MAX_PACKET_SAMPLES];
        // A TOC byte announcing a code-3 packet with an impossible frame count.
        assert!(dec.decode(&[0xFF, 0xFF, 0xFF], &mut out).is_err());
    }
}
