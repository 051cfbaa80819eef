//! Prompt WAV files decoded with `hound` to mono `f32`: 16-bit integer or 32-bit float PCM
//! (plain or WAVE_FORMAT_EXTENSIBLE), any rate and channel count. That covers what
//! `scripts/make-prompts.sh` and a technician's `sox` produce.

use std::io::Cursor;

use thiserror::Error;

/// Why a WAV file could not be read.
#[derive(Debug, Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file, or a header `hound` refuses (its message says why). Encodings it
    /// does not know (64-bit float, ADPCM) often end up here too, hence the hint.
    #[error("{0}; if it is audio, convert it with `sox in.wav -r 16000 -c 1 -b 16 out.wav`")]
    Header(hound::Error),
    #[error("truncated WAV file: it ends inside its header")]
    Truncated,
    #[error(
        "unsupported WAV encoding ({0}): convert with `sox in.wav -r 16000 -c 1 -b 16 out.wav`"
    )]
    Unsupported(String),
    #[error("WAV header has sample rate 0")]
    ZeroRate,
}

/// Decoded audio: mono samples in [-1, 1] at `sample_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

/// Decodes a WAV file's bytes, down-mixing every frame to mono by averaging its channels.
///
/// A data chunk that claims more bytes than the file holds (a writer that streamed and never
/// came back to fix the length) is read as far as it goes; an incomplete last frame is dropped.
pub fn decode_mono_f32(bytes: &[u8]) -> Result<Wav, WavError> {
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| match e {
        // Reading from memory, the only I/O failure is running out of bytes.
        hound::Error::IoError(_) => WavError::Truncated,
        hound::Error::Unsupported => WavError::Unsupported("compressed or unknown format".into()),
        e => WavError::Header(e),
    })?;
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(WavError::ZeroRate);
    }
    let interleaved = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => read_samples(reader, |s: i16| f32::from(s) / 32768.0)?,
        (hound::SampleFormat::Float, 32) => read_samples(reader, |s: f32| s)?,
        (format, bits) => {
            let kind = match format {
                hound::SampleFormat::Int => "integer",
                hound::SampleFormat::Float => "float",
            };
            return Err(WavError::Unsupported(format!("{bits}-bit {kind}")));
        }
    };
    let channels = usize::from(spec.channels); // hound rejects 0 channels
    let samples = interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Wav {
        sample_rate: spec.sample_rate,
        samples,
    })
}

