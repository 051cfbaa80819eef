//! The WebRTC peer connection to the Realtime server: one sendrecv Opus audio track plus the
//! `oai-events` data channel, driven by one small tokio task that owns the str0m [`Rtc`], the UDP
//! sockets and the timer.
//!
//! Kiosk side (offerer):
//! ```no_run
//! # async fn demo(post_offer: impl AsyncFn(String) -> String) -> anyhow::Result<()> {
//! use jarvis_realtime::peer::{Peer, PeerEvent, PeerOptions};
//! let (pending, offer_sdp) = Peer::offer(PeerOptions::for_base_url("https://api.openai.com/v1"))?;
//! let answer_sdp = post_offer(offer_sdp).await; // POST {base_url}/realtime/calls
//! let (peer, mut events) = pending.accept(&answer_sdp)?;
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         PeerEvent::ChannelOpen => peer.send_event(r#"{"type":"session.update"}"#.into())?,
//!         PeerEvent::Closed { reason } => { eprintln!("{reason}"); break }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The session is usable once [`PeerEvent::ChannelOpen`] arrives (it always follows
//! [`PeerEvent::Connected`], i.e. DTLS up). Every failure (connect timeout, ICE loss, silence on the
//! wire, remote close, socket error) ends with exactly one [`PeerEvent::Closed`] naming the cause;
//! nothing hangs. Dropping the [`PeerHandle`] stops the task at once without a goodbye on the wire.

mod candidates;
mod liveness;
mod net_in;
mod paths;
mod task;
mod tcp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::TcpType;
use str0m::{Candidate, Rtc};
use tokio::sync::mpsc;

pub use candidates::{InterfaceAddr, interface_addrs, is_loopback_base_url, select_candidate_ips};
pub use paths::Transport;

/// Label of the data channel that carries the Realtime JSON events.
pub const EVENTS_CHANNEL: &str = "oai-events";

/// How many commands (audio frames, events) may wait for the I/O task: 1 s of 10 ms frames plus
/// slack.
const COMMAND_QUEUE: usize = 128;

/// How many events may wait for the consumer before audio frames get dropped (~20 s of audio).
const EVENT_QUEUE: usize = 1024;

/// How the peer picks its addresses and decides that the connection failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerOptions {
    /// Host candidate IPs to offer. Empty: discover them from the interfaces (up, non-loopback,
    /// non-link-local IPv4 and global IPv6), plus 127.0.0.1 when `include_loopback` is set.
    pub local_ips: Vec<IpAddr>,
    /// Also offer 127.0.0.1 (the Realtime base URL is a local emulator or demo server).
    pub include_loopback: bool,
    /// From applying the answer to the `oai-events` channel being open.
    pub connect_timeout: Duration,
    /// Once open: how long without any inbound packet (RTP, RTCP, STUN keepalives arrive every
    /// few seconds) before the connection counts as dropped.
    pub idle_timeout: Duration,
    /// How long ICE may stay `Disconnected` before the connection counts as dropped
    /// (`openai.ice_disconnect_grace_s`): a brief network hiccup does not end the call.
    pub ice_disconnect_grace: Duration,
    /// Offer UDP host candidates (one socket per IP). Off only for an answerer that plays a
    /// server whose UDP is unreachable (the emulator's `block-udp` fault).
    pub udp: bool,
    /// Offerer: when the answer has TCP candidates, add an active ICE-TCP candidate per local IP
    /// and connect to them (UDP still wins on priority when it works).
    pub tcp_active: bool,
    /// Answerer: listen for ICE-TCP on each IP and offer a passive TCP candidate, as OpenAI's
    /// servers do on port 443.
    pub tcp_passive: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            local_ips: Vec::new(),
            include_loopback: false,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            ice_disconnect_grace: liveness::DEFAULT_ICE_GRACE,
            udp: true,
            tcp_active: true,
            tcp_passive: false,
        }
    }
}

