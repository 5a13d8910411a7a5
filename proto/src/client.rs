//! Opening a gRPC channel to the coordinator over our own rustls config, with the shared limits.
//!
//! All labfleet clients (agent, labctl, tests, load generator) dial through [`connect`], so TLS,
//! timeouts, keep-alive and message limits are the same everywhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::limits::{MAX_MESSAGE_BYTES, MAX_OPERATOR_RESPONSE_BYTES};
use crate::v1::agent_service_client::AgentServiceClient;
use crate::v1::operator_service_client::OperatorServiceClient;

/// How long a TCP connect plus TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A coordinator address that cannot be dialled.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Not HOST:PORT.
    #[error("invalid coordinator address '{0}': expected HOST:PORT, e.g. 10.0.0.5:7443")]
    BadAddress(String),
    /// TCP, TLS or HTTP/2 failed.
    #[error("cannot connect to coordinator at {addr}: {source}")]
    Transport {
        /// The address dialled.
        addr: String,
        /// What failed.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Options for [`connect`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Local source address to bind (for many connections from one host, e.g. 127.0.0.x).
    pub bind: Option<IpAddr>,
}

/// Splits `HOST:PORT` (IPv6 in brackets) into host and port.
pub fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let uri: http::Uri = format!("http://{addr}").parse().ok()?;
    if uri.path() != "/" || uri.query().is_some() {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), uri.port_u16()?))
}

/// Dials the coordinator at `addr` (HOST:PORT) with `tls` and returns a ready channel.
pub async fn connect(
    addr: &str,
    tls: Arc<ClientConfig>,
    options: &ConnectOptions,
) -> Result<Channel, ConnectError> {
    let (host, port) =
        split_host_port(addr).ok_or_else(|| ConnectError::BadAddress(addr.to_owned()))?;
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| ConnectError::BadAddress(addr.to_owned()))?;
    let bind = options.bind;
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let tls = tls.clone();
        let host = host.clone();
        let server_name = server_name.clone();
        async move {
            let tcp = dial(&host, port, bind).await?;
            let stream = TlsConnector::from(tls).connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ConnectError::BadAddress(addr.to_owned()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|source| ConnectError::Transport {
            addr: addr.to_owned(),
            source,
        })
}

/// Opens a TCP connection to `host:port` (from `bind` when given) with Nagle's algorithm off.
async fn dial(host: &str, port: u16, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let mut tcp = dial_tcp(host, port, bind).await?;
    crate::net::set_nodelay(&mut tcp);
    Ok(tcp)
}

async fn dial_tcp(host: &str, port: u16, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = bind else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last_err = None;
    for remote in tokio::net::lookup_host((host, port)).await? {
        let socket = if remote.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(remote).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other(format!("{host} did not resolve"))))
}

/// The agent-side client with the shared message limits.
pub fn agent_client(channel: Channel) -> AgentServiceClient<Channel> {
    AgentServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The operator-side client with the shared message limits (responses up to
/// [`MAX_OPERATOR_RESPONSE_BYTES`]: node lists and jobs of large fleets).
pub fn operator_client(channel: Channel) -> OperatorServiceClient<Channel> {
    OperatorServiceClient::new(channel)
        .max_decoding_message_size(MAX_OPERATOR_RESPONSE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("10.0.0.5:7443"),
            Some(("10.0.0.5".into(), 7443))
        );
        assert_eq!(split_host_port("[::1]:7443"), Some(("::1".into(), 7443)));
        assert_eq!(
            split_host_port("lab.local:1"),
            Some(("lab.local".into(), 1))
        );
        assert_eq!(split_host_port("lab.local"), None);
        assert_eq!(split_host_port("lab.local:99999"), None);
        assert_eq!(split_host_port("a:1/x"), None);
    }

    #[tokio::test]
    async fn a_dialled_connection_has_nagle_off_with_and_without_a_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for bind in [None, Some(IpAddr::from([127, 0, 0, 1]))] {
            let tcp = dial("127.0.0.1", port, bind).await.unwrap();
            assert!(tcp.nodelay().unwrap(), "TCP_NODELAY is off (bind {bind:?})");
            let (accepted, _) = listener.accept().await.unwrap();
            drop(accepted);
        }
    }
}
