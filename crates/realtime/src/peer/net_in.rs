//! What the socket readers (UDP sockets, ICE-TCP links) hand the peer's I/O task.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::Protocol;
use tokio::sync::mpsc;

/// One packet read from a UDP socket or a TCP link (deframed).
pub(super) struct Datagram {
    pub(super) at: Instant,
    pub(super) proto: Protocol,
    pub(super) source: SocketAddr,
    pub(super) destination: SocketAddr,
    pub(super) data: Vec<u8>,
}

/// What the socket tasks report to the I/O task.
pub(super) enum NetIn {
    /// A packet arrived.
    Packet(Datagram),
    /// A UDP socket failed.
    UdpFailed(std::io::Error),
    /// A TCP link between `local` (the candidate address) and `remote` is up; an accepted link
    /// brings its writer, a connected one already has it.
    TcpUp {
        local: SocketAddr,
        remote: SocketAddr,
        writer: Option<mpsc::Sender<Vec<u8>>>,
    },
    /// A TCP link failed to connect or ended.
    TcpDown {
        local: SocketAddr,
        remote: SocketAddr,
        error: Option<String>,
    },
}