impl PeerOptions {
    /// Defaults for talking to `base_url` (`openai.base_url`): a loopback host adds 127.0.0.1;
    /// the IPv6 loopback `[::1]` offers `::1` alone.
    pub fn for_base_url(base_url: &str) -> Self {
        if candidates::is_ipv6_loopback_base_url(base_url) {
            return Self {
                local_ips: vec![IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)],
                ..Self::default()
            };
        }
        Self {
            include_loopback: is_loopback_base_url(base_url),
            ..Self::default()
        }
    }

    /// Only 127.0.0.1: the emulator's answering side and loopback tests.
    pub fn loopback_only() -> Self {
        Self {
            local_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ..Self::default()
        }
    }

    fn candidate_ips(&self) -> Result<Vec<IpAddr>, PeerError> {
        let ips = if self.local_ips.is_empty() {
            let ifaces = interface_addrs().map_err(PeerError::Interfaces)?;
            select_candidate_ips(&ifaces, self.include_loopback)
        } else {
            self.local_ips.clone()
        };
        if ips.is_empty() {
            return Err(PeerError::NoLocalAddress);
        }
        Ok(ips)
    }
}

/// What the peer reports to its owner, in order; [`PeerEvent::Closed`] is always the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// ICE and DTLS are up; media can flow. The data channel is not open yet.
    Connected,
    /// The `oai-events` data channel is open: the session is ready for events.
    ChannelOpen,
    /// One text message from the data channel (normally one JSON event; passed on unparsed, so
    /// malformed input never kills the peer).
    Message(String),
    /// One Opus frame from the remote audio track.
    Audio(AudioFrame),
    /// The connection ended; `reason` says why.
    Closed {
        /// Why it ended.
        reason: CloseReason,
    },
}

/// One received Opus frame (str0m depayloads and orders by sequence number; no jitter buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Extended RTP sequence number of the frame's first packet.
    pub seq: u64,
    /// RTP timestamp at 48 kHz.
    pub rtp_time: u64,
    /// False when packets were lost just before this frame (run Opus PLC/FEC).
    pub contiguous: bool,
    /// The RTP marker bit (start of a talkspurt for audio). Pion's sample writer sets it on
    /// every Opus packet, so it must not be read as "speech begins here".
    pub marker: bool,
    /// The Opus frame.
    pub payload: Vec<u8>,
}

/// Why a peer connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// [`PeerHandle::close`] was called.
    #[error("closed by the kiosk")]
    Local,
    /// The server closed DTLS/SCTP or the events channel.
    #[error("the Realtime server closed the connection")]
    Remote,
    /// The connection did not get ready in time.
    #[error(
        "WebRTC connect timed out after {after:?} ({}); check the gym's firewall (README \
         \"Network requirements\": UDP 3478 or TCP 443 to the media servers)",
        if *dtls_up { "DTLS was up but the oai-events channel never opened" } else { "ICE/DTLS never completed" }
    )]
    ConnectTimeout {
        /// The configured connect timeout.
        after: Duration,
        /// Whether DTLS had come up.
        dtls_up: bool,
    },
    /// ICE never found a working path: every transport the server offered failed.
    #[error(
        "no network path to the Realtime server after {}: {tried}; allow outbound UDP to the \
         server (OpenAI: UDP 3478) or at least TCP 443, see README \"Network requirements\"",
        fmt_ms(*after)
    )]
    Unreachable {
        /// How long the peer tried.
        after: Duration,
        /// What was tried and how each failed ([`Transport`] by remote address).
        tried: String,
    },
    /// ICE lost the path to the server.
    #[error(
        "ICE disconnected longer than openai.ice_disconnect_grace_s: the network path to the \
         Realtime server was lost"
    )]
    IceDisconnected,
    /// No packet arrived for too long: the connection dropped mid-session.
    #[error(
        "no packets from the Realtime server for {silent_for:?}: the connection dropped (network cut \
         or server gone)"
    )]
    Idle {
        /// How long the wire was silent.
        silent_for: Duration,
    },
    /// The WebRTC stack or a socket failed.
    #[error("WebRTC failure: {0}")]
    Failed(String),
}

