//! The I/O task: owns the `Rtc`, the sockets and the timer, and obeys str0m's rule of draining
//! `poll_output` after every single mutation (input, media write, channel write).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Event, Input, Output, Rtc};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::liveness::{IcePath, Liveness, Phase};
use super::net_in::{Datagram, NetIn};
use super::paths::{PathLog, Transport};
use super::tcp;
use super::{
    AudioFrame, COMMAND_QUEUE, CloseReason, Command, EVENT_QUEUE, EVENTS_CHANNEL, PeerError,
    PeerEvent, PeerEvents, PeerHandle, PeerOptions, Sockets,
};

/// Most messages that may wait for the channel to open or drain before new ones are refused.
const OUTBOX_LIMIT: usize = 512;

/// How long a graceful close may take to flush close_notify and friends.
const CLOSE_DRAIN: Duration = Duration::from_millis(200);

/// The ICE-TCP links of one peer, by (local candidate, remote) address.
#[derive(Default)]
struct TcpLinks {
    /// The active candidates this peer may connect from.
    active: Vec<SocketAddr>,
    /// Writers of the links that are connecting or up.
    open: HashMap<(SocketAddr, SocketAddr), mpsc::Sender<Vec<u8>>>,
    /// Links that failed: not retried within this connection.
    failed: Vec<(SocketAddr, SocketAddr)>,
}

fn bind_error(e: std::io::Error) -> PeerError {
    PeerError::Bind {
        ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
        source: e,
    }
}

