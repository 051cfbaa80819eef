//! Adaptive jitter buffer for the Realtime API's Opus RTP stream (pure: no clock, no I/O).
//!
//! str0m hands us RTP packets as they arrive, out of order and with gaps; nothing else in the
//! WebRTC stack reorders or hides loss. The playback thread asks [`JitterBuffer::pop`] for one
//! packet per play-out slot and gets back what to do: decode a packet, rebuild a lost one from
//! the next packet's in-band FEC, conceal it (Opus PLC), or play silence.
//!
//! Depth adapts to measured jitter (RFC 3550 inter-arrival jitter, in milliseconds): play-out
//! starts once `target` packets are buffered (or the first one has waited that long), `target`
//! grows with jitter and after late packets, and a backlog beyond `max_depth` (plus the
//! device's burst, see [`JitterBuffer::set_device_burst`]) is dropped to keep latency bounded.
//!
//! An underrun (nothing buffered when a slot is due) is concealed without giving up the missing
//! packet's slot: play-out waits for it, so a packet that is merely slow still plays and the
//! delay grows by what was concealed (the playback chain trims it back in silent passages).
//! Only a packet whose successor already played is late. Time is an input (`now_ms`), so pops
//! may come in bursts, as they do in front of a device that drains 100 ms at once.
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
    /// Arrival of the first packet buffered while not playing: a short burst starts once it
    /// has waited `target` packet durations.
    buffering_since: Option<u64>,
    /// Last in-order arrival (ms) and RTP timestamp, for the jitter estimate.
    last_arrival: Option<(u64, u32)>,
    jitter_ms: f64,
    late_boost: u32,
    /// When the late boost last changed; it shrinks by one per [`LATE_BOOST_DECAY_MS`].
    late_boost_at_ms: u64,
    /// Extra packets allowed in the backlog because the device drains in bursts.
    device_burst: u32,
    /// The burst the backlog bound still allows: a smaller measured burst lowers it only once
    /// the backlog fits, so what the larger one buffered drains (or is trimmed as silence)
    /// instead of being dropped as overflow.
    bound_burst: u32,
    stats: JitterStats,
}

