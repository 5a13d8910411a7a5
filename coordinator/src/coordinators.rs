//! `ListCoordinators`: every coordinator of this fleet's store, for `labctl status`. The leader
//! and the standbys answer it alike (from etcd's liveness and membership records, see
//! [`crate::store::presence`]); with sled the one coordinator answers for itself.

use lab_proto::v1::{CoordinatorInfo, CoordinatorRole, ListCoordinatorsResponse};
use tonic::Status;

use crate::store::presence::{self, Members, Role};
use crate::store::EtcdOptions;

/// The answer of a coordinator on an etcd store whose address is `advertise`.
pub async fn from_etcd(
    etcd: &EtcdOptions,
    advertise: &str,
) -> Result<ListCoordinatorsResponse, Status> {
    let members = presence::list(etcd)
        .await
        .map_err(|e| Status::unavailable(format!("{e}; the coordinators' records are in etcd")))?;
    Ok(to_proto(members, advertise))
}

/// The answer of a coordinator on sled: itself, leader since `started_unix`.
pub fn for_sled(advertise: &str, started_unix: i64) -> ListCoordinatorsResponse {
    ListCoordinatorsResponse {
        coordinators: vec![CoordinatorInfo {
            advertise: advertise.to_owned(),
            role: CoordinatorRole::Leader as i32,
            store: "sled".into(),
            since_unix: started_unix,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            joined_unix: 0,
        }],
        last_leader_change_advertise: String::new(),
        last_leader_change_unix: 0,
        answered_by: advertise.to_owned(),
    }
}

/// The wire form of `members`, answered by `advertise`. Pure.
pub fn to_proto(members: Members, advertise: &str) -> ListCoordinatorsResponse {
    let Members {
        members,
        last_change,
    } = members;
    let coordinators = members
        .into_iter()
        .map(|m| {
            let presence::Member {
                advertise,
                role,
                store,
                since_unix,
                version,
                joined_unix,
            } = m;
            let role = match role {
                Role::Leader => CoordinatorRole::Leader,
                Role::Standby => CoordinatorRole::Standby,
                Role::Down => CoordinatorRole::Down,
            };
            CoordinatorInfo {
                advertise,
                role: role as i32,
                store,
                since_unix,
                version,
                joined_unix,
            }
        })
        .collect();
    let (last_leader_change_advertise, last_leader_change_unix) =
        last_change.map_or((String::new(), 0), |c| (c.advertise, c.since_unix));
    ListCoordinatorsResponse {
        coordinators,
        last_leader_change_advertise,
        last_leader_change_unix,
        answered_by: advertise.to_owned(),
    }
}
