//! How a standby coordinator points clients at the leader.
//!
//! A coordinator that is not the leader of its etcd store still accepts connections, but
//! answers every agent and operator RPC with `UNAVAILABLE` and the leader's advertised address
//! (`HOST:PORT`) in the [`LEADER_METADATA`] trailer. Clients that know several coordinators
//! dial that address next instead of walking their whole list.

/// The metadata key that carries the leader's address on a standby's `UNAVAILABLE` answer.
pub const LEADER_METADATA: &str = "lab-leader";

/// The answer of a standby whose leader advertises `leader` (`None`: no leader known yet).
pub fn standby_status(leader: Option<&str>) -> tonic::Status {
    let message = match leader {
        Some(l) => format!("this coordinator is a standby; the leader is {l}"),
        None => "this coordinator is a standby and no leader is elected yet; try again shortly"
            .to_string(),
    };
    let mut status = tonic::Status::unavailable(message);
    if let Some(value) = leader.and_then(|l| l.parse().ok()) {
        status.metadata_mut().insert(LEADER_METADATA, value);
    }
    status
}

/// The leader's address a standby named in `status`, if any.
pub fn leader_hint(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    let value = status.metadata().get(LEADER_METADATA)?.to_str().ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_round_trips_and_only_on_unavailable() {
        let s = standby_status(Some("10.0.0.6:7443"));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(s.message().contains("10.0.0.6:7443"));
        assert_eq!(leader_hint(&s).as_deref(), Some("10.0.0.6:7443"));
        assert_eq!(leader_hint(&standby_status(None)), None);
        let mut other = tonic::Status::internal("x");
        other
            .metadata_mut()
            .insert(LEADER_METADATA, "10.0.0.6:7443".parse().unwrap());
        assert_eq!(leader_hint(&other), None);
    }
}