fn fmt_ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Errors from setting up a peer (before the I/O task runs) or from a handle whose task ended.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No interface can carry WebRTC.
    #[error(
        "no usable local address for WebRTC: every interface is down, loopback or link-local \
         (IPv6 needs a global address); connect the kiosk to the network"
    )]
    NoLocalAddress,
    /// `getifaddrs` failed.
    #[error("cannot list the network interfaces: {0}")]
    Interfaces(std::io::Error),
    /// A UDP socket could not be bound.
    #[error("cannot bind a UDP socket on {ip}: {source}")]
    Bind {
        /// The address that failed.
        ip: IpAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// str0m refused to build the offer or answer.
    #[error("WebRTC negotiation failed: {0}")]
    Negotiation(String),
    /// The remote SDP does not parse or does not fit our offer.
    #[error("the remote SDP is invalid: {0}")]
    BadSdp(String),
    /// The I/O task has ended (see the [`PeerEvent::Closed`] reason).
    #[error("the peer connection is closed")]
    Closed,
    /// The command queue is full: the I/O task is not keeping up.
    #[error("the peer connection's send queue is full (the I/O task is stalled)")]
    Busy,
}

/// Entry points that create peers.
#[derive(Debug)]
pub struct Peer;

/// An offer that waits for the server's answer. Holds the bound sockets and the str0m state.
pub struct PendingPeer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    sockets: Sockets,
    ips: Vec<IpAddr>,
    audio_mid: Mid,
    channel: ChannelId,
    options: PeerOptions,
}

impl std::fmt::Debug for PendingPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPeer")
            .field("sockets", &self.sockets)
            .field("audio_mid", &self.audio_mid)
            .finish_non_exhaustive()
    }
}

/// The receiving end of a peer's events.
pub type PeerEvents = mpsc::Receiver<PeerEvent>;

/// Commands from the handle to the I/O task.
#[derive(Debug)]
enum Command {
    Audio {
        frame: Vec<u8>,
        samples: u32,
        marker: bool,
    },
    Event(String),
    PauseTraffic(Duration),
    Close,
}

