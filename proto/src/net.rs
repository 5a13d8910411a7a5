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
}
