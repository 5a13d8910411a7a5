//! CSRs as the coordinator receives them (Enroll, Renew): `Ca::sign_csr` never panics, whatever
//! the PEM text or the DER inside it. The first byte chooses: 0 = the rest is PEM text as sent,
//! otherwise the rest is DER wrapped in a well-formed PEM block (so the fuzzer reaches the X.509
//! parser instead of fighting base64).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use lab_coordinator::ca::Ca;
use lab_proto::identity::{Identity, SpiffeId};
use libfuzzer_sys::fuzz_target;

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| Ca::create("fuzz.lab").expect("CA").0)
}

fn id() -> SpiffeId {
    SpiffeId {
        trust_domain: "fuzz.lab".parse().expect("trust domain"),
        identity: Identity::Node("n1".parse().expect("node name")),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let pem = if mode == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(rest);
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n")
    };
    let _ = ca().sign_csr(&id(), &pem, Duration::from_secs(3600));
});
