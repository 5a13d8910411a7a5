//! Dialling one of several coordinators: the client side of a highly available control plane.
//!
//! Agents, `lab-agent enroll` and labctl know a list of coordinator addresses (`A:7443,B:7443`).
//! [`Endpoints::dial`] tries the one that last answered first, then the others in list order.
//! Every dial is followed by the caller's first RPC (the *attempt*), because only an answer tells
//! the leader from a standby: a standby answers `UNAVAILABLE` with the leader's address
//! ([`crate::standby::leader_hint`]), which is dialled next, before the rest of the list. A hinted
//! address outside the list is dialled with the same TLS configuration, so it is only used when
//! its certificate chains to the fleet's CA and names that address.
//!
//! One call is one *round*: each address at most once. Pauses between rounds are the caller's
//! ([`crate::backoff::Backoff`] with jitter, so a fleet does not arrive at a new leader at once;
//! [`Endpoints::dial_rounds`] does it for one-shot clients). When every address failed, the error
//! names each one and why.
//!
//! Must not: change TLS verification, or retry an answer that is not about availability (a
//! refused certificate, a bad request): that goes back to the caller unchanged.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::client::{connect, split_host_port, ConnectError, ConnectOptions};

/// Most addresses dialled in one round (the list plus hints to addresses outside it).
const MAX_DIALS_PER_ROUND: usize = 16;

/// A list of coordinator addresses and the one that answered last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    list: Vec<String>,
    last_good: Option<String>,
}

/// A list that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointsError {
    /// No address at all.
    #[error("no coordinator address given; expected HOST:PORT[,HOST:PORT...], e.g. 10.0.0.5:7443,10.0.0.6:7443")]
    Empty,
    /// One entry is not HOST:PORT.
    #[error("invalid coordinator address '{0}': expected HOST:PORT, e.g. 10.0.0.5:7443 (several: A:7443,B:7443)")]
    BadAddress(String),
}

/// Why one address did not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// TCP, TLS or HTTP/2 failed (the innermost cause, e.g. `connection refused`).
    Transport(String),
    /// A standby; the leader it named, if any.
    Standby(Option<String>),
    /// `UNAVAILABLE` without a leader's address (e.g. the store has no quorum).
    Unavailable(String),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Transport(cause) => f.write_str(cause),
            Why::Standby(Some(leader)) => write!(f, "standby, leader is {leader}"),
            Why::Standby(None) => f.write_str("standby, no leader elected yet"),
            Why::Unavailable(message) => write!(f, "unavailable: {message}"),
        }
    }
}

/// One address tried in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// The address dialled.
    pub addr: String,
    /// Why it did not serve.
    pub why: Why,
}

/// Every address of a round failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllFailed(pub Vec<Tried>);

impl fmt::Display for AllFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no coordinator answered: ")?;
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", t.addr, t.why)?;
        }
        Ok(())
    }
}

impl std::error::Error for AllFailed {}

/// What [`Endpoints::dial`] can end with.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// No address served (each one named with its reason).
    #[error(transparent)]
    AllFailed(#[from] AllFailed),
    /// A coordinator answered the attempt with an error that is not about availability; retrying
    /// elsewhere would not help.
    #[error("{addr}: {}", status.message())]
    Rejected {
        /// The coordinator that answered.
        addr: String,
        /// Its answer.
        status: tonic::Status,
    },
}

/// A coordinator that served the attempt.
#[derive(Debug)]
pub struct Dialled<T> {
    /// Its address.
    pub addr: String,
    /// The channel to it (reuse it for further calls).
    pub channel: Channel,
    /// What the attempt returned.
    pub value: T,
}

/// Splits a comma-separated list (`A:7443, B:7443`) into checked addresses, dropping repeats.
pub fn parse_list(text: &str) -> Result<Vec<String>, EndpointsError> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        if split_host_port(part).is_none() {
            return Err(EndpointsError::BadAddress(part.to_owned()));
        }
        if !out.iter().any(|a| a == part) {
            out.push(part.to_owned());
        }
    }
    if out.is_empty() {
        return Err(EndpointsError::Empty);
    }
    Ok(out)
}

/// The innermost cause of `error`, e.g. `Connection refused (os error 111)`.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

impl Endpoints {
    /// A checked list (each entry HOST:PORT, at least one; repeats dropped).
    pub fn new(list: impl IntoIterator<Item = impl Into<String>>) -> Result<Self, EndpointsError> {
        let joined: Vec<String> = list.into_iter().map(Into::into).collect();
        Ok(Endpoints {
            list: parse_list(&joined.join(","))?,
            last_good: None,
        })
    }

    /// The configured addresses, in order.
    pub fn list(&self) -> &[String] {
        &self.list
    }

