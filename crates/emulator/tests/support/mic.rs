//! The member's microphone for emulator tests: a 20 ms Opus frame every 20 ms, speech when
//! queued, else silence.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use jarvis_realtime::peer::PeerHandle;
use jarvis_realtime_emulator::audio;

pub struct Mic {
    queue: Arc<Mutex<VecDeque<Vec<u8>>>>,
}

impl Mic {
    pub fn start(peer: Arc<PeerHandle>) -> Mic {
        let queue = Arc::new(Mutex::new(VecDeque::<Vec<u8>>::new()));
        let q = queue.clone();
        let silence = audio::encode_frames(&[0i16; 960]).unwrap().remove(0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(audio::FRAME);
            loop {
                tick.tick().await;
                let frame = q.lock().unwrap().pop_front();
                if peer
                    .send_audio(
                        frame.unwrap_or_else(|| silence.clone()),
                        audio::FRAME_SAMPLES as u32,
                    )
                    .is_err()
                {
                    return;
                }
            }
        });
        Mic { queue }
    }

    /// Queues `ms` of a 220 Hz tone: speech to the emulator's VAD.
    pub fn say(&self, ms: u32) {
        let frames = audio::encode_frames(&audio::tone(220.0, ms)).unwrap();
        self.queue.lock().unwrap().extend(frames);
    }
}
