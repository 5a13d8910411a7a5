//! Spec files (`labctl apply -f`): labctl's parser never panics on any text, and whatever it
//! accepts, the coordinator's submit-time validation checks without panicking.
#![no_main]

use labctl::cmd::apply::parse::{parse_documents, Document};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(documents) = parse_documents("fuzz.yaml", text) else {
        return;
    };
    for document in documents {
        match document {
            Document::Job(job) => {
                let _ = lab_coordinator::jobs::spec::validate(&job.spec);
            }
            Document::Schedule(schedule) => {
                let _ = lab_coordinator::schedules::validate(&schedule.spec);
            }
        }
    }
});