/// Control of a running peer. Dropping it stops the I/O task at once.
#[derive(Debug)]
pub struct PeerHandle {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
    transport: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

fn transport_from_code(code: u8) -> Option<Transport> {
    match code {
        1 => Some(Transport::Udp),
        2 => Some(Transport::Tcp),
        _ => None,
    }
}

fn transport_code(t: Option<Transport>) -> u8 {
    match t {
        None => 0,
        Some(Transport::Udp) => 1,
        Some(Transport::Tcp) => 2,
    }
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PeerHandle {
    /// Queues one Opus frame covering `samples` at the 48 kHz RTP clock (480 for the kiosk's
    /// 10 ms frames, 960 for 20 ms) for the audio track; the media time of the next frame
    /// advances by as much. Frames sent before DTLS is up are dropped, as str0m would drop them.
    /// The caller paces frames.
    pub fn send_audio(&self, opus_frame: Vec<u8>, samples: u32) -> Result<(), PeerError> {
        self.push(Command::Audio {
            frame: opus_frame,
            samples,
            marker: false,
        })
    }

    /// Like [`PeerHandle::send_audio`] with the RTP marker bit set, as Pion's sample writer
    /// sends every packet (the emulator's continuous-audio mode imitates it).
    pub fn send_audio_marked(&self, opus_frame: Vec<u8>, samples: u32) -> Result<(), PeerError> {
        self.push(Command::Audio {
            frame: opus_frame,
            samples,
            marker: true,
        })
    }

    /// Queues one text message (a JSON client event) for the `oai-events` channel. Messages
    /// queued before the channel opens are sent, in order, once it does.
    pub fn send_event(&self, json: String) -> Result<(), PeerError> {
        self.push(Command::Event(json))
    }

    /// Drops every datagram in and out for `span`, as a network outage would; str0m's timers
    /// keep running, so ICE sees the path fail and (if it comes back in time) recover. The
    /// emulator's `pause-after-turn` fault uses it to test the kiosk's ICE grace period.
    pub fn pause_traffic(&self, span: Duration) -> Result<(), PeerError> {
        self.push(Command::PauseTraffic(span))
    }

    /// Starts a graceful close (DTLS close_notify, SCTP shutdown); the events end with
    /// `Closed { reason: Local }`.
    pub fn close(&self) -> Result<(), PeerError> {
        self.push(Command::Close)
    }

    /// The transport the connection runs on (UDP, or TCP when UDP failed), from the path str0m
    /// sends DTLS and media on; `None` until ICE has chosen one.
    pub fn transport(&self) -> Option<Transport> {
        transport_from_code(self.transport.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// True once the I/O task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    fn push(&self, cmd: Command) -> Result<(), PeerError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PeerError::Busy,
            mpsc::error::TrySendError::Closed(_) => PeerError::Closed,
        })
    }
}

/// One DTLS certificate per process: generating it costs tens of milliseconds, which would
/// otherwise sit between the badge scan and the greeting. Browsers reuse theirs the same way.
fn dtls_cert() -> Result<DtlsCert, PeerError> {
    static CERT: OnceLock<Option<DtlsCert>> = OnceLock::new();
    CERT.get_or_init(|| {
        str0m::crypto::from_feature_flags()
            .dtls_provider
            .generate_certificate()
    })
    .clone()
    .ok_or_else(|| {
        PeerError::Negotiation("the crypto provider cannot make a DTLS certificate".into())
    })
}

fn new_rtc(now: Instant) -> Result<Rtc, PeerError> {
    Ok(Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .set_dtls_cert(dtls_cert()?)
        .build(now))
}

/// The sockets a peer owns, handed to its I/O task.
#[derive(Debug, Default)]
struct Sockets {
    /// One per UDP host candidate.
    udp: Vec<std::net::UdpSocket>,
    /// One per passive TCP candidate (answerer).
    listeners: Vec<std::net::TcpListener>,
    /// The addresses of the active TCP candidates (offerer; `ip:9`, no socket until str0m
    /// sends on them).
    active: Vec<SocketAddr>,
    /// The remote candidates of the answer, for naming what failed.
    offered: Vec<(Transport, SocketAddr)>,
}

fn bind_candidates(
    rtc: &mut Rtc,
    ips: &[IpAddr],
    options: &PeerOptions,
) -> Result<Sockets, PeerError> {
    let mut sockets = Sockets::default();
    let mut skipped = None;
    for &ip in ips {
        let bind = |e| PeerError::Bind { ip, source: e };
        if options.udp {
            let sock = match bind_udp(ip) {
                Ok(s) => s,
                // An IPv6 address can be unusable for a while (duplicate address detection):
                // offer the others rather than fail the session.
                Err(e) if ip.is_ipv6() && ips.len() > 1 => {
                    tracing::warn!(%ip, error = %e, "IPv6 candidate skipped: cannot bind");
                    skipped = Some(bind(e));
                    continue;
                }
                Err(e) => return Err(bind(e)),
            };
            let addr = sock.local_addr().map_err(bind)?;
            let cand = Candidate::host(addr, "udp")
                .map_err(|e| PeerError::Negotiation(format!("host candidate {addr}: {e}")))?;
            rtc.add_local_candidate(cand);
            sockets.udp.push(sock);
        }
        if options.tcp_passive {
            let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).map_err(bind)?;
            listener.set_nonblocking(true).map_err(bind)?;
            let addr = listener.local_addr().map_err(bind)?;
            let cand = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| PeerError::Negotiation(format!("TCP candidate {addr}: {e}")))?;
            rtc.add_local_candidate(cand);
            sockets.listeners.push(listener);
        }
    }
    match skipped {
        Some(e) if sockets.udp.is_empty() && sockets.listeners.is_empty() => Err(e),
        _ => Ok(sockets),
    }
}