fn read_samples<S: hound::Sample>(
    reader: hound::WavReader<Cursor<&[u8]>>,
    to_f32: impl Fn(S) -> f32,
) -> Result<Vec<f32>, WavError> {
    let bits = reader.spec().bits_per_sample;
    // Pushed one by one: a lying data length must not size the allocation.
    let mut out = Vec::new();
    for sample in reader.into_samples::<S>() {
        match sample {
            Ok(s) => out.push(to_f32(s)),
            // The data ends before the length in its header: keep what is there.
            Err(hound::Error::IoError(_)) => break,
            // With the format checked, hound's only other refusal is a sample stored in more
            // bytes than its bit depth needs (e.g. 16 bits in 4-byte slots).
            Err(_) => {
                return Err(WavError::Unsupported(format!(
                    "{bits}-bit samples in padded slots"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(channels: u16, bits: u16, format: hound::SampleFormat) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: 8_000,
            bits_per_sample: bits,
            sample_format: format,
        }
    }

    fn write<S: hound::Sample + Copy>(spec: hound::WavSpec, samples: &[S]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    fn i16_mono(samples: &[i16]) -> Vec<u8> {
        write(spec(1, 16, hound::SampleFormat::Int), samples)
    }

    #[test]
    fn reads_i16_mono() {
        let w = decode_mono_f32(&i16_mono(&[0, 16_384, -16_384, i16::MAX, i16::MIN])).unwrap();
        assert_eq!(w.sample_rate, 8_000);
        assert_eq!(w.samples, vec![0.0, 0.5, -0.5, 32_767.0 / 32_768.0, -1.0]);
    }

    #[test]
    fn downmixes_stereo_and_reads_float() {
        // Frames (0.5, -0.5) and (0.25, 0.25).
        let f = write(
            spec(2, 16, hound::SampleFormat::Int),
            &[16_384i16, -16_384, 8_192, 8_192],
        );
        assert_eq!(decode_mono_f32(&f).unwrap().samples, vec![0.0, 0.25]);

        let f = write(
            spec(2, 32, hound::SampleFormat::Float),
            &[0.75f32, 0.25, -1.0, 0.0],
        );
        assert_eq!(decode_mono_f32(&f).unwrap().samples, vec![0.5, -0.5]);
    }

    /// Format tag 3 with a 16-byte fmt chunk, as older tools write float (hound writes
    /// WAVE_FORMAT_EXTENSIBLE).
    fn plain_float(bits: u16, data: &[u8]) -> Vec<u8> {
        let block = u32::from(bits / 8);
        let mut f = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x03\0\x01\0".to_vec();
        f.extend_from_slice(&8_000u32.to_le_bytes());
        f.extend_from_slice(&(8_000 * block).to_le_bytes());
        f.extend_from_slice(&(block as u16).to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f.extend_from_slice(b"data");
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn reads_a_plain_ieee_float_header() {
        let f = plain_float(32, &0.75f32.to_le_bytes());
        assert_eq!(decode_mono_f32(&f).unwrap().samples, vec![0.75]);
    }

    #[test]
    fn keeps_what_is_there_when_the_data_is_cut_short() {
        let mut f = i16_mono(&[16_384; 10]);
        f.truncate(f.len() - 3); // 8 whole samples and half of one
        assert_eq!(decode_mono_f32(&f).unwrap().samples, vec![0.5; 8]);

        let mut f = write(spec(2, 16, hound::SampleFormat::Int), &[16_384i16; 10]);
        f.truncate(f.len() - 2); // 4 whole frames and half of one
        assert_eq!(decode_mono_f32(&f).unwrap().samples, vec![0.5; 4]);
    }

    #[test]
    fn rejects_garbage_and_truncated_headers() {
        let e = decode_mono_f32(b"hello").unwrap_err();
        assert!(matches!(e, WavError::Header(_)), "{e:?}");
        assert!(e.to_string().contains("no RIFF tag"), "{e}");
        let e = decode_mono_f32(b"RIFF\0\0\0\0AVI LIST").unwrap_err();
        assert!(e.to_string().contains("no WAVE tag"), "{e}");

        let mut f = i16_mono(&[0; 10]);
        f.truncate(30); // inside the fmt chunk
        assert!(matches!(decode_mono_f32(&f), Err(WavError::Truncated)));
        f.truncate(12); // no chunk at all
        assert!(matches!(decode_mono_f32(&f), Err(WavError::Truncated)));
    }

    #[test]
    fn rejects_bad_headers_with_a_reason() {
        let mut f = i16_mono(&[0; 10]);
        f[22] = 0; // channels
        let e = decode_mono_f32(&f).unwrap_err();
        assert!(e.to_string().contains("zero channels"), "{e}");

        let mut f = i16_mono(&[0; 10]);
        f[24..32].fill(0); // sample rate and byte rate
        assert!(matches!(decode_mono_f32(&f), Err(WavError::ZeroRate)));

        // hound refuses 64-bit float as ill-formed: the message still says what to do.
        let e = decode_mono_f32(&plain_float(64, &0.5f64.to_le_bytes())).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("not 32") && msg.contains("sox"), "{msg}");
    }

    #[test]
    fn rejects_other_encodings_with_a_conversion_hint() {
        let cases = [
            (
                write(spec(1, 24, hound::SampleFormat::Int), &[0i32; 4]),
                "24-bit integer",
            ),
            (
                write(spec(1, 8, hound::SampleFormat::Int), &[0i8; 4]),
                "8-bit integer",
            ),
            (
                write(spec(1, 32, hound::SampleFormat::Int), &[0i32; 4]),
                "32-bit integer",
            ),
            (
                {
                    let mut f = i16_mono(&[0; 4]);
                    f[20] = 7; // format tag: mu-law
                    f
                },
                "compressed",
            ),
        ];
        for (f, what) in cases {
            let e = decode_mono_f32(&f).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, WavError::Unsupported(_)), "{what}: {e:?}");
            assert!(msg.contains(what) && msg.contains("sox"), "{msg}");
        }
    }

    #[test]
    fn reads_the_shipped_prompts() {
        let w = decode_mono_f32(include_bytes!("../../../assets/prompts/front_desk.wav")).unwrap();
        assert_eq!(w.sample_rate, 16_000);
        assert!(w.samples.len() > 16_000);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_mono_f32(&bytes);
        }

        #[test]
        fn never_panics_after_a_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut f = b"RIFF\0\0\0\0WAVE".to_vec();
            f.extend(tail);
            let _ = decode_mono_f32(&f);
        }

        #[test]
        fn never_panics_after_a_valid_fmt_chunk(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut f = i16_mono(&[]);
            f.truncate(36);
            f.extend(tail);
            let _ = decode_mono_f32(&f);
        }
    }
}
