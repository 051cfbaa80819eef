//! ICE-TCP (RFC 6544): str0m decides which packets go over TCP; this module owns the streams.
//! Each packet travels with the 16-bit big-endian length prefix of RFC 4571 ([`frame`],
//! [`Deframer`], pure and tested without a network). The kiosk opens the connection (an active
//! candidate, `tcptype active`, port 9 as RFC 6544 asks); the emulator accepts them (a passive
//! candidate on a listening socket).
//!
//! str0m knows a TCP link by its candidate addresses: packets read from a link are handed to it
//! with the remote address as source and the local *candidate* address as destination (for an
//! active candidate that is `ip:9`, not the ephemeral port the kernel picked).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::net_in::{Datagram, NetIn};
use str0m::net::Protocol;

/// The port an active ICE-TCP candidate announces (RFC 6544 §4.5: the discard port).
pub const ACTIVE_PORT: u16 = 9;

/// Frames waiting for one link's writer; beyond this they are dropped, as a full UDP buffer
/// would drop them (str0m retransmits what matters).
pub const LINK_QUEUE: usize = 256;

/// `payload` with its RFC 4571 length prefix; `None` when it does not fit in 16 bits.
pub fn frame(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Splits a TCP byte stream back into the packets [`frame`] made, whatever the read sizes.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete packet, if one has arrived.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        let header: [u8; 2] = self.buf.get(..2)?.try_into().ok()?;
        let len = usize::from(u16::from_be_bytes(header));
        if self.buf.len() < 2 + len {
            return None;
        }
        let packet = self.buf[2..2 + len].to_vec();
        self.buf.drain(..2 + len);
        Some(packet)
    }
}

/// How a connect attempt failed, in the words a technician searches for.
pub fn describe_connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "no answer (timed out)".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        std::io::ErrorKind::PermissionDenied => "not permitted by the local firewall".into(),
        _ => e.to_string(),
    }
}

/// Opens an active link to `remote` and carries it until either side ends. Reports
/// [`NetIn::TcpUp`] once connected and [`NetIn::TcpDown`] when it fails or ends.
pub async fn connect_active(
    local: SocketAddr,
    remote: SocketAddr,
    outgoing: mpsc::Receiver<Vec<u8>>,
    net: mpsc::Sender<NetIn>,
    connect_timeout: Duration,
) {
    let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(remote)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let error = Some(describe_connect_error(&e));
            let _ = net
                .send(NetIn::TcpDown {
                    local,
                    remote,
                    error,
                })
                .await;
            return;
        }
        Err(_) => {
            let error = Some(format!(
                "no answer to the TCP connect within {} s",
                connect_timeout.as_secs_f32()
            ));
            let _ = net
                .send(NetIn::TcpDown {
                    local,
                    remote,
                    error,
                })
                .await;
            return;
        }
    };
    if net
        .send(NetIn::TcpUp {
            local,
            remote,
            writer: None,
        })
        .await
        .is_err()
    {
        return;
    }
    carry(stream, local, remote, outgoing, net).await;
}

/// Accepts links on a passive candidate's listener until the peer ends; each accepted link is
/// announced with its writer ([`NetIn::TcpUp`]) and carried by a task of its own.
pub async fn serve_passive(listener: TcpListener, local: SocketAddr, net: mpsc::Sender<NetIn>) {
    let mut links = JoinSet::new();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, %local, "ICE-TCP accept failed");
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let up = NetIn::TcpUp {
            local,
            remote,
            writer: Some(tx),
        };
        if net.send(up).await.is_err() {
            return;
        }
        links.spawn(carry(stream, local, remote, rx, net.clone()));
        while links.try_join_next().is_some() {}
    }
}

/// Writes queued packets framed, reads framed packets into the peer, until either side ends.
async fn carry(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    net: mpsc::Sender<NetIn>,
) {
    // Small packets (STUN, DTLS) must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let write = async {
        while let Some(packet) = outgoing.recv().await {
            let Some(framed) = frame(&packet) else {
                continue;
            };
            wr.write_all(&framed).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let read = async {
        let mut deframer = Deframer::default();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            deframer.push(&buf[..n]);
            while let Some(data) = deframer.next_frame() {
                let dg = Datagram {
                    at: Instant::now(),
                    proto: Protocol::Tcp,
                    source: remote,
                    destination: local,
                    data,
                };
                if net.send(NetIn::Packet(dg)).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    let ended = tokio::select! {
        r = write => r,
        r = read => r,
    };
    let error = match ended {
        Ok(()) => Some("closed by the other side".to_string()),
        Err(e) => Some(describe_connect_error(&e)),
    };
    let _ = net
        .send(NetIn::TcpDown {
            local,
            remote,
            error,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_FRAME: usize = u16::MAX as usize;

    #[test]
    fn frames_carry_a_big_endian_length() {
        assert_eq!(frame(b"abc"), Some(vec![0, 3, b'a', b'b', b'c']));
        assert_eq!(frame(b""), Some(vec![0, 0]));
        assert_eq!(
            frame(&vec![0u8; MAX_FRAME]).map(|f| f.len()),
            Some(MAX_FRAME + 2)
        );
        assert_eq!(frame(&vec![0u8; MAX_FRAME + 1]), None);
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest() {
        let mut d = Deframer::default();
        d.push(&[0]);
        assert_eq!(d.next_frame(), None);
        d.push(&[2, b'h']);
        assert_eq!(d.next_frame(), None);
        d.push(&[b'i', 0, 0, 0]);
        assert_eq!(d.next_frame(), Some(b"hi".to_vec()));
        assert_eq!(d.next_frame(), Some(Vec::new()));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn refused_and_timed_out_connects_read_plainly() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_connect_error(&refused), "connection refused");
        let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert!(describe_connect_error(&timeout).contains("no answer"));
    }

    proptest! {
        #[test]
        fn any_split_of_the_stream_gives_back_the_packets(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..12),
            cuts in proptest::collection::vec(1usize..64, 1..40),
        ) {
            let stream: Vec<u8> = packets.iter().flat_map(|p| frame(p).unwrap_or_default()).collect();
            let mut d = Deframer::default();
            let mut out = Vec::new();
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at >= stream.len() {
                    break;
                }
                let end = (at + cut).min(stream.len());
                d.push(&stream[at..end]);
                at = end;
                while let Some(p) = d.next_frame() {
                    out.push(p);
                }
            }
            prop_assert_eq!(out, packets);
        }
    }
}
