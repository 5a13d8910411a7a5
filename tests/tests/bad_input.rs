//! Bad input and wrong credentials at the gRPC boundary: each gets a clear error and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use lab_proto::client::{agent_client, operator_client};
use lab_proto::ctlconfig::CtlConfig;
use lab_proto::tls::ClientIdentity;
use lab_proto::v1::{
    AgentMessage, BootstrapRequest, EnrollRequest, ListNodesRequest, RenewRequest,
};
use lab_tests::{labctl, stderr, Cluster, Coordinator};
use tonic::Code;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn admin_identity(c: &Cluster) -> ClientIdentity {
    let cfg = CtlConfig::parse(&std::fs::read_to_string(c.coord.admin_config()).unwrap()).unwrap();
    let ctx = cfg.context(None).unwrap();
    ClientIdentity {
        cert_pem: ctx.cert_pem.clone(),
        key_pem: ctx.key_pem.clone(),
    }
}

async fn channel(c: &Cluster, id: Option<&ClientIdentity>) -> tonic::transport::Channel {
    c.channel(id).await
}

#[test]
fn without_a_client_certificate_only_bootstrap_and_enroll_answer() {
    let c = Cluster::builder().agents(0).start();
    rt().block_on(async {
        let ch = channel(&c, None).await;
        let boot = agent_client(ch.clone())
            .bootstrap(BootstrapRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(boot.trust_domain, "lab.test");
        let err = operator_client(ch.clone())
            .list_nodes(ListNodesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(err.message().contains("needs a client certificate"));
        let err = agent_client(ch.clone())
            .renew(RenewRequest {
                csr_pem: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        let err = agent_client(ch)
            .connect(tokio_stream_once())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    });
}

fn tokio_stream_once() -> impl tonic::codegen::tokio_stream::Stream<Item = AgentMessage> {
    tonic::codegen::tokio_stream::iter(vec![AgentMessage { msg: None }])
}

#[test]
fn node_and_operator_certificates_stay_in_their_lanes() {
    let c = Cluster::builder().agents(1).start();
    rt().block_on(async {
        let node = channel(&c, Some(&c.agents[0].identity())).await;
        let err = operator_client(node)
            .list_nodes(ListNodesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert!(err
            .message()
            .contains("node certificates cannot call operator RPCs"));

        let admin = channel(&c, Some(&admin_identity(&c))).await;
        let err = agent_client(admin)
            .connect(tokio_stream_once())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    });
}

#[test]
fn csr_asking_for_another_identity_is_refused_and_keeps_the_token() {
    let c = Cluster::builder().agents(0).start();
    let token = c.token(&[]);
    rt().block_on(async {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://lab.test/operator/admin".try_into().unwrap(),
        )];
        let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let err = agent_client(channel(&c, None).await)
            .enroll(EnrollRequest {
                token: token.clone(),
                csr_pem,
                node_name: "sneaky".into(),
                default_node_name: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("asks for 'spiffe://lab.test/operator/admin'"),
            "{}",
            err.message()
        );
    });
    assert!(c.nodes().is_empty(), "nothing may change");
    let agent = c.new_agent("honest");
    let out = agent.enroll_output(&c.coord.addr, &token);
    assert!(
        out.status.success(),
        "the token must still work: {}",
        stderr(&out)
    );
}

#[test]
fn oversized_messages_are_refused() {
    let c = Cluster::builder().agents(0).start();
    let token = c.token(&[]);
    rt().block_on(async {
        // A client without our limits, so the server's limit is what refuses it.
        let ch = channel(&c, None).await;
        let mut raw = lab_proto::v1::agent_service_client::AgentServiceClient::new(ch);
        // The server resets the stream while the body is still arriving, so the code the
        // client sees varies; what matters is the refusal, that it came from the size limit
        // (without it the handler would decode the request and refuse the CSR as larger than
        // 16 KiB) and that nothing changed.
        let refused = raw
            .enroll(EnrollRequest {
                token: token.clone(),
                csr_pem: "x".repeat(lab_proto::limits::MAX_MESSAGE_BYTES + 1),
                node_name: "big".into(),
                default_node_name: String::new(),
            })
            .await
            .expect_err("an oversized Enroll was accepted");
        assert!(
            refused.code() != tonic::Code::InvalidArgument && !refused.message().contains("16 KiB"),
            "the oversized Enroll reached the handler: {refused:?}"
        );
        // Our own client stops at its encoding limit; the request never completes either.
        let refused = agent_client(channel(&c, None).await)
            .enroll(EnrollRequest {
                token: token.clone(),
                csr_pem: "x".repeat(lab_proto::limits::MAX_MESSAGE_BYTES + 1),
                node_name: "big".into(),
                default_node_name: String::new(),
            })
            .await;
        assert!(refused.is_err());
    });
    let agent = c.new_agent("small");
    assert!(agent.enroll_output(&c.coord.addr, &token).status.success());
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let c = Cluster::builder().agents(0).start();
    let other = Coordinator::init(c.tmp.path(), "other", "other.test");
    let mut cfg =
        CtlConfig::parse(&std::fs::read_to_string(other.admin_config()).unwrap()).unwrap();
    // Trust the right CA, but present a certificate the other CA issued.
    cfg.contexts[0].ca_pem = c.ca_pem();
    cfg.contexts[0].servers = vec![c.coord.addr.clone()];
    let path = c.tmp.path().join("foreign.toml");
    std::fs::write(&path, cfg.render()).unwrap();
    let out = labctl(&path, &["nodes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // And the other coordinator's config against this coordinator fails on the server CA too.
    let mut cfg2 =
        CtlConfig::parse(&std::fs::read_to_string(other.admin_config()).unwrap()).unwrap();
    cfg2.contexts[0].servers = vec![c.coord.addr.clone()];
    let path2 = c.tmp.path().join("foreign2.toml");
    std::fs::write(&path2, cfg2.render()).unwrap();
    let out = labctl(&path2, &["nodes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn roles_limit_what_an_operator_may_do() {
    let c = Cluster::builder().agents(1).start();
    let viewer_cfg = c.tmp.path().join("viewer.toml");
    let out = c.labctl(&[
        "user",
        "create",
        "alice",
        "--role",
        "viewer",
        "--out",
        viewer_cfg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = labctl(&viewer_cfg, &["whoami"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice (viewer)"));
    let out = labctl(&viewer_cfg, &["nodes", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = labctl(&viewer_cfg, &["token", "create"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("has role viewer"), "{}", stderr(&out));
    let out = labctl(&viewer_cfg, &["node", "revoke", "n1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(c.online("n1"), "a refused revoke must change nothing");
}

#[test]
fn labctl_config_errors_are_usage_errors() {
    let c = Cluster::builder().agents(0).start();
    let missing = c.tmp.path().join("missing.toml");
    let out = labctl(&missing, &["nodes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read labctl config"),
        "{}",
        stderr(&out)
    );
    let bad = c.tmp.path().join("bad.toml");
    std::fs::write(&bad, "nonsense = [").unwrap();
    let out = labctl(&bad, &["nodes"]);
    assert_eq!(out.status.code(), Some(2));
    // Unreachable coordinator: exit 3.
    let mut cfg =
        CtlConfig::parse(&std::fs::read_to_string(c.coord.admin_config()).unwrap()).unwrap();
    cfg.contexts[0].servers = vec![format!("127.0.0.1:{}", lab_tests::free_port())];
    let down = c.tmp.path().join("down.toml");
    std::fs::write(&down, cfg.render()).unwrap();
    let out = labctl(&down, &["nodes"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn a_node_renewing_in_a_loop_is_refused_after_a_few() {
    let c = Cluster::builder().agents(1).start();
    rt().block_on(async {
        let mut node = agent_client(channel(&c, Some(&c.agents[0].identity())).await);
        let renew = || {
            let key = lab_proto::csr::new_key_pem().unwrap();
            RenewRequest {
                csr_pem: lab_proto::csr::csr_for_key(&key).unwrap(),
            }
        };
        for _ in 0..3 {
            node.renew(renew()).await.unwrap();
        }
        let err = node.renew(renew()).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message().contains("renewed its certificate too often"),
            "{err:?}"
        );
    });
    let metrics = c.coord.metrics();
    assert!(
        metrics.contains("labfleet_renewals_rate_limited_total 1"),
        "{metrics}"
    );
}
