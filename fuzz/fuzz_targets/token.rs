//! Enrollment tokens (`lab-agent enroll --token`, the Enroll RPC): parsing never panics, and a
//! parsed token prints as a string that parses back to it.
#![no_main]

use lab_proto::token::EnrollToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = text.parse::<EnrollToken>() else {
        return;
    };
    let printed = token.to_string();
    let again: EnrollToken = printed
        .parse()
        .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse: {e}"));
    assert!(again == token, "{printed:?} parses to another token");
});