fn bind_udp(ip: IpAddr) -> std::io::Result<std::net::UdpSocket> {
    let sock = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Adds an active ICE-TCP candidate per local IP of a family the answer offers TCP on.
fn add_active_tcp(
    rtc: &mut Rtc,
    ips: &[IpAddr],
    offered: &[(Transport, SocketAddr)],
) -> Result<Vec<SocketAddr>, PeerError> {
    let mut active = Vec::new();
    for &ip in ips {
        let wanted = offered
            .iter()
            .any(|(t, a)| *t == Transport::Tcp && a.is_ipv6() == ip.is_ipv6());
        if !wanted {
            continue;
        }
        let addr = SocketAddr::new(ip, tcp::ACTIVE_PORT);
        let cand = Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(TcpType::Active)
            .build()
            .map_err(|e| PeerError::Negotiation(format!("TCP candidate {addr}: {e}")))?;
        rtc.add_local_candidate(cand);
        active.push(addr);
    }
    Ok(active)
}

impl Peer {
    /// Creates the kiosk's offer: binds one UDP socket per candidate IP, adds a sendrecv Opus
    /// audio media and the `oai-events` channel. Returns the pending peer and the SDP offer to
    /// POST to `{base_url}/realtime/calls`. Does not need a runtime.
    pub fn offer(options: PeerOptions) -> Result<(PendingPeer, String), PeerError> {
        let ips = options.candidate_ips()?;
        let mut rtc = new_rtc(Instant::now())?;
        let sockets = bind_candidates(&mut rtc, &ips, &options)?;
        let mut api = rtc.sdp_api();
        let audio_mid = api.add_media(
            MediaKind::Audio,
            Direction::SendRecv,
            Some("jarvis-kiosk".into()),
            Some("mic".into()),
            None,
        );
        let channel = api.add_channel(EVENTS_CHANNEL.into());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| PeerError::Negotiation("str0m produced no offer".into()))?;
        let sdp = offer.to_sdp_string();
        Ok((
            PendingPeer {
                rtc,
                pending,
                sockets,
                ips,
                audio_mid,
                channel,
                options,
            },
            sdp,
        ))
    }

    /// Answers a remote offer (the emulator's side): binds the candidate sockets, accepts the
    /// offer and spawns the I/O task. Must run inside a tokio runtime. Returns the handle, its
    /// events and the SDP answer.
    pub fn answer(
        offer_sdp: &str,
        options: PeerOptions,
    ) -> Result<(PeerHandle, PeerEvents, String), PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::BadSdp(e.to_string()))?;
        let ips = options.candidate_ips()?;
        let mut rtc = new_rtc(Instant::now())?;
        let sockets = bind_candidates(&mut rtc, &ips, &options)?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::BadSdp(e.to_string()))?;
        let (handle, events) = task::spawn(rtc, sockets, None, None, &options)?;
        Ok((handle, events, answer.to_sdp_string()))
    }
}

impl PendingPeer {
    /// Applies the server's SDP answer and spawns the I/O task (needs a tokio runtime). The
    /// connect timeout starts now.
    pub fn accept(self, answer_sdp: &str) -> Result<(PeerHandle, PeerEvents), PeerError> {
        let PendingPeer {
            mut rtc,
            pending,
            mut sockets,
            ips,
            audio_mid,
            channel,
            options,
        } = self;
        let answer =
            SdpAnswer::from_sdp_string(answer_sdp).map_err(|e| PeerError::BadSdp(e.to_string()))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| PeerError::BadSdp(e.to_string()))?;
        sockets.offered = paths::sdp_candidates(answer_sdp);
        if options.tcp_active {
            sockets.active = add_active_tcp(&mut rtc, &ips, &sockets.offered)?;
        }
        task::spawn(rtc, sockets, Some(audio_mid), Some(channel), &options)
    }

    /// Replaces the connect timeout (from applying the answer): the caller's own deadline minus
    /// what the HTTP calls already took, so the peer, which can say what it tried, gives up
    /// first.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// The local addresses offered as host candidates.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }
}

/// Creates the process's DTLS certificate now, so the first session does not pay for it.
pub fn warm_up() -> Result<(), PeerError> {
    dtls_cert().map(drop)
}
