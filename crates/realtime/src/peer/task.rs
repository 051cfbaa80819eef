//! The I/O task: owns the `Rtc`, the sockets and the timer, and obeys str0m's rule of draining
//! `poll_output` after every single mutation (input, media write, channel write).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::liveness::{IcePath, Liveness, Phase};
use super::{
    AudioFrame, COMMAND_QUEUE, CloseReason, Command, EVENT_QUEUE, EVENTS_CHANNEL,
    OPUS_FRAME_SAMPLES, PeerError, PeerEvent, PeerEvents, PeerHandle, PeerOptions,
};

/// Most messages that may wait for the channel to open or drain before new ones are refused.
const OUTBOX_LIMIT: usize = 512;

/// How long a graceful close may take to flush close_notify and friends.
const CLOSE_DRAIN: Duration = Duration::from_millis(200);

struct Datagram {
    at: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    data: Vec<u8>,
}

/// Aborts the socket readers when the driver ends (or its task is aborted).
struct Readers(Vec<JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for r in &self.0 {
            r.abort();
        }
    }
}

pub(super) fn spawn(
    rtc: Rtc,
    sockets: Vec<std::net::UdpSocket>,
    audio_mid: Option<Mid>,
    channel: Option<ChannelId>,
    options: &PeerOptions,
) -> Result<(PeerHandle, PeerEvents), PeerError> {
    let mut socks = Vec::with_capacity(sockets.len());
    for s in sockets {
        let local = s.local_addr().map_err(|e| PeerError::Bind {
            ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            source: e,
        })?;
        let s = UdpSocket::from_std(s).map_err(|e| PeerError::Bind {
            ip: local.ip(),
            source: e,
        })?;
        socks.push((local, Arc::new(s)));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let driver = PeerTask {
        rtc,
        sockets: socks,
        audio_mid,
        opus_pt: None,
        channel,
        channel_blocked: false,
        outbox: VecDeque::new(),
        frames_sent: 0,
        frames_dropped: 0,
        liveness: Liveness::new(
            Instant::now(),
            options.connect_timeout,
            options.idle_timeout,
        )
        .with_ice_grace(options.ice_disconnect_grace),
        events: ev_tx,
        paused_until: None,
    };
    let task = tokio::spawn(driver.run(cmd_rx));
    Ok((
        PeerHandle {
            commands: cmd_tx,
            task,
        },
        ev_rx,
    ))
}

struct PeerTask {
    rtc: Rtc,
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    audio_mid: Option<Mid>,
    opus_pt: Option<Pt>,
    channel: Option<ChannelId>,
    channel_blocked: bool,
    outbox: VecDeque<String>,
    frames_sent: u64,
    frames_dropped: u64,
    liveness: Liveness,
    events: mpsc::Sender<PeerEvent>,
    /// Until when every datagram is dropped ([`super::PeerHandle::pause_traffic`]).
    paused_until: Option<Instant>,
}

async fn read_socket(
    local: SocketAddr,
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<std::io::Result<Datagram>>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let msg = match sock.recv_from(&mut buf).await {
            Ok((n, source)) => Ok(Datagram {
                at: Instant::now(),
                source,
                destination: local,
                data: buf[..n].to_vec(),
            }),
            // ICMP errors from an earlier send: the liveness check handles a gone peer.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(e) => Err(e),
        };
        let stop = msg.is_err();
        if tx.send(msg).await.is_err() || stop {
            return;
        }
    }
}

