//! Adaptive jitter buffer for the Realtime API's Opus RTP stream (pure: no clock, no I/O).
//!
//! str0m hands us RTP packets as they arrive, out of order and with gaps; nothing else in the
//! WebRTC stack reorders or hides loss. The playback thread asks [`JitterBuffer::pop`] for one
//! packet per play-out slot and gets back what to do: decode a packet, rebuild a lost one from
//! the next packet's in-band FEC, conceal it (Opus PLC), or play silence.
//!
//! Depth adapts to measured jitter (RFC 3550 inter-arrival jitter, in milliseconds): play-out
//! starts once `target` packets are buffered, `target` grows with jitter and after late
//! packets, and a backlog beyond `max_depth` is dropped to keep latency bounded.
//! [`JitterBuffer::flush`] empties it at once for barge-in, and refuses packets older than the
//! flush that are still in flight.

use std::collections::BTreeMap;

/// Tuning of the jitter buffer, in packets (20 ms each for the Realtime API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Packets buffered before play-out starts when the network is perfect.
    pub min_depth: u32,
    /// Upper bound of the target depth and of the backlog before old packets are dropped.
    pub max_depth: u32,
    /// Missing packets concealed in a row before play-out stops and re-buffers.
    pub max_conceal: u32,
    /// Nominal packet duration, to turn jitter in milliseconds into packets.
    pub packet_ms: u32,
    /// RTP clock rate (48 kHz for Opus).
    pub clock_rate: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            min_depth: 2,
            max_depth: 10,
            max_conceal: 3,
            packet_ms: 20,
            clock_rate: 48_000,
        }
    }
}

/// What the player should produce for the next slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet normally.
    Packet(Vec<u8>),
    /// The packet for this slot is lost: decode this one (the next packet) with `fec = true`.
    Fec(Vec<u8>),
    /// The packet for this slot is lost and nothing follows yet: run Opus PLC.
    Conceal,
    /// Not playing (buffering, idle or flushed): output silence.
    Silence,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Its slot was already played, or it predates a flush.
    Late,
    Duplicate,
    /// Zero-length payload (ignored).
    Empty,
}

/// Counters for health, cumulative since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub played: u64,
    pub fec: u64,
    pub concealed: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Packets dropped because the backlog exceeded `max_depth`.
    pub overflow_dropped: u64,
}

/// The buffer itself. See the module docs.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    packets: BTreeMap<u64, Vec<u8>>,
    /// Highest extended sequence number seen; reference for unwrapping 16-bit numbers.
    highest: Option<u64>,
    /// Packets below this are late (already played or flushed).
    floor: u64,
    /// Packets below this were sent before the last flush: refused without counting as jitter.
    flushed_below: u64,
    /// Next sequence number to play; `None` while buffering.
    next: Option<u64>,
    missing_run: u32,
    /// Slots spent buffering with packets waiting; a short burst starts after `target` slots.
    waiting: u32,
    /// Last in-order arrival (ms) and RTP timestamp, for the jitter estimate.
    last_arrival: Option<(u64, u32)>,
    jitter_ms: f64,
    late_boost: u32,
    pops_since_late: u32,
    stats: JitterStats,
}