    /// The address that served last, if any (possibly a leader named by a standby).
    pub fn last_good(&self) -> Option<&str> {
        self.last_good.as_deref()
    }

    /// Remembers `addr` as the one to try first.
    pub fn set_last_good(&mut self, addr: &str) {
        self.last_good = Some(addr.to_owned());
    }

    /// The order of one round: the last good address, then the list.
    pub fn order(&self) -> Vec<String> {
        let first = self.last_good.as_ref();
        first
            .into_iter()
            .chain(self.list.iter().filter(|a| Some(*a) != first))
            .cloned()
            .collect()
    }

    /// One round: dials each address in [`Endpoints::order`] (a standby's hint first), runs
    /// `attempt` on the channel, and returns the first that serves (remembered as last good).
    pub async fn dial<T, F, Fut>(
        &mut self,
        tls: Arc<ClientConfig>,
        options: &ConnectOptions,
        mut attempt: F,
    ) -> Result<Dialled<T>, DialError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut queue = self.order();
        let mut tried: Vec<Tried> = Vec::new();
        while !queue.is_empty() && tried.len() < MAX_DIALS_PER_ROUND {
            let addr = queue.remove(0);
            let why = match connect(&addr, tls.clone(), options).await {
                Err(ConnectError::BadAddress(a)) => {
                    Why::Transport(format!("not a HOST:PORT address ('{a}')"))
                }
                Err(ConnectError::Transport { source, .. }) => Why::Transport(root_cause(&source)),
                Ok(channel) => match attempt(channel.clone()).await {
                    Ok(value) => {
                        self.set_last_good(&addr);
                        return Ok(Dialled {
                            addr,
                            channel,
                            value,
                        });
                    }
                    Err(status) if status.code() == tonic::Code::Unavailable => {
                        match crate::standby::leader_hint(&status) {
                            Some(leader) => {
                                let fresh = leader != addr
                                    && split_host_port(&leader).is_some()
                                    && !tried.iter().any(|t| t.addr == leader);
                                if fresh {
                                    queue.retain(|a| *a != leader);
                                    queue.insert(0, leader.clone());
                                }
                                Why::Standby(Some(leader))
                            }
                            None if status.message().contains("standby") => Why::Standby(None),
                            None => Why::Unavailable(status.message().to_owned()),
                        }
                    }
                    Err(status) => return Err(DialError::Rejected { addr, status }),
                },
            };
            tracing::debug!(%addr, why = %why, "coordinator did not serve");
            tried.push(Tried { addr, why });
        }
        Err(AllFailed(tried).into())
    }

    /// Up to `rounds` rounds of [`Endpoints::dial`], pausing with `backoff` (jittered) between
    /// them; for one-shot clients such as labctl that should ride out a failover.
    pub async fn dial_rounds<T, F, Fut>(
        &mut self,
        tls: Arc<ClientConfig>,
        options: &ConnectOptions,
        rounds: u32,
        backoff: &mut Backoff,
        mut attempt: F,
    ) -> Result<Dialled<T>, DialError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let mut round = 1;
        loop {
            match self.dial(tls.clone(), options, &mut attempt).await {
                Err(DialError::AllFailed(all)) if round < rounds.max(1) => {
                    let delay = backoff.next_delay(rand::random::<f64>());
                    tracing::debug!(error = %all, retry_in = ?delay, "round failed");
                    tokio::time::sleep(delay).await; // sleep-ok: the jittered pause between rounds
                    round += 1;
                }
                other => return other,
            }
        }
    }
}

/// The pause before labctl's next round over its coordinators.
pub fn ctl_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(400), Duration::from_secs(3))
}

/// A config value that holds one address (older files, or a comma list) or a list of them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `"A:7443"` or `"A:7443,B:7443"`.
    One(String),
    /// `["A:7443", "B:7443"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The checked list.
    pub fn into_list(self) -> Result<Vec<String>, EndpointsError> {
        match self {
            OneOrMany::One(s) => parse_list(&s),
            OneOrMany::Many(v) => parse_list(&v.join(",")),
        }
    }
}

/// The list of a config that names it `new` (a list) and, in files written before lists,
/// `old` (one address): exactly one of the two must be set.
pub fn new_or_old(
    new: (&str, Option<OneOrMany>),
    old: (&str, Option<OneOrMany>),
) -> Result<Vec<String>, String> {
    match (new.1, old.1) {
        (Some(list), None) | (None, Some(list)) => list.into_list().map_err(|e| e.to_string()),
        (Some(_), Some(_)) => Err(format!(
            "both '{}' and '{}' are set; keep '{}' only",
            new.0, old.0, new.0
        )),
        (None, None) => Err(format!(
            "no '{}' list of coordinator addresses (HOST:PORT)",
            new.0
        )),
    }
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
