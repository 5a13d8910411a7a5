//! `labctl status`: the coordinators of this fleet — each one's address, role (leader,
//! standby, down), store, since when it has that role and its version — and the last leader
//! change. Any coordinator answers it, a standby too, so it works whichever one the context
//! names.

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{CoordinatorRole, ListCoordinatorsRequest, ListCoordinatorsResponse};
use serde::Serialize;
use tonic::transport::Channel;

use crate::failure::from_status;
use crate::output::{self, Format};

/// One coordinator, as printed (`-o json` field names are stable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoordinatorView {
    /// Advertised address, HOST:PORT.
    pub address: String,
    /// `leader`, `standby` or `down`.
    pub role: &'static str,
    /// `sled` or `etcd://…` (empty when down).
    pub store: String,
    /// When it took this role (RFC 3339), if known.
    pub since: Option<String>,
    /// Its lab-coordinator version (empty when down).
    pub version: String,
    /// When it joined the fleet (RFC 3339), if recorded.
    pub joined: Option<String>,
}

/// The last leader change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderChangeView {
    /// The coordinator that became leader.
    pub address: String,
    /// When (RFC 3339), if known.
    pub at: Option<String>,
}

/// What `labctl status` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// Every coordinator, by address.
    pub coordinators: Vec<CoordinatorView>,
    /// The last leader change, if one was recorded (etcd stores only).
    pub last_leader_change: Option<LeaderChangeView>,
    /// The coordinator that answered.
    pub answered_by: String,
}

fn role_name(value: i32) -> &'static str {
    match CoordinatorRole::try_from(value) {
        Ok(CoordinatorRole::Leader) => "leader",
        Ok(CoordinatorRole::Standby) => "standby",
        Ok(CoordinatorRole::Down) => "down",
        _ => "unknown",
    }
}

/// The printed form of an answer. Pure.
pub fn view(answer: ListCoordinatorsResponse) -> StatusView {
    let secs = |s: i64| output::time(s.saturating_mul(1000));
    let coordinators = answer
        .coordinators
        .into_iter()
        .map(|c| CoordinatorView {
            role: role_name(c.role),
            since: secs(c.since_unix),
            joined: secs(c.joined_unix),
            address: c.advertise,
            store: c.store,
            version: c.version,
        })
        .collect();
    let last_leader_change =
        (!answer.last_leader_change_advertise.is_empty()).then(|| LeaderChangeView {
            address: answer.last_leader_change_advertise,
            at: secs(answer.last_leader_change_unix),
        });
    StatusView {
        coordinators,
        last_leader_change,
        answered_by: answer.answered_by,
    }
}

/// `labctl status [-o FORMAT]`.
pub async fn show(
    mut client: OperatorServiceClient<Channel>,
    format: Format,
) -> anyhow::Result<()> {
    let answer = client
        .list_coordinators(ListCoordinatorsRequest {})
        .await
        .map_err(from_status)?
        .into_inner();
    let status = view(answer);
    if format == Format::Name {
        crate::out!(
            "{}",
            output::names(&status.coordinators, |c| c.address.clone())
        )?;
        return Ok(());
    }
    if output::print_structured(format, &status)? {
        return Ok(());
    }
    crate::out!("{}", render(&status, format, output::use_color()))?;
    Ok(())
}

/// The table and the last leader change line, for people. Pure.
pub(crate) fn render(status: &StatusView, format: Format, color: bool) -> String {
    let mut table = output::table(["ADDRESS", "ROLE", "STORE", "SINCE", "VERSION"]);
    for c in &status.coordinators {
        let style = match c.role {
            "leader" => output::state_style("online"),
            "down" => output::state_style("offline"),
            _ => "",
        };
        table.row_styled(
            [
                c.address.clone(),
                c.role.to_owned(),
                if c.store.is_empty() {
                    "-".into()
                } else {
                    c.store.clone()
                },
                c.since.clone().unwrap_or_else(|| "-".into()),
                if c.version.is_empty() {
                    "-".into()
                } else {
                    c.version.clone()
                },
            ],
            ["", style, "", "", ""],
            color,
        );
    }
    let mut out = format!("{}\n", table.fit(format.fit()));
    match &status.last_leader_change {
        Some(change) => {
            let at = change.at.as_deref().unwrap_or("an unknown time");
            out.push_str(&output::escape_line(&format!(
                "last leader change: {} became leader at {at}",
                change.address
            )));
            out.push('\n');
        }
        None => out.push_str("last leader change: none recorded\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::CoordinatorInfo;

    fn answer() -> ListCoordinatorsResponse {
        let c = |addr: &str, role: CoordinatorRole, since: i64| CoordinatorInfo {
            advertise: addr.into(),
            role: role as i32,
            store: if role == CoordinatorRole::Down {
                String::new()
            } else {
                "etcd://10.0.0.9:2379".into()
            },
            since_unix: since,
            version: if role == CoordinatorRole::Down {
                String::new()
            } else {
                "0.1.0".into()
            },
            joined_unix: 0,
        };
        ListCoordinatorsResponse {
            coordinators: vec![
                c("10.0.0.5:7443", CoordinatorRole::Down, 0),
                c("10.0.0.6:7443", CoordinatorRole::Leader, 1_764_000_000),
                c("10.0.0.7:7443", CoordinatorRole::Standby, 1_763_990_000),
            ],
            last_leader_change_advertise: "10.0.0.6:7443".into(),
            last_leader_change_unix: 1_764_000_000,
            answered_by: "10.0.0.7:7443".into(),
        }
    }

    #[test]
    fn the_table_shows_roles_and_the_last_leader_change() {
        let text = render(&view(answer()), Format::Table, false);
        assert_eq!(
            text,
            "ADDRESS        ROLE     STORE                 SINCE                 VERSION\n\
             10.0.0.5:7443  down     -                     -                     -\n\
             10.0.0.6:7443  leader   etcd://10.0.0.9:2379  2025-11-24T16:00:00Z  0.1.0\n\
             10.0.0.7:7443  standby  etcd://10.0.0.9:2379  2025-11-24T13:13:20Z  0.1.0\n\
             last leader change: 10.0.0.6:7443 became leader at 2025-11-24T16:00:00Z\n"
        );
        let mut none = answer();
        none.last_leader_change_advertise.clear();
        assert!(render(&view(none), Format::Table, false).ends_with("none recorded\n"));
    }

    #[test]
    fn json_has_stable_field_names() {
        let json = serde_json::to_value(view(answer())).unwrap();
        assert_eq!(json["coordinators"][1]["role"], "leader");
        assert_eq!(json["coordinators"][0]["since"], serde_json::Value::Null);
        assert_eq!(json["last_leader_change"]["address"], "10.0.0.6:7443");
        assert_eq!(json["answered_by"], "10.0.0.7:7443");
    }
}