pub(super) fn spawn(
    rtc: Rtc,
    sockets: Sockets,
    audio_mid: Option<Mid>,
    channel: Option<ChannelId>,
    options: &PeerOptions,
) -> Result<(PeerHandle, PeerEvents), PeerError> {
    let mut udp = Vec::with_capacity(sockets.udp.len());
    for s in sockets.udp {
        let local = s.local_addr().map_err(bind_error)?;
        let s = UdpSocket::from_std(s).map_err(|e| PeerError::Bind {
            ip: local.ip(),
            source: e,
        })?;
        udp.push((local, Arc::new(s)));
    }
    let mut listeners = Vec::with_capacity(sockets.listeners.len());
    for l in sockets.listeners {
        let local = l.local_addr().map_err(bind_error)?;
        let l = TcpListener::from_std(l).map_err(|e| PeerError::Bind {
            ip: local.ip(),
            source: e,
        })?;
        listeners.push((local, l));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (net_tx, net_rx) = mpsc::channel(256);
    let transport = Arc::new(AtomicU8::new(0));
    let mut io = JoinSet::new();
    for (local, s) in &udp {
        io.spawn(read_socket(*local, s.clone(), net_tx.clone()));
    }
    for (local, l) in listeners {
        io.spawn(tcp::serve_passive(l, local, net_tx.clone()));
    }
    let driver = PeerTask {
        rtc,
        sockets: udp,
        tcp: TcpLinks {
            active: sockets.active,
            ..TcpLinks::default()
        },
        io,
        net_tx,
        paths: PathLog::new(sockets.offered),
        transport: transport.clone(),
        tcp_connect_timeout: options.connect_timeout,
        audio_mid,
        opus_pt: None,
        channel,
        channel_blocked: false,
        outbox: VecDeque::new(),
        media_samples: 0,
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
    let task = tokio::spawn(driver.run(cmd_rx, net_rx));
    Ok((
        PeerHandle {
            commands: cmd_tx,
            task,
            transport,
        },
        ev_rx,
    ))
}

struct PeerTask {
    rtc: Rtc,
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp: TcpLinks,
    /// The socket readers, listeners and TCP links; dropping the task aborts them.
    io: JoinSet<()>,
    /// Kept so TCP links can be started later (and the channel never closes under the loop).
    net_tx: mpsc::Sender<NetIn>,
    paths: PathLog,
    /// The transport the connection runs on, once connected ([`PeerHandle::transport`]).
    transport: Arc<AtomicU8>,
    tcp_connect_timeout: Duration,
    audio_mid: Option<Mid>,
    opus_pt: Option<Pt>,
    channel: Option<ChannelId>,
    channel_blocked: bool,
    outbox: VecDeque<String>,
    /// Media time of the next frame, in samples at 48 kHz.
    media_samples: u64,
    frames_dropped: u64,
    liveness: Liveness,
    events: mpsc::Sender<PeerEvent>,
    /// Until when every datagram is dropped ([`super::PeerHandle::pause_traffic`]).
    paused_until: Option<Instant>,
}

async fn read_socket(local: SocketAddr, sock: Arc<UdpSocket>, tx: mpsc::Sender<NetIn>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let msg = match sock.recv_from(&mut buf).await {
            Ok((n, source)) => NetIn::Packet(Datagram {
                at: Instant::now(),
                proto: Protocol::Udp,
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
            Err(e) => NetIn::UdpFailed(e),
        };
        let stop = matches!(msg, NetIn::UdpFailed(_));
        if tx.send(msg).await.is_err() || stop {
            return;
        }
    }
}

impl PeerTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut net: mpsc::Receiver<NetIn>) {
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
                break self.explain(r);
            }
            let wake = timeout.min(self.liveness.next_deadline());
            let step = tokio::select! {
                input = net.recv() => match input {
                    Some(NetIn::Packet(_)) if self.paused(Instant::now()) => Ok(()),
                    Some(input) => self.on_net(input),
                    // Unreachable while the task holds a sender; kept total.
                    None => Err(CloseReason::Failed("every socket of the peer stopped".into())),
                },
                cmd = commands.recv() => match cmd {
                    // Every handle is gone: nobody listens any more.
                    None => return,
                    Some(Command::Audio {
                        frame,
                        samples,
                        marker,
                    }) => self.write_audio(frame, samples, marker),
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
        self.io.abort_all();
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
                Ok(Output::Transmit(t)) => self.transmit(t),
                Ok(Output::Event(e)) => self.on_event(e)?,
                Err(e) => return Err(CloseReason::Failed(e.to_string())),
            }
        }
    }

    /// True while traffic is paused at `at`.
    fn paused(&self, at: Instant) -> bool {
        self.paused_until.is_some_and(|until| at < until)
    }

    fn transmit(&mut self, t: Transmit) {
        if self.paused(Instant::now()) {
            return;
        }
        // str0m sends everything but STUN (first byte 0..=3, RFC 7983) on the pair ICE chose:
        // that is the path in use, and it changes if ICE moves from UDP to TCP mid-call.
        if t.contents.first().is_some_and(|b| *b > 3) {
            let transport = match t.proto {
                Protocol::Tcp => Some(Transport::Tcp),
                _ => Some(Transport::Udp),
            };
            self.transport
                .store(super::transport_code(transport), Ordering::Relaxed);
        }
        match t.proto {
            Protocol::Udp => {
                self.paths.on_sent(Transport::Udp, t.destination);
                self.send_udp(&t);
            }
            Protocol::Tcp => {
                self.paths.on_sent(Transport::Tcp, t.destination);
                self.send_tcp(t);
            }
            other => tracing::debug!(proto = ?other, "str0m asked for an unsupported transport"),
        }
    }

    fn send_udp(&self, t: &Transmit) {
        let Some((_, sock)) = self.sockets.iter().find(|(a, _)| *a == t.source) else {
            tracing::warn!(source = %t.source, "str0m asked to send from an unknown address");
            return;
        };
        // A full socket buffer drops the datagram, as the network could; str0m retransmits.
        if let Err(e) = sock.try_send_to(&t.contents, t.destination) {
            tracing::debug!(destination = %t.destination, error = %e, "UDP send dropped");
        }
    }

    /// Sends over the link for this pair, opening it first from an active candidate.
    fn send_tcp(&mut self, t: Transmit) {
        let key = (t.source, t.destination);
        if self.tcp.failed.contains(&key) {
            return;
        }
        if !self.tcp.open.contains_key(&key) {
            if !self.tcp.active.contains(&t.source) || t.source.is_ipv6() != t.destination.is_ipv6()
            {
                // A passive candidate waits to be connected to: nothing to send on yet.
                return;
            }
            let (tx, rx) = mpsc::channel(tcp::LINK_QUEUE);
            self.paths.on_tcp_connecting(t.destination);
            tracing::debug!(remote = %t.destination, "ICE-TCP connecting");
            self.io.spawn(tcp::connect_active(
                t.source,
                t.destination,
                rx,
                self.net_tx.clone(),
                self.tcp_connect_timeout,
            ));
            self.tcp.open.insert(key, tx);
        }
        if let Some(tx) = self.tcp.open.get(&key)
            && tx.try_send(t.contents.to_vec()).is_err()
        {
            tracing::debug!(destination = %t.destination, "ICE-TCP send dropped (queue full)");
        }
    }

    fn on_net(&mut self, input: NetIn) -> Result<(), CloseReason> {
        match input {
            NetIn::Packet(dg) => self.receive(dg),
            NetIn::UdpFailed(e) => Err(CloseReason::Failed(format!("UDP receive failed: {e}"))),
            NetIn::TcpUp {
                local,
                remote,
                writer,
            } => {
                tracing::debug!(%remote, "ICE-TCP link up");
                self.paths.on_tcp_connected(remote);
                if let Some(w) = writer {
                    self.tcp.open.insert((local, remote), w);
                }
                Ok(())
            }
            NetIn::TcpDown {
                local,
                remote,
                error,
            } => {
                let why = error.unwrap_or_else(|| "closed".into());
                tracing::debug!(%remote, %why, "ICE-TCP link down");
                self.paths.on_tcp_failed(remote, &why);
                self.tcp.open.remove(&(local, remote));
                self.tcp.failed.push((local, remote));
                Ok(())
            }
        }
    }

    /// Replaces a bare "never connected" with what was tried on each transport.
    fn explain(&self, reason: CloseReason) -> CloseReason {
        let never_connected = self.liveness.phase() == Phase::Connecting;
        match reason {
            CloseReason::ConnectTimeout { dtls_up: false, .. } | CloseReason::IceDisconnected
                if never_connected =>
            {
                CloseReason::Unreachable {
                    after: self.liveness.elapsed(Instant::now()),
                    tried: self.paths.summary(),
                }
            }
            other => other,
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
            Event::Connected if self.liveness.on_connected() => {
                let transport = super::transport_from_code(self.transport.load(Ordering::Relaxed));
                tracing::info!(transport = ?transport, "WebRTC connected");
                self.emit(PeerEvent::Connected)?;
            }
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
        let transport = match dg.proto {
            Protocol::Tcp => Transport::Tcp,
            _ => Transport::Udp,
        };
        self.paths.on_received(transport, dg.source);
        let Ok(recv) = Receive::new(dg.proto, dg.source, dg.destination, &dg.data) else {
            tracing::debug!(source = %dg.source, "ignored a datagram that is not STUN/DTLS/RTP");
            return Ok(());
        };
        self.rtc
            .handle_input(Input::Receive(dg.at, recv))
            .map_err(|e| CloseReason::Failed(e.to_string()))
    }

    fn write_audio(
        &mut self,
        frame: Vec<u8>,
        samples: u32,
        marker: bool,
    ) -> Result<(), CloseReason> {
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
        let time = MediaTime::new(self.media_samples, Frequency::FORTY_EIGHT_KHZ);
        self.media_samples += u64::from(samples);
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
