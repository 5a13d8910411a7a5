//! Following a job's event stream (`WatchJob`) into a [`Printer`]: resumes from the last seq
//! after the stream breaks, with capped, jittered backoff, and stops on Ctrl-C.

use std::time::Duration;

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::WatchJobRequest;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::events::Printer;
use super::outcome::Ending;
use crate::failure::from_status;

/// Consecutive failed attempts to (re)open the stream before giving up.
pub const MAX_RETRIES: u32 = 5;

/// First backoff; doubled per consecutive failure.
const BACKOFF_START: Duration = Duration::from_millis(500);

/// Longest backoff.
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// When to stop following.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until the `JobDone` event.
    Done,
    /// Until the stored events are printed (`stored_only`) or `JobDone`.
    Caught,
}

/// Which job to follow.
#[derive(Debug, Clone)]
pub struct Target {
    /// Job id.
    pub job_id: String,
    /// Only this node's events; empty = all.
    pub node: String,
}

/// Whether a broken stream is worth re-opening: the connection failed or the coordinator went
/// away, as opposed to a refusal (not found, permission denied, ...).
pub fn retryable(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
        || matches!(
            status.code(),
            Code::Unavailable | Code::Cancelled | Code::Unknown
        )
}

/// A short reason for a broken stream: the innermost transport error, else the message.
pub fn reason(status: &Status) -> String {
    let mut innermost = None;
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        innermost = Some(e.to_string());
        next = e.source();
    }
    innermost.unwrap_or_else(|| format!("{:?}: {}", status.code(), status.message()))
}

/// Backoff before attempt `failures` (1-based): 0.5s doubling up to 8s, plus up to 25% jitter.
pub fn backoff(failures: u32, jitter_seed: u32) -> Duration {
    let base = BACKOFF_START
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(BACKOFF_CAP);
    let jitter_ms = u64::from(jitter_seed) % (base.as_millis() as u64 / 4 + 1);
    base + Duration::from_millis(jitter_ms)
}

/// A cheap jitter source; not for anything that needs real randomness.
fn jitter_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Why one attempt ended without a final answer.
enum Broken {
    Status(Status),
    EndedEarly,
}

/// Follows `target` into `printer` from its next seq until `until`, Ctrl-C (`shutdown`) or the
/// retries run out. Refusals (not found, permission denied) are errors.
pub async fn follow(
    client: &mut OperatorServiceClient<Channel>,
    target: &Target,
    printer: &mut Printer,
    until: Until,
    shutdown: &CancellationToken,
) -> anyhow::Result<Ending> {
    let mut failures = 0;
    loop {
        let broken = match attempt(client, target, printer, until, shutdown, &mut failures).await? {
            Ok(ending) => return Ok(ending),
            Err(broken) => broken,
        };
        let reason = match broken {
            Broken::Status(status) if !retryable(&status) => return Err(from_status(status).into()),
            Broken::Status(status) => reason(&status),
            Broken::EndedEarly => "the coordinator ended the stream before the job was done".into(),
        };
        failures += 1;
        if failures > MAX_RETRIES {
            return Ok(Ending::Unreachable(reason));
        }
        let wait = backoff(failures, jitter_seed());
        tracing::warn!(job = %target.job_id, %reason, ?wait, "event stream broke; resuming");
        crate::errln!(
            "event stream of job {} broke ({reason}); resuming in {:.1}s (try {failures}/{MAX_RETRIES})",
            target.job_id,
            wait.as_secs_f64()
        );
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(Ending::Interrupted),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One `WatchJob` call from `printer.last_seq() + 1`; resets `failures` once an event arrives.
async fn attempt(
    client: &mut OperatorServiceClient<Channel>,
    target: &Target,
    printer: &mut Printer,
    until: Until,
    shutdown: &CancellationToken,
    failures: &mut u32,
) -> anyhow::Result<Result<Ending, Broken>> {
    let request = WatchJobRequest {
        job_id: target.job_id.clone(),
        from_seq: printer.last_seq() + 1,
        node: target.node.clone(),
        stored_only: until == Until::Caught,
    };
    let opened = tokio::select! {
        _ = shutdown.cancelled() => return Ok(Ok(Ending::Interrupted)),
        r = client.watch_job(request) => r,
    };
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => return Ok(Err(Broken::Status(status))),
    };
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(Ok(Ending::Interrupted)),
            next = stream.message() => next,
        };
        match next {
            Ok(Some(event)) => {
                *failures = 0;
                printer.event(&event, &mut std::io::stdout(), &mut std::io::stderr())?;
                if let Some(done) = printer.done() {
                    return Ok(Ok(Ending::Done(*done)));
                }
            }
            Ok(None) if until == Until::Caught => return Ok(Ok(Ending::Caught)),
            Ok(None) => return Ok(Err(Broken::EndedEarly)),
            Err(status) => return Ok(Err(Broken::Status(status))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_are_retried() {
        assert!(retryable(&Status::unavailable("restarting")));
        assert!(retryable(&Status::unknown("connection reset")));
        assert!(retryable(&Status::cancelled("closed")));
        assert!(!retryable(&Status::not_found("no job j1")));
        assert!(!retryable(&Status::permission_denied("viewer")));
        assert!(!retryable(&Status::unimplemented("not yet")));
    }

    #[test]
    fn reasons() {
        let r = reason(&Status::unavailable("coordinator is shutting down"));
        assert_eq!(r, "Unavailable: coordinator is shutting down");
    }

    #[test]
    fn backoff_doubles_with_cap_and_jitter() {
        assert_eq!(backoff(1, 0), Duration::from_millis(500));
        assert_eq!(backoff(2, 0), Duration::from_secs(1));
        assert_eq!(backoff(5, 0), Duration::from_secs(8));
        assert_eq!(backoff(30, 0), Duration::from_secs(8));
        for seed in [1, 77, 1_000_000, u32::MAX] {
            let b = backoff(1, seed);
            assert!(
                b >= Duration::from_millis(500) && b <= Duration::from_millis(625),
                "{b:?}"
            );
        }
    }
}