impl PeerTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let (dg_tx, mut datagrams) = mpsc::channel(256);
        let _readers = Readers(
            self.sockets
                .iter()
                .map(|(local, s)| tokio::spawn(read_socket(*local, s.clone(), dg_tx.clone())))
                .collect(),
        );
        drop(dg_tx);
        let reason = loop {
            let timeout = match self.drain() {
                Ok(t) => t,
                Err(r) => break r,
            };
            match self.flush_one() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(r) => break r,
            }
            if let Some(r) = self.liveness.check(Instant::now()) {
                break r;
            }
            let wake = timeout.min(self.liveness.next_deadline());
            let step = tokio::select! {
                dg = datagrams.recv() => match dg {
                    Some(Ok(dg)) if self.paused(dg.at) => Ok(()),
                    Some(Ok(dg)) => self.receive(dg),
                    Some(Err(e)) => Err(CloseReason::Failed(format!("UDP receive failed: {e}"))),
                    None => Err(CloseReason::Failed("all UDP sockets stopped".into())),
                },
                cmd = commands.recv() => match cmd {
                    // Every handle is gone: nobody listens any more.
                    None => return,
                    Some(Command::Audio { frame, marker }) => self.write_audio(frame, marker),
                    Some(Command::Event(json)) => self.queue_event(json),
                    Some(Command::PauseTraffic(span)) => {
                        tracing::info!(?span, "pausing all traffic (fault injection)");
                        self.paused_until = Some(Instant::now() + span);
                        Ok(())
                    }
                    Some(Command::Close) => {
                        self.close_gracefully().await;
                        Err(CloseReason::Local)
                    }
                },
                () = tokio::time::sleep_until(wake.into()) => self
                    .rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| CloseReason::Failed(e.to_string())),
            };
            if let Err(r) = step {
                break r;
            }
        };
        if self.frames_dropped > 0 {
            tracing::debug!(
                frames = self.frames_dropped,
                "audio frames dropped before DTLS was up"
            );
        }
        self.rtc.disconnect();
        tracing::info!(%reason, "WebRTC peer closed");
        // Bounded wait: a stalled consumer must not keep the task alive.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.events.send(PeerEvent::Closed { reason }),
        )
        .await;
    }

    /// Polls str0m until it only wants a timeout, sending datagrams and handling events.
    fn drain(&mut self) -> Result<Instant, CloseReason> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => self.transmit(&t),
                Ok(Output::Event(e)) => self.on_event(e)?,
                Err(e) => return Err(CloseReason::Failed(e.to_string())),
            }
        }
    }

    /// True while traffic is paused at `at`.
    fn paused(&self, at: Instant) -> bool {
        self.paused_until.is_some_and(|until| at < until)
    }

    fn transmit(&self, t: &Transmit) {
        if self.paused(Instant::now()) {
            return;
        }
        let Some((_, sock)) = self.sockets.iter().find(|(a, _)| *a == t.source) else {
            tracing::warn!(source = %t.source, "str0m asked to send from an unknown address");
            return;
        };
        // A full socket buffer drops the datagram, as the network could; str0m retransmits.
        if let Err(e) = sock.try_send_to(&t.contents, t.destination) {
            tracing::debug!(destination = %t.destination, error = %e, "UDP send dropped");
        }
    }

    fn emit(&mut self, ev: PeerEvent) -> Result<(), CloseReason> {
        match self.events.try_send(ev) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(PeerEvent::Audio(_))) => {
                tracing::warn!("peer event consumer is behind; dropped a received audio frame");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(CloseReason::Failed(
                "the peer's event consumer stopped reading (event queue full)".into(),
            )),
            // Nobody listens; keep the connection for the handle's owner.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), CloseReason> {
        match e {
            Event::Connected if self.liveness.on_connected() => self.emit(PeerEvent::Connected)?,
            Event::IceConnectionStateChange(s) => {
                tracing::debug!(state = ?s, "ICE state");
                match self.liveness.on_ice(s, Instant::now()) {
                    IcePath::Lost => tracing::warn!(
                        grace_s = self.liveness.ice_grace().as_secs_f32(),
                        "ICE disconnected: no answer from the Realtime server; the call waits \
                         openai.ice_disconnect_grace_s for the network path to come back"
                    ),
                    IcePath::Back { after } => tracing::info!(
                        after_ms = after.as_millis() as u64,
                        "ICE path back: the call goes on"
                    ),
                    IcePath::Unchanged => {}
                }
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio && self.audio_mid.is_none() => {
                self.audio_mid = Some(m.mid);
            }
            Event::ChannelOpen(id, label)
                if label == EVENTS_CHANNEL && self.channel.is_none_or(|c| c == id) =>
            {
                self.channel = Some(id);
                self.liveness.on_connected();
                if self.liveness.on_channel_open() {
                    self.emit(PeerEvent::ChannelOpen)?;
                }
            }
            Event::ChannelData(d) if Some(d.id) == self.channel => {
                let text = String::from_utf8(d.data)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                self.emit(PeerEvent::Message(text))?;
            }
            Event::ChannelBufferedAmountLow(id) if Some(id) == self.channel => {
                self.channel_blocked = false;
            }
            Event::ChannelClose(id) if Some(id) == self.channel => return Err(CloseReason::Remote),
            Event::MediaData(m) if Some(m.mid) == self.audio_mid => {
                self.emit(PeerEvent::Audio(AudioFrame {
                    seq: **m.seq_range.start(),
                    rtp_time: m.time.numer(),
                    contiguous: m.contiguous,
                    marker: m.audio_start_of_talk_spurt,
                    payload: m.data.to_vec(),
                }))?;
            }
            Event::Closed => return Err(CloseReason::Remote),
            _ => {}
        }
        Ok(())
    }

    fn receive(&mut self, dg: Datagram) -> Result<(), CloseReason> {
        self.liveness.on_packet(dg.at);
        let Ok(recv) = Receive::new(Protocol::Udp, dg.source, dg.destination, &dg.data) else {
            tracing::debug!(source = %dg.source, "ignored a datagram that is not STUN/DTLS/RTP");
            return Ok(());
        };
        self.rtc
            .handle_input(Input::Receive(dg.at, recv))
            .map_err(|e| CloseReason::Failed(e.to_string()))
    }

    fn write_audio(&mut self, frame: Vec<u8>, marker: bool) -> Result<(), CloseReason> {
        let Some(mid) = self.audio_mid else {
            self.frames_dropped += 1;
            return Ok(());
        };
        if self.liveness.phase() == Phase::Connecting {
            self.frames_dropped += 1;
            return Ok(());
        }
        let Some(writer) = self.rtc.writer(mid) else {
            self.frames_dropped += 1;
            return Ok(());
        };
        let pt = match self.opus_pt {
            Some(pt) => pt,
            None => {
                let Some(pt) = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
                else {
                    return Err(CloseReason::Failed(
                        "the remote side did not accept Opus for the audio track".into(),
                    ));
                };
                self.opus_pt = Some(pt);
                pt
            }
        };
        let time = MediaTime::new(
            self.frames_sent * OPUS_FRAME_SAMPLES,
            Frequency::FORTY_EIGHT_KHZ,
        );
        self.frames_sent += 1;
        if let Err(e) = writer
            .start_of_talkspurt(marker)
            .write(pt, Instant::now(), time, frame)
        {
            tracing::warn!(error = %e, "audio frame not sent");
        }
        Ok(())
    }

    fn queue_event(&mut self, json: String) -> Result<(), CloseReason> {
        if self.outbox.len() >= OUTBOX_LIMIT {
            tracing::warn!("data channel outbox full; dropped an outgoing event");
            return Ok(());
        }
        self.outbox.push_back(json);
        Ok(())
    }

    /// Writes at most one queued message (one mutation per drain). True when one was written.
    fn flush_one(&mut self) -> Result<bool, CloseReason> {
        if self.channel_blocked || self.liveness.phase() != Phase::Open {
            return Ok(false);
        }
        let (Some(id), Some(msg)) = (self.channel, self.outbox.front()) else {
            return Ok(false);
        };
        let Some(mut ch) = self.rtc.channel(id) else {
            return Ok(false);
        };
        match ch.write(false, msg.as_bytes()) {
            Ok(true) => {
                self.outbox.pop_front();
                Ok(true)
            }
            Ok(false) => {
                ch.set_buffered_amount_low_threshold(16 * 1024);
                self.channel_blocked = true;
                Ok(false)
            }
            Err(e) => Err(CloseReason::Failed(format!("data channel write: {e}"))),
        }
    }

    async fn close_gracefully(&mut self) {
        if self.rtc.close().is_err() {
            return;
        }
        let until = Instant::now() + CLOSE_DRAIN;
        while self.rtc.is_alive() && Instant::now() < until {
            let Ok(t) = self.drain() else { return };
            let wake = t.min(until);
            tokio::time::sleep_until(wake.into()).await;
            if self
                .rtc
                .handle_input(Input::Timeout(Instant::now()))
                .is_err()
            {
                return;
            }
        }
    }
}
