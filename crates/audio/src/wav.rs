//! Minimal WAV (RIFF) reader and writer for prompts and tests: PCM 16-bit or float 32-bit, any
//! rate and channel count, read as mono `f32`. Enough for what `scripts/make-prompts.sh` and a
//! technician's `sox` produce, without a dependency.

use thiserror::Error;

/// Why a WAV file could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("truncated WAV file: {0}")]
    Truncated(&'static str),
    #[error(
        "unsupported WAV encoding (format tag {tag}, {bits} bits): convert with `sox in.wav -r 16000 -c 1 -b 16 out.wav`"
    )]
    Unsupported { tag: u16, bits: u16 },
    #[error("WAV header has {0} channels or rate 0")]
    BadHeader(u16),
}

/// Decoded audio: mono samples in [-1, 1] at `sample_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Reads a WAV file's bytes, down-mixing every frame to mono by averaging its channels.
pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut pos = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32_at(bytes, pos + 4).ok_or(WavError::Truncated("chunk header"))? as usize;
        let body_start = pos + 8;
        let body = bytes.get(body_start..body_start.saturating_add(len));
        match id {
            b"fmt " => {
                let b = body.ok_or(WavError::Truncated("fmt chunk"))?;
                let mut tag = u16_at(b, 0).ok_or(WavError::Truncated("fmt chunk"))?;
                let channels = u16_at(b, 2).ok_or(WavError::Truncated("fmt chunk"))?;
                let rate = u32_at(b, 4).ok_or(WavError::Truncated("fmt chunk"))?;
                let bits = u16_at(b, 14).ok_or(WavError::Truncated("fmt chunk"))?;
                if tag == FORMAT_EXTENSIBLE {
                    tag = u16_at(b, 24).ok_or(WavError::Truncated("fmt extension"))?;
                }
                fmt = Some((tag, channels, rate, bits));
            }
            b"data" => {
                let (tag, channels, rate, bits) = fmt.ok_or(WavError::Truncated("no fmt chunk"))?;
                if channels == 0 || rate == 0 {
                    return Err(WavError::BadHeader(channels));
                }
                // Writers that stream may leave the length at 0 or too large: take what is there.
                let data = &bytes[body_start..body_start.saturating_add(len).min(bytes.len())];
                return decode(data, tag, bits, usize::from(channels), rate);
            }
            _ => {}
        }
        pos = body_start.saturating_add(len).saturating_add(len & 1);
    }
    Err(WavError::Truncated("no data chunk"))
}

fn decode(
    data: &[u8],
    tag: u16,
    bits: u16,
    channels: usize,
    sample_rate: u32,
) -> Result<Wav, WavError> {
    let interleaved: Vec<f32> = match (tag, bits) {
        (FORMAT_PCM, 16) => data
            .chunks_exact(2)
            .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
            .collect(),
        (FORMAT_FLOAT, 32) => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => return Err(WavError::Unsupported { tag, bits }),
    };
    let samples = interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Wav {
        sample_rate,
        samples,
    })
}

/// Encodes mono samples as a 16-bit PCM WAV file (used by tests and `doctor` diagnostics).
pub fn encode_i16(sample_rate: u32, samples: &[f32]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&f32_to_i16(*s).to_le_bytes());
    }
    out
}

/// Converts a float sample to i16 with clipping.
pub fn f32_to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_i16() {
        let samples = [0.0, 0.5, -0.5, 0.999, -1.0];
        let w = parse(&encode_i16(16_000, &samples)).unwrap();
        assert_eq!(w.sample_rate, 16_000);
        for (a, b) in w.samples.iter().zip(samples) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(parse(b"hello"), Err(WavError::NotWav));
        let mut f = encode_i16(16_000, &[0.1; 10]);
        f.truncate(30);
        assert!(matches!(parse(&f), Err(WavError::Truncated(_))));
        let mut f = encode_i16(16_000, &[0.1; 10]);
        f[34] = 24; // bits per sample
        assert_eq!(parse(&f), Err(WavError::Unsupported { tag: 1, bits: 24 }));
        let mut f = encode_i16(16_000, &[0.1; 10]);
        f[22] = 0; // channels
        assert_eq!(parse(&f), Err(WavError::BadHeader(0)));
    }

    #[test]
    fn downmixes_stereo_and_reads_float() {
        let mut f = encode_i16(8_000, &[0.5, -0.5, 0.25, 0.25]);
        f[22] = 2; // two channels: frames (0.5,-0.5) and (0.25,0.25)
        let w = parse(&f).unwrap();
        assert_eq!(w.samples.len(), 2);
        assert!(w.samples[0].abs() < 1e-3 && (w.samples[1] - 0.25).abs() < 1e-3);

        let mut f = encode_i16(8_000, &[0.0, 0.0]);
        f[20] = 3; // float
        f[34] = 32;
        let (head, _) = f.split_at(44);
        let mut f = head.to_vec();
        f.extend_from_slice(&0.75f32.to_le_bytes());
        let w = parse(&f).unwrap();
        assert_eq!(w.samples, vec![0.75]);
    }

    #[test]
    fn reads_the_shipped_prompts() {
        let w = parse(include_bytes!("../../../assets/prompts/front_desk.wav")).unwrap();
        assert_eq!(w.sample_rate, 16_000);
        assert!(w.samples.len() > 16_000);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut f = b"RIFF\0\0\0\0WAVE".to_vec();
            f.extend(tail);
            let _ = parse(&f);
        }
    }
}