/// Time without a late packet after which the late boost shrinks by one.
const LATE_BOOST_DECAY_MS: u64 = 1_000;

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
            buffering_since: None,
            last_arrival: None,
            jitter_ms: 0.0,
            late_boost: 0,
            late_boost_at_ms: 0,
            device_burst: 0,
            bound_burst: 0,
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
            self.note_late(now_ms);
            return PushOutcome::Late;
        };
        if ext < self.flushed_below {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        if ext < self.floor || self.next.is_some_and(|n| ext < n) {
            self.note_late(now_ms);
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
        if self.next.is_none() {
            self.buffering_since.get_or_insert(now_ms);
        }
        self.trim_backlog();
        PushOutcome::Accepted
    }

    fn note_late(&mut self, now_ms: u64) {
        self.stats.late += 1;
        self.late_boost = (self.late_boost + 1).min(self.cfg.max_depth);
        self.late_boost_at_ms = now_ms;
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

    /// Packets the device takes at once (1 for a steady 20 ms card, 5 for one that drains
    /// 100 ms per wake-up): they pile up between its wake-ups, so the backlog bound grows by
    /// as many.
    pub fn set_device_burst(&mut self, packets: u32) {
        self.device_burst = packets;
        self.bound_burst = self.bound_burst.max(packets);
    }

    /// Drops the oldest packets while the backlog exceeds `max_depth` plus the device burst.
    fn trim_backlog(&mut self) {
        let fits = |burst: u32| self.packets.len() <= (self.cfg.max_depth.max(1) + burst) as usize;
        if fits(self.device_burst) {
            self.bound_burst = self.device_burst;
        }
        let max = (self.cfg.max_depth.max(1) + self.bound_burst) as usize;
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

    /// Packets to buffer before play-out starts, from the current jitter estimate and the
    /// device's burst: a device that takes 100 ms at once needs those packets at hand when it
    /// does, however its bursts fall between arrivals (none extra for a steady 20 ms device).
    pub fn target_depth(&self) -> u32 {
        let from_jitter =
            (2.0 * self.jitter_ms / f64::from(self.cfg.packet_ms.max(1))).ceil() as u32;
        let base = (self.cfg.min_depth.max(1) + from_jitter + self.late_boost)
            .min(self.cfg.max_depth.max(1));
        base + self.device_burst.saturating_sub(1)
    }

    /// The smoothed inter-arrival jitter, in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// What to play in the next slot (`now_ms` on the clock `push` uses). Call once per
    /// packet duration on average; calls may come in bursts.
    pub fn pop(&mut self, now_ms: u64) -> Playout {
        if self.late_boost > 0
            && now_ms.saturating_sub(self.late_boost_at_ms) >= LATE_BOOST_DECAY_MS
        {
            self.late_boost -= 1;
            self.late_boost_at_ms = now_ms;
        }
        let next = match self.next {
            Some(n) => n,
            None => {
                let Some(&first) = self.packets.keys().next() else {
                    return Playout::Silence;
                };
                let target = self.target_depth();
                let waited = now_ms.saturating_sub(self.buffering_since.unwrap_or(now_ms));
                if (self.packets.len() as u32) < target
                    && waited < u64::from(target * self.cfg.packet_ms)
                {
                    return Playout::Silence;
                }
                self.buffering_since = None;
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
            // Underrun: nothing buffered yet. Conceal but keep waiting for `next`: if it is
            // only slow it still plays, a little later.
            self.missing_run += 1;
            if self.missing_run > self.cfg.max_conceal {
                self.stop(next);
                return Playout::Silence;
            }
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
        self.buffering_since = None;
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
        assert_eq!(j.pop(0), Playout::Silence);
        push(&mut j, 10);
        assert_eq!(
            j.pop(200),
            Playout::Silence,
            "one packet is below min_depth 2"
        );
        push(&mut j, 11);
        assert_eq!(j.pop(220), Playout::Packet(payload(10)));
        push(&mut j, 12);
        assert_eq!(j.pop(240), Playout::Packet(payload(11)));
        assert_eq!(j.pop(260), Playout::Packet(payload(12)));
        assert!(j.is_active());
    }

    #[test]
    fn reorders() {
        let mut j = jb();
        for s in [3, 1, 2, 0] {
            assert_eq!(push(&mut j, s), PushOutcome::Accepted);
        }
        for s in 0..4 {
            assert_eq!(j.pop(80), Playout::Packet(payload(s)));
        }
    }

    #[test]
    fn lost_packet_with_a_successor_uses_fec() {
        let mut j = jb();
        for s in [0, 1, 3, 4] {
            push(&mut j, s);
        }
        assert_eq!(j.pop(80), Playout::Packet(payload(0)));
        assert_eq!(j.pop(80), Playout::Packet(payload(1)));
        assert_eq!(
            j.pop(80),
            Playout::Fec(payload(3)),
            "slot 2 rebuilt from 3's FEC"
        );
        assert_eq!(j.pop(80), Playout::Packet(payload(3)));
        assert_eq!(j.stats().fec, 1);
    }

    #[test]
    fn lost_packet_without_direct_successor_is_concealed() {
        let mut j = jb();
        for s in [0, 1, 4] {
            push(&mut j, s);
        }
        j.pop(80);
        j.pop(80);
        assert_eq!(j.pop(80), Playout::Conceal, "slot 2: 3 is missing too");
        assert_eq!(j.pop(80), Playout::Fec(payload(4)), "slot 3 from 4's FEC");
        assert_eq!(j.pop(80), Playout::Packet(payload(4)));
    }

    #[test]
    fn a_slow_packet_after_an_underrun_still_plays() {
        let mut j = jb();
        push(&mut j, 0);
        push(&mut j, 1);
        j.pop(20);
        j.pop(20);
        assert_eq!(j.pop(20), Playout::Conceal);
        assert_eq!(j.pop(20), Playout::Conceal);
        assert_eq!(
            push(&mut j, 2),
            PushOutcome::Accepted,
            "slot 2 is still open"
        );
        assert_eq!(j.pop(40), Playout::Packet(payload(2)));
        assert_eq!(j.stats().late, 0);
    }

    #[test]
    fn underrun_conceals_then_stops_and_rebuffers() {
        let mut j = jb();
        push(&mut j, 0);
        push(&mut j, 1);
        j.pop(20);
        j.pop(20);
        for _ in 0..3 {
            assert_eq!(j.pop(20), Playout::Conceal);
        }
        assert_eq!(j.pop(20), Playout::Silence);
        assert!(!j.is_active());
        push(&mut j, 3);
        push(&mut j, 4);
        assert_eq!(j.pop(80), Playout::Packet(payload(3)), "a new burst");
        assert_eq!(push(&mut j, 2), PushOutcome::Late, "its successor played");
        assert_eq!(j.target_depth(), 3, "a late packet deepens the buffer");
        push(&mut j, 7);
        push(&mut j, 8);
        assert_eq!(j.pop(80), Playout::Packet(payload(4)));
        assert_eq!(j.pop(80), Playout::Conceal, "5 lost, and 6 too");
        assert_eq!(j.pop(80), Playout::Fec(payload(7)), "6 from 7's FEC");
    }

    #[test]
    fn a_lone_packet_still_plays_after_the_target_wait() {
        let mut j = jb();
        push(&mut j, 0);
        assert_eq!(j.pop(0), Playout::Silence);
        assert_eq!(j.pop(20), Playout::Silence);
        assert_eq!(
            j.pop(20),
            Playout::Silence,
            "a burst of pops is not waiting"
        );
        assert_eq!(j.pop(40), Playout::Packet(payload(0)));
    }

    #[test]
    fn late_and_duplicate_packets_are_refused() {
        let mut j = jb();
        push(&mut j, 0);
        push(&mut j, 1);
        assert_eq!(push(&mut j, 1), PushOutcome::Duplicate);
        j.pop(20);
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
        j.pop(80);
        j.flush();
        assert!(!j.is_active());
        assert_eq!(j.pop(80), Playout::Silence);
        assert_eq!(
            push(&mut j, 3),
            PushOutcome::Late,
            "old response, in flight"
        );
        assert_eq!(j.target_depth(), 2, "stale packets are not jitter");
        push(&mut j, 5);
        push(&mut j, 6);
        assert_eq!(j.pop(120), Playout::Packet(payload(5)));
    }

    #[test]
    fn wraps_sequence_numbers() {
        let mut j = jb();
        for s in [65_534u16, 65_535, 0, 1] {
            j.push(s, 0, &payload(s), 0);
        }
        for s in [65_534u16, 65_535, 0, 1] {
            assert_eq!(j.pop(0), Playout::Packet(payload(s)));
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
            j.pop(arrival);
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
        j.pop(20);
        j.push(0, 0, &payload(0), 30);
        assert_eq!(j.target_depth(), 3);
        j.pop(30 + LATE_BOOST_DECAY_MS - 1);
        assert_eq!(j.target_depth(), 3);
        j.pop(30 + LATE_BOOST_DECAY_MS);
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
        assert_eq!(j.pop(500), Playout::Packet(payload(15)));
        assert_eq!(push(&mut j, 3), PushOutcome::Late);
    }

    #[test]
    fn a_bursty_device_widens_the_backlog_bound_and_the_target() {
        let mut j = jb();
        j.set_device_burst(1);
        assert_eq!(j.target_depth(), 2, "a steady device adds nothing");
        j.set_device_burst(5);
        assert_eq!(j.target_depth(), 6);
        for s in 0..15 {
            push(&mut j, s);
        }
        assert_eq!(j.len(), 15);
        assert_eq!(j.stats().overflow_dropped, 0);
    }

    #[test]
    fn a_smaller_burst_drains_what_the_larger_one_buffered_instead_of_dropping_it() {
        let mut j = jb();
        j.set_device_burst(5);
        for s in 0..14 {
            push(&mut j, s);
        }
        j.set_device_burst(1);
        push(&mut j, 14);
        assert_eq!(j.len(), 15);
        assert_eq!(j.stats().overflow_dropped, 0, "nothing buffered is lost");
        let mut t = 500;
        while j.len() > 10 {
            assert!(matches!(j.pop(t), Playout::Packet(_)));
            t += 20;
        }
        for s in 15..19 {
            push(&mut j, s);
        }
        assert_eq!(j.len(), 11, "once drained, the steady device's bound holds");
        assert_eq!(j.stats().overflow_dropped, 3);
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
                if i % 2 == 0 && let Playout::Packet(p) = j.pop(i as u64 * 20) {
                    played.push(seq_of(&p));
                }
            }
            for k in 0..60 {
                if let Playout::Packet(p) = j.pop(800 + k * 20) { played.push(seq_of(&p)); }
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
                match j.pop(u64::from(i) * 20) {
                    Playout::Packet(p) => { prop_assert_eq!(seq_of(&p), start.wrapping_add(played)); played += 1; }
                    Playout::Silence => prop_assert!(played == 0),
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            while let Playout::Packet(_) = j.pop(u64::from(n) * 20) { played += 1; }
            prop_assert_eq!(played, n);
            let s = j.stats();
            prop_assert_eq!((s.fec, s.late, s.overflow_dropped), (0, 0, 0));
        }

        /// Packets that arrive in order, on a schedule with any jitter, are never late and all
        /// play, whatever bursts the device pops them in (it drains up to 100 ms at once).
        #[test]
        fn in_order_arrivals_are_never_late_whatever_the_pop_bursts(
            start in any::<u16>(),
            arrival_jitter in proptest::collection::vec(0u64..30, 50..300),
            burst_ms in prop_oneof![Just(20u64), Just(40), Just(100)],
            phase in 0u64..100,
        ) {
            let mut j = jb();
            j.set_device_burst((burst_ms / 20) as u32);
            let n = arrival_jitter.len() as u64;
            // Arrival of packet i: its send time plus a jitter that never reorders.
            let mut arrivals = Vec::new();
            let mut last = 0;
            for (i, d) in arrival_jitter.iter().enumerate() {
                last = (i as u64 * 20 + d).max(last);
                arrivals.push(last);
            }
            let (mut pushed, mut played, mut slots) = (0usize, 0u64, 0u64);
            let mut t = phase;
            while t < n * 20 + 1_000 {
                while pushed < arrivals.len() && arrivals[pushed] <= t {
                    let s = start.wrapping_add(pushed as u16);
                    let ts = (pushed as u32) * 960;
                    prop_assert_eq!(j.push(s, ts, &payload(s), arrivals[pushed]), PushOutcome::Accepted);
                    pushed += 1;
                }
                // The device took `burst_ms`: play that many slots now, plus 60 ms of lead.
                let due = (t + 60) / 20;
                while slots < due {
                    if let Playout::Packet(_) = j.pop(t) { played += 1; }
                    slots += 1;
                }
                t += burst_ms;
            }
            let s = j.stats();
            prop_assert_eq!((s.late, s.fec, s.overflow_dropped), (0, 0, 0));
            prop_assert_eq!(played, n);
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
                    5 | 6 => { j.pop(now); }
                    _ => j.flush(),
                }
                prop_assert!(j.len() <= 10);
                prop_assert!(j.target_depth() >= 1 && j.target_depth() <= 10);
            }
        }
    }
}
