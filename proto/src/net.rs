//! TCP connections as every labfleet peer opens them: Nagle's algorithm off (`TCP_NODELAY`) on
//! every connection the project accepts or dials.
//!
//! gRPC over HTTP/2 and the small HTTP/1.1 servers (metrics, `labctl ui`) answer with several
//! small writes; with Nagle on, a write that follows one the peer has not acknowledged yet waits
//! for that acknowledgement, which the peer's delayed ACK holds back up to 40 ms on Linux. Every
//! accepting or dialling path goes through [`accept`], [`set_nodelay`] or
//! [`crate::client::connect`], which use them.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Turns Nagle's algorithm off on `tcp`. A failure (the connection is already gone) is ignored:
/// the connection still works, at worst slower. Its signature fits `axum::serve`'s
/// `ListenerExt::tap_io`, so HTTP listeners use it as `listener.tap_io(set_nodelay)`.
pub fn set_nodelay(tcp: &mut TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// Connections the kernel queues for a gRPC listener before it accepts them (capped by
/// `net.core.somaxconn`). Tokio's default of 1024 drops the SYNs of a larger connect storm,
/// and a dropped SYN is retried only after a second.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a gRPC listener on `addr` with a listen queue of [`LISTEN_BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts the next connection on `listener`, with Nagle's algorithm off.
pub async fn accept(listener: &TcpListener) -> std::io::Result<(TcpStream, SocketAddr)> {
    let (mut tcp, peer) = listener.accept().await?;
    set_nodelay(&mut tcp);
    Ok((tcp, peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_accepted_connection_has_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dialled = TcpStream::connect(addr).await.unwrap();
        // A fresh socket starts with Nagle on, so the check below means something.
        assert!(!dialled.nodelay().unwrap());
        let (accepted, peer) = accept(&listener).await.unwrap();
        assert_eq!(peer, dialled.local_addr().unwrap());
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is off");
    }

    #[tokio::test]
    async fn listen_binds_where_asked_and_refuses_a_taken_port() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        let dialled = TcpStream::connect(addr).await.unwrap();
        let (_accepted, peer) = accept(&listener).await.unwrap();
        assert_eq!(peer, dialled.local_addr().unwrap());
        assert!(listen(addr).is_err(), "a second listener on a port in use");
    }
}
