//! Connections without a client certificate, as a rogue peer makes them (real TLS, then the
//! HTTP/2 preface, then nothing): bounded per source address and in total, closed when idle,
//! and never able to lock agents and operators out, even with a small open file limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lab_tests::{stderr, wait_until, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The HTTP/2 client preface followed by an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn rogue_tls(c: &Cluster) -> Arc<rustls::ClientConfig> {
    let ca = std::fs::read_to_string(c.coord.dir.join("ca.crt")).unwrap();
    lab_proto::tls::client_config(&ca, None).unwrap()
}

/// A TLS connection without a client certificate from `source` that sent the HTTP/2 preface and
/// got the server's SETTINGS back; `None` when the coordinator closed it instead.
async fn open_rogue(
    addr: SocketAddr,
    source: IpAddr,
    tls: Arc<rustls::ClientConfig>,
) -> Option<TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    stream.write_all(PREFACE).await.ok()?;
    let mut header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut header))
        .await
        .ok()?
        .ok()?;
    (header[3] == 4).then_some(stream)
}

/// Opens `per_source` rogue connections at once from each of `sources` in turn; returns those
/// kept open.
async fn open_many(
    c: &Cluster,
    sources: std::ops::RangeInclusive<u8>,
    per_source: usize,
) -> Vec<TlsStream<TcpStream>> {
    let addr: SocketAddr = c.coord.addr.parse().unwrap();
    let tls = rogue_tls(c);
    let mut kept = Vec::new();
    for last in sources {
        let source = IpAddr::from([127, 0, 0, last]);
        let opening: Vec<_> = (0..per_source)
            .map(|_| tokio::spawn(open_rogue(addr, source, tls.clone())))
            .collect();
        for o in opening {
            kept.extend(o.await.unwrap());
        }
    }
    kept
}

/// Reads until the coordinator closes the connection.
async fn until_closed(mut s: TlsStream<TcpStream>) {
    let mut buf = [0u8; 512];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn cert_less_connections_cannot_lock_out_agents_and_operators() {
    // 256 open files in all, 300 rogue connections from 15 addresses: without the limits the
    // coordinator runs out of file descriptors and refuses everyone.
    let mut c = Cluster::builder()
        .agents(1)
        .coordinator_nofile(256)
        .coordinator_args(&["--unauth-idle-timeout", "120s"])
        .start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kept = rt.block_on(open_many(&c, 2..=16, 20));

    // With all of them open, the operator and a restarting agent still get in.
    let out = c.labctl(&["nodes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.agents[0].stop(false);
    c.wait_online("n1", false, Duration::from_secs(20));
    c.agents[0].start();
    c.wait_online("n1", true, Duration::from_secs(30));

    // A quarter of 256 for connections without a certificate, at most 16 per source: the
    // first four sources fill it.
    assert_eq!(kept.len(), 64);

    let metrics = c.coord.metrics();
    let per_source = metric(
        &metrics,
        "labfleet_connections_refused_total{reason=\"per_source\"}",
    );
    let total = metric(
        &metrics,
        "labfleet_connections_refused_total{reason=\"total\"}",
    );
    // The first four sources lost 4 each to the per-source limit, later ones everything to the
    // total.
    assert_eq!((per_source, total), (4 * 4, 300 - 64 - 16), "{metrics}");
    let log = std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap();
    assert!(
        log.contains("refused a connection without a client certificate"),
        "{log}"
    );
    drop(kept);
}

#[test]
fn idle_cert_less_connections_are_closed() {
    let c = Cluster::builder()
        .agents(0)
        .coordinator_args(&["--unauth-idle-timeout", "2s"])
        .start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kept = open_many(&c, 2..=2, 10).await;
        assert_eq!(kept.len(), 10);
        // Without the idle limit they would stay open until the 30 s keepalive ping.
        let all = futures_join(kept.into_iter().map(until_closed).collect());
        tokio::time::timeout(Duration::from_secs(15), all)
            .await
            .expect("idle connections without a certificate are closed within seconds");
    });
    // An enrollment on such a connection still works.
    let token = c.token(&[]);
    let agent = c.new_agent("late");
    let out = agent.enroll_output(&c.coord.addr, &token);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(
        || {
            metric(
                &c.coord.metrics(),
                "labfleet_unauthenticated_connections_closed_total",
            ) >= 10
        },
        Duration::from_secs(5),
        "closed connections counted",
    );
}

/// Waits for every future (no extra dependency for one join).
async fn futures_join(futs: Vec<impl std::future::Future<Output = ()> + Send + 'static>) {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}
