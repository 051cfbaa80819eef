//! A member's voice for the virtual microphone.

/// What the member says, as S16_LE mono 48 kHz bytes: a breath of silence (members do not
/// talk over the last syllable), then `ms` of a voice-like signal at about -22 dBFS: three
/// harmonics of a gliding pitch, in syllables (a 3 Hz envelope that falls to silence), so noise
/// suppression, which learns stationary sounds as noise, treats it as speech.
pub fn utterance(ms: usize) -> Vec<u8> {
    let pause = 48 * 600;
    let tau = std::f32::consts::TAU;
    let mut phase = 0.0f32;
    let mut out = vec![0u8; 2 * pause];
    for i in 0..48 * ms {
        let t = i as f32 / 48_000.0;
        phase += tau * (180.0 + 30.0 * (tau * 0.7 * t).sin()) / 48_000.0;
        let syllable = (tau * 3.0 * t).sin().max(0.0).sqrt();
        let v =
            (phase.sin() + 0.6 * (2.0 * phase).sin() + 0.3 * (3.0 * phase).sin()) * 0.16 * syllable;
        out.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
    }
    out
}
