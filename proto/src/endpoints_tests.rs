//! Tests of [`super`]: list parsing, round order, and real dials over loopback TLS to tiny gRPC
//! servers that answer every call with a fixed status (a standby naming its leader, a leader).

use std::convert::Infallible;
use std::task::{Context, Poll};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::standby::standby_status;
use crate::tls::{client_config, server_config};

#[test]
fn lists_parse_trimmed_without_repeats() {
    assert_eq!(
        parse_list(" a:1, b:2 ,a:1,,[::1]:3").unwrap(),
        vec!["a:1", "b:2", "[::1]:3"]
    );
    assert_eq!(parse_list(" , "), Err(EndpointsError::Empty));
    assert_eq!(
        parse_list("a:1,b"),
        Err(EndpointsError::BadAddress("b".into()))
    );
    assert!(Endpoints::new(Vec::<String>::new()).is_err());
}

#[test]
fn the_last_good_address_goes_first() {
    let mut e = Endpoints::new(["a:1", "b:2", "c:3"]).unwrap();
    assert_eq!(e.order(), vec!["a:1", "b:2", "c:3"]);
    e.set_last_good("b:2");
    assert_eq!(e.order(), vec!["b:2", "a:1", "c:3"]);
    // A leader named by a standby, outside the list, is remembered too.
    e.set_last_good("d:4");
    assert_eq!(e.order(), vec!["d:4", "a:1", "b:2", "c:3"]);
}

#[test]
fn all_failed_names_every_address_and_why() {
    let e = AllFailed(vec![
        Tried {
            addr: "a:7443".into(),
            why: Why::Transport("connection refused".into()),
        },
        Tried {
            addr: "b:7443".into(),
            why: Why::Standby(Some("c:7443".into())),
        },
        Tried {
            addr: "c:7443".into(),
            why: Why::Standby(None),
        },
    ]);
    assert_eq!(
        e.to_string(),
        "no coordinator answered: a:7443: connection refused; b:7443: standby, leader is c:7443; \
         c:7443: standby, no leader elected yet"
    );
}

/// A CA, and a server chain + key for 127.0.0.1 signed by it.
fn pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        ca.pem(),
        format!("{}{}", leaf.pem(), ca.pem()),
        key.serialize_pem(),
    )
}

/// A gRPC service that answers every call with one status.
#[derive(Clone)]
struct Fixed(tonic::Status);

impl tower::Service<http::Request<tonic::body::Body>> for Fixed {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<tonic::body::Body>) -> Self::Future {
        std::future::ready(Ok(self.0.clone().into_http()))
    }
}

impl tonic::server::NamedService for Fixed {
    const NAME: &'static str = "lab.v1.AgentService";
}

/// Serves `status` for every call on a loopback port; returns `127.0.0.1:PORT`.
async fn serve(status: tonic::Status, chain: &str, key: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = TlsAcceptor::from(server_config(chain, key, chain).unwrap());
    let incoming = tls_incoming(listener, acceptor);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Fixed(status))
            .serve_with_incoming(incoming),
    );
    addr
}

fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<
    std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(tls) = acceptor.accept(tcp).await {
                if tx.send(Ok(tls)).await.is_err() {
                    return;
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A loopback address nothing listens on.
async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

async fn bootstrap(channel: Channel) -> Result<(), tonic::Status> {
    crate::client::agent_client(channel)
        .bootstrap(crate::v1::BootstrapRequest {})
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_down_first_endpoint_falls_through_and_the_good_one_is_remembered() {
    let (ca, chain, key) = pki();
    let tls = client_config(&ca, None).unwrap();
    let down = closed_port().await;
    let up = serve(
        tonic::Status::permission_denied("leader here"),
        &chain,
        &key,
    )
    .await;
    let mut e = Endpoints::new([down.clone(), up.clone()]).unwrap();
    // The attempt does no call: dialling is enough to serve.
    let d = e
        .dial(tls.clone(), &ConnectOptions::default(), |_| async {
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(d.addr, up);
    assert_eq!(e.last_good(), Some(up.as_str()));
    assert_eq!(e.order()[0], up);

    // Both down: each one is named with its cause.
    let mut e = Endpoints::new([down.clone(), closed_port().await]).unwrap();
    let err = e
        .dial(tls, &ConnectOptions::default(), |_| async { Ok(()) })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("no coordinator answered: "), "{err}");
    assert!(err.contains(&format!("{down}: ")), "{err}");
    assert_eq!(err.matches("refused").count(), 2, "{err}");
}

#[tokio::test]
async fn a_standby_hint_is_followed_before_the_rest_of_the_list() {
    let (ca, chain, key) = pki();
    let tls = client_config(&ca, None).unwrap();
    // The leader answers with a refusal, so the test sees which address answered.
    let leader = serve(
        tonic::Status::permission_denied("leader here"),
        &chain,
        &key,
    )
    .await;
    let standby = serve(standby_status(Some(&leader)), &chain, &key).await;
    let never = closed_port().await;
    // The leader is not even in the list: it is found through the standby's hint.
    let mut e = Endpoints::new([standby.clone(), never.clone()]).unwrap();
    match e
        .dial(tls.clone(), &ConnectOptions::default(), bootstrap)
        .await
    {
        Err(DialError::Rejected { addr, status }) => {
            assert_eq!(addr, leader);
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
        }
        other => panic!("expected the leader's answer, got {other:?}"),
    }

    // A standby that knows no leader, then one naming a dead leader: all named, no loop.
    let lost = serve(standby_status(None), &chain, &key).await;
    let stale = serve(standby_status(Some(&never)), &chain, &key).await;
    let mut e = Endpoints::new([lost.clone(), stale.clone()]).unwrap();
    let err = e
        .dial(tls, &ConnectOptions::default(), bootstrap)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{lost}: standby, no leader elected yet")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{stale}: standby, leader is {never}; {never}: ")),
        "{err}"
    );
    assert_eq!(err.matches(&never).count(), 2, "dialled once: {err}");
}

#[tokio::test]
async fn rounds_pause_and_end_with_the_last_failure() {
    let (ca, _, _) = pki();
    let tls = client_config(&ca, None).unwrap();
    let mut e = Endpoints::new([closed_port().await]).unwrap();
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
    let started = std::time::Instant::now();
    let err = e
        .dial_rounds(
            tls,
            &ConnectOptions::default(),
            3,
            &mut backoff,
            |_| async { Ok(()) },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DialError::AllFailed(_)));
    // Two pauses of at least 5 and 10 ms (half of each ceiling).
    assert!(started.elapsed() >= Duration::from_millis(15));
    assert_eq!(backoff.ceiling(), Duration::from_millis(20));
}