/// Pops without a late packet after which the late boost shrinks by one (1 s at 20 ms).
const LATE_BOOST_DECAY_POPS: u32 = 50;

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        JitterBuffer {
            cfg,
            packets: BTreeMap::new(),
            highest: None,
            floor: 0,
            flushed_below: 0,
            next: None,
            missing_run: 0,
            waiting: 0,
            last_arrival: None,
            jitter_ms: 0.0,
            late_boost: 0,
            pops_since_late: 0,
            stats: JitterStats::default(),
        }
    }

    /// Extends a 16-bit RTP sequence number to 64 bits around the highest one seen.
    fn extend(&self, seq: u16) -> Option<u64> {
        match self.highest {
            None => Some(u64::from(seq) + (1 << 16)),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.checked_add_signed(delta)
            }
        }
    }

    /// Stores a received packet; `now_ms` is its arrival time on any monotonic clock.
    pub fn push(&mut self, seq: u16, timestamp: u32, payload: &[u8], now_ms: u64) -> PushOutcome {
        if payload.is_empty() {
            return PushOutcome::Empty;
        }
        let Some(ext) = self.extend(seq) else {
            self.note_late();
            return PushOutcome::Late;
        };
        if ext < self.flushed_below {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        if ext < self.floor || self.next.is_some_and(|n| ext < n) {
            self.note_late();
            return PushOutcome::Late;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        if self.highest.is_none_or(|h| ext > h) {
            self.update_jitter(timestamp, now_ms);
            self.highest = Some(ext);
        }
        self.packets.insert(ext, payload.to_vec());
        self.trim_backlog();
        PushOutcome::Accepted
    }

    fn note_late(&mut self) {
        self.stats.late += 1;
        self.late_boost = (self.late_boost + 1).min(self.cfg.max_depth);
        self.pops_since_late = 0;
    }

    fn update_jitter(&mut self, timestamp: u32, now_ms: u64) {
        if let Some((t0, ts0)) = self.last_arrival {
            let transit_ms = now_ms.saturating_sub(t0) as f64;
            let media_ms = f64::from(timestamp.wrapping_sub(ts0) as i32) * 1000.0
                / f64::from(self.cfg.clock_rate);
            let d = (transit_ms - media_ms).abs().min(1_000.0);
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last_arrival = Some((now_ms, timestamp));
    }

    /// Drops the oldest packets while the backlog exceeds `max_depth`.
    fn trim_backlog(&mut self) {
        let max = self.cfg.max_depth.max(1) as usize;
        while self.packets.len() > max {
            if let Some((seq, _)) = self.packets.pop_first() {
                self.stats.overflow_dropped += 1;
                self.floor = self.floor.max(seq + 1);
                if let Some(n) = self.next.as_mut() {
                    *n = (*n).max(seq + 1);
                }
            }
        }
    }

    /// Packets to buffer before play-out starts, from the current jitter estimate.
    pub fn target_depth(&self) -> u32 {
        let from_jitter =
            (2.0 * self.jitter_ms / f64::from(self.cfg.packet_ms.max(1))).ceil() as u32;
        (self.cfg.min_depth.max(1) + from_jitter + self.late_boost).min(self.cfg.max_depth.max(1))
    }

    /// The smoothed inter-arrival jitter, in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// What to play in the next slot. Call once per packet duration.
    pub fn pop(&mut self) -> Playout {
        self.pops_since_late += 1;
        if self.pops_since_late >= LATE_BOOST_DECAY_POPS {
            self.late_boost = self.late_boost.saturating_sub(1);
            self.pops_since_late = 0;
        }
        let next = match self.next {
            Some(n) => n,
            None => {
                let Some(&first) = self.packets.keys().next() else {
                    return Playout::Silence;
                };
                self.waiting += 1;
                let target = self.target_depth();
                if (self.packets.len() as u32) < target && self.waiting <= target {
                    return Playout::Silence;
                }
                self.waiting = 0;
                self.next = Some(first);
                first
            }
        };
        if let Some(p) = self.packets.remove(&next) {
            self.advance(next);
            self.missing_run = 0;
            self.stats.played += 1;
            return Playout::Packet(p);
        }
        if self.packets.is_empty() {
            // Underrun: nothing after the gap yet.
            self.missing_run += 1;
            if self.missing_run > self.cfg.max_conceal {
                self.stop(next);
                return Playout::Silence;
            }
            self.advance(next);
            self.stats.concealed += 1;
            return Playout::Conceal;
        }
        self.advance(next);
        self.missing_run = 0;
        match self.packets.get(&(next + 1)) {
            Some(p) => {
                self.stats.fec += 1;
                Playout::Fec(p.clone())
            }
            None => {
                self.stats.concealed += 1;
                Playout::Conceal
            }
        }
    }

    fn advance(&mut self, played: u64) {
        self.next = Some(played + 1);
        self.floor = self.floor.max(played + 1);
    }

    /// Stops play-out and re-buffers; packets before `from` count as late.
    fn stop(&mut self, from: u64) {
        self.next = None;
        self.waiting = 0;
        self.missing_run = 0;
        self.floor = self.floor.max(from);
    }

    /// Drops everything buffered at once (barge-in). Packets sent before the flush that are
    /// still in flight are refused as late; the next response re-buffers from scratch.
    pub fn flush(&mut self) {
        self.packets.clear();
        let after = self.highest.map_or(self.floor, |h| h + 1);
        self.flushed_below = after;
        self.stop(after);
        self.last_arrival = None;
    }

    /// True while there is audio to play or play-out is running.
    pub fn is_active(&self) -> bool {
        self.next.is_some() || !self.packets.is_empty()
    }

    /// Packets currently buffered.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when no packet is buffered.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(seq: u16) -> Vec<u8> {
        seq.to_be_bytes().to_vec()
    }

    fn seq_of(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[0], p[1]])
    }

    fn jb() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::default())
    }

    /// Pushes `seq` with the matching timestamp, arriving exactly on time.
    fn push(j: &mut JitterBuffer, seq: u16) -> PushOutcome {
        let n = u32::from(seq);
        j.push(seq, n * 960, &payload(seq), u64::from(n) * 20)
    }

    #[test]
    fn buffers_to_min_depth_then_plays_in_order() {
        let mut j = jb();
        assert_eq!(j.pop(), Playout::Silence);
        push(&mut j, 10);
        assert_eq!(j.pop(), Playout::Silence, "one packet is below min_depth 2");
        push(&mut j, 11);
        assert_eq!(j.pop(), Playout::Packet(payload(10)));
        push(&mut j, 12);
        assert_eq!(j.pop(), Playout::Packet(payload(11)));
        assert_eq!(j.pop(), Playout::Packet(payload(12)));
        assert!(j.is_active());
    }

    #[test]
    fn reorders() {
        let mut j = jb();
        for s in [3, 1, 2, 0] {
            assert_eq!(push(&mut j, s), PushOutcome::Accepted);
        }
        for s in 0..4 {
            assert_eq!(j.pop(), Playout::Packet(payload(s)));
        }
    }

    #[test]
    fn lost_packet_with_a_successor_uses_fec() {
        let mut j = jb();
        for s in [0, 1, 3, 4] {
            push(&mut j, s);
        }
        assert_eq!(j.pop(), Playout::Packet(payload(0)));
        assert_eq!(j.pop(), Playout::Packet(payload(1)));
        assert_eq!(
            j.pop(),
            Playout::Fec(payload(3)),
            "slot 2 rebuilt from 3's FEC"
        );
        assert_eq!(j.pop(), Playout::Packet(payload(3)));
        assert_eq!(j.stats().fec, 1);
    }

    #[test]
    fn lost_packet_without_direct_successor_is_concealed() {
        let mut j = jb();
        for s in [0, 1, 4] {
            push(&mut j, s);
        }
        j.pop();
        j.pop();
        assert_eq!(j.pop(), Playout::Conceal, "slot 2: 3 is missing too");
        assert_eq!(j.pop(), Playout::Fec(payload(4)), "slot 3 from 4's FEC");
        assert_eq!(j.pop(), Playout::Packet(payload(4)));
    }

    #[test]
    fn underrun_conceals_then_stops_and_rebuffers() {
        let mut j = jb();
        push(&mut j, 0);
        push(&mut j, 1);
        j.pop();
        j.pop();
        for _ in 0..3 {
            assert_eq!(j.pop(), Playout::Conceal);
        }
        assert_eq!(j.pop(), Playout::Silence);
        assert!(!j.is_active());
        assert_eq!(
            push(&mut j, 2),
            PushOutcome::Late,
            "slot 2 was concealed already"
        );
        assert_eq!(j.target_depth(), 3, "a late packet deepens the buffer");
        push(&mut j, 6);
        push(&mut j, 7);
        assert_eq!(j.pop(), Playout::Silence, "re-buffering");
        push(&mut j, 8);
        assert_eq!(j.pop(), Playout::Packet(payload(6)));
    }

    #[test]
    fn a_lone_packet_still_plays_after_the_target_wait() {
        let mut j = jb();
        push(&mut j, 0);
        assert_eq!(j.pop(), Playout::Silence);
        assert_eq!(j.pop(), Playout::Silence);
        assert_eq!(j.pop(), Playout::Packet(payload(0)));
    }

    #[test]
    fn late_and_duplicate_packets_are_refused() {
        let mut j = jb();
        push(&mut j, 0);
        push(&mut j, 1);
        assert_eq!(push(&mut j, 1), PushOutcome::Duplicate);
        j.pop();
        assert_eq!(push(&mut j, 0), PushOutcome::Late);
        assert_eq!(j.push(5, 0, &[], 0), PushOutcome::Empty);
        let s = j.stats();
        assert_eq!((s.late, s.duplicates), (1, 1));
    }

    #[test]
    fn flush_empties_and_refuses_in_flight_packets() {
        let mut j = jb();
        for s in 0..5 {
            push(&mut j, s);
        }
        j.pop();
        j.flush();
        assert!(!j.is_active());
        assert_eq!(j.pop(), Playout::Silence);
        assert_eq!(
            push(&mut j, 3),
            PushOutcome::Late,
            "old response, in flight"
        );
        assert_eq!(j.target_depth(), 2, "stale packets are not jitter");
        push(&mut j, 5);
        push(&mut j, 6);
        assert_eq!(j.pop(), Playout::Packet(payload(5)));
    }

    #[test]
    fn wraps_sequence_numbers() {
        let mut j = jb();
        for s in [65_534u16, 65_535, 0, 1] {
            j.push(s, 0, &payload(s), 0);
        }
        for s in [65_534u16, 65_535, 0, 1] {
            assert_eq!(j.pop(), Playout::Packet(payload(s)));
        }
    }

    #[test]
    fn jitter_raises_the_target_depth() {
        let mut j = jb();
        assert_eq!(j.target_depth(), 2);
        // Packets 20 ms apart in media time arrive alternately 0 and 60 ms apart.
        for i in 0..200u16 {
            let arrival = u64::from(i / 2) * 40 + if i % 2 == 1 { 20 } else { 0 };
            let arrival = arrival + if i % 4 == 1 { 40 } else { 0 };
            j.push(i, u32::from(i) * 960, &payload(i), arrival);
            j.pop();
        }
        assert!(j.jitter_ms() > 10.0, "jitter {}", j.jitter_ms());
        assert!(j.target_depth() > 2, "target {}", j.target_depth());
        assert!(j.target_depth() <= 10);
    }

    #[test]
    fn late_packets_raise_the_target_which_then_decays() {
        let mut j = jb();
        push(&mut j, 0);
        push(&mut j, 1);
        j.pop();
        push(&mut j, 0);
        assert_eq!(j.target_depth(), 3);
        for _ in 0..LATE_BOOST_DECAY_POPS {
            j.pop();
        }
        assert_eq!(j.target_depth(), 2);
    }

    #[test]
    fn backlog_is_bounded_by_dropping_the_oldest() {
        let mut j = jb();
        for s in 0..25 {
            push(&mut j, s);
        }
        assert_eq!(j.len(), 10);
        assert_eq!(j.stats().overflow_dropped, 15);
        assert_eq!(j.pop(), Playout::Packet(payload(15)));
        assert_eq!(push(&mut j, 3), PushOutcome::Late);
    }

    proptest! {
        /// Whatever the order, packets come out in increasing order, each at most once, and
        /// every slot is accounted for.
        #[test]
        fn output_is_ordered_and_unique(
            start in any::<u16>(),
            order in Just((0u16..40).collect::<Vec<_>>()).prop_shuffle(),
            drop_mask in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let mut j = jb();
            let mut played = Vec::new();
            for (i, off) in order.iter().enumerate() {
                if drop_mask[*off as usize] && off % 3 == 0 {
                    continue;
                }
                let s = start.wrapping_add(*off);
                j.push(s, u32::from(*off) * 960, &payload(s), i as u64 * 20);
                if i % 2 == 0 && let Playout::Packet(p) = j.pop() {
                    played.push(seq_of(&p));
                }
            }
            for _ in 0..60 {
                if let Playout::Packet(p) = j.pop() { played.push(seq_of(&p)); }
            }
            let offsets: Vec<u16> = played.iter().map(|s| s.wrapping_sub(start)).collect();
            prop_assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
            prop_assert!(!j.is_active());
        }

        /// In-order delivery without loss plays every packet, once, with nothing invented.
        #[test]
        fn clean_stream_plays_everything(start in any::<u16>(), n in 2u16..300) {
            let mut j = jb();
            let mut played = 0;
            for i in 0..n {
                let s = start.wrapping_add(i);
                prop_assert_eq!(j.push(s, u32::from(i) * 960, &payload(s), u64::from(i) * 20), PushOutcome::Accepted);
                match j.pop() {
                    Playout::Packet(p) => { prop_assert_eq!(seq_of(&p), start.wrapping_add(played)); played += 1; }
                    Playout::Silence => prop_assert!(played == 0),
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            while let Playout::Packet(_) = j.pop() { played += 1; }
            prop_assert_eq!(played, n);
            let s = j.stats();
            prop_assert_eq!((s.fec, s.late, s.overflow_dropped), (0, 0, 0));
        }

        /// Arbitrary operations never panic and never hold more than `max_depth` packets.
        #[test]
        fn arbitrary_operations_are_safe(ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u32>(), 0usize..3), 0..300)) {
            let mut j = jb();
            let mut now = 0u64;
            for (op, seq, ts, len) in ops {
                now += u64::from(op % 50);
                match op % 8 {
                    0..=4 => { j.push(seq, ts, &vec![1; len], now); }
                    5 | 6 => { j.pop(); }
                    _ => j.flush(),
                }
                prop_assert!(j.len() <= 10);
                prop_assert!(j.target_depth() >= 1 && j.target_depth() <= 10);
            }
        }
    }
}
