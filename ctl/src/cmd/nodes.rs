//! `labctl nodes`, `labctl node show|revoke|remove`.

use std::collections::BTreeMap;

use lab_proto::selector::{Selector, SelectorError};
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{GetNodeRequest, LabelNodeRequest, Node, RemoveNodeRequest, RevokeNodeRequest};
use serde::Serialize;
use serde_json::Value;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};
use crate::output::{self, Format};

/// Labels derived from facts; the table shows them as columns, not in LABELS.
const DERIVED: [&str; 6] = ["node", "os", "os-version", "arch", "virt", "hostname"];

/// A node as labctl prints it (JSON field names are stable).
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Live session now.
    pub online: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Last message (RFC 3339), null if never.
    pub last_seen: Option<String>,
    /// Enrollment time.
    pub enrolled: Option<String>,
    /// Revoked.
    pub revoked: bool,
    /// Agent version from its last hello.
    pub agent_version: String,
    /// Expiry of its newest certificate.
    pub cert_expires: Option<String>,
    /// os-release ID.
    pub os: Option<String>,
    /// os-release VERSION_ID.
    pub os_version: Option<String>,
    /// CPU architecture.
    pub arch: Option<String>,
    /// Virtualization (kvm, lxc, docker, none, ...).
    pub virt: Option<String>,
    /// Logical CPUs.
    pub cpus: Option<u64>,
    /// Total memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Boot time, Unix seconds.
    pub boot_time_unix: Option<u64>,
    /// All facts (only in `node show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Value>,
}

pub(crate) fn view(node: Node, with_facts: bool) -> NodeView {
    let facts: Value = serde_json::from_str(&node.facts_json).unwrap_or(Value::Null);
    let platform = |key: &str| facts.pointer(&format!("/platform/{key}")).cloned();
    let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_owned));
    let num = |v: Option<Value>| v.and_then(|v| v.as_u64());
    NodeView {
        os: text(platform("os")),
        os_version: text(platform("os_version")),
        arch: text(platform("arch")),
        virt: text(platform("virtualization")),
        cpus: num(platform("cpus")),
        memory_bytes: num(platform("memory_total_bytes")),
        boot_time_unix: num(platform("boot_time_unix")),
        facts: with_facts.then_some(facts),
        name: node.name,
        online: node.online,
        labels: node.labels.into_iter().collect(),
        last_seen: output::time(node.last_seen_unix_ms),
        enrolled: output::time(node.enrolled_unix_ms),
        revoked: node.revoked,
        agent_version: node.agent_version,
        cert_expires: output::time(node.cert_not_after_unix_ms),
    }
}

/// Checks a selector locally, so a typo is reported with a caret before anything is sent.
pub fn parse_selector(text: &str) -> Result<String, Failure> {
    match text.parse::<Selector>() {
        Ok(_) => Ok(text.to_owned()),
        Err(e @ SelectorError::Syntax { .. }) => Err(Failure::Usage(format!(
            "{e}\n  {}",
            e.caret().replace('\n', "\n  ")
        ))),
        Err(e) => Err(Failure::Usage(e.to_string())),
    }
}

/// Splits `labctl label` arguments into labels to set and keys to remove.
pub fn parse_label_changes(
    args: &[String],
) -> Result<(BTreeMap<String, String>, Vec<String>), Failure> {
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for arg in args {
        if let Some((k, v)) = arg.split_once('=') {
            set.insert(k.to_owned(), v.to_owned());
        } else if let Some(k) = arg.strip_suffix('-').filter(|k| !k.is_empty()) {
            remove.push(k.to_owned());
        } else {
            return Err(Failure::Usage(format!(
                "'{arg}' is neither KEY=VALUE (set) nor KEY- (remove)"
            )));
        }
    }
    lab_proto::labels::validate(&set).map_err(|e| Failure::Usage(e.to_string()))?;
    Ok((set, remove))
}

/// `labctl label NODE k=v k-`.
pub async fn label(
    mut client: OperatorServiceClient<Channel>,
    name: String,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
) -> anyhow::Result<()> {
    let node = client
        .label_node(LabelNodeRequest {
            name,
            set: set.into_iter().collect(),
            remove,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    let labels: Vec<String> = node
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    crate::outln!(
        "{}: {}",
        output::escape(&node.name),
        output::escape(&labels.join(","))
    )?;
    Ok(())
}

/// `labctl nodes`.
pub async fn list(
    mut client: OperatorServiceClient<Channel>,
    selector: &str,
    format: Format,
) -> anyhow::Result<()> {
    let nodes = lab_proto::pages::all_nodes(&mut client, selector)
        .await
        .map_err(from_status)?;
    let views: Vec<NodeView> = nodes.into_iter().map(|n| view(n, false)).collect();
    if output::print_structured(format, &views)? {
        return Ok(());
    }
    crate::outln!("{}", table(&views, output::now_ms()))?;
    Ok(())
}

/// The `labctl nodes` table. Pure.
pub fn table(views: &[NodeView], now_ms: i64) -> output::Table<11> {
    let mut table = output::table([
        "NAME",
        "ONLINE",
        "OS",
        "VERSION",
        "ARCH",
        "VIRT",
        "CPU",
        "MEMORY",
        "UPTIME",
        "LAST SEEN",
        "LABELS",
    ]);
    for v in views {
        let online = if v.revoked {
            "revoked"
        } else if v.online {
            "yes"
        } else {
            "no"
        };
        let uptime = v
            .boot_time_unix
            .map(|b| output::human_secs((now_ms / 1000).saturating_sub(b as i64).max(0) as u64))
            .unwrap_or_else(|| "-".into());
        let labels = v
            .labels
            .iter()
            .filter(|(k, _)| !DERIVED.contains(&k.as_str()))
            .map(|(k, val)| format!("{k}={val}"))
            .collect::<Vec<_>>()
            .join(",");
        let last_seen_ms = v
            .last_seen
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        table.row([
            v.name.clone(),
            online.to_owned(),
            v.os.clone().unwrap_or_else(|| "-".into()),
            v.os_version.clone().unwrap_or_else(|| "-".into()),
            v.arch.clone().unwrap_or_else(|| "-".into()),
            v.virt.clone().unwrap_or_else(|| "-".into()),
            v.cpus.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            v.memory_bytes
                .map(output::bytes)
                .unwrap_or_else(|| "-".into()),
            uptime,
            output::age(last_seen_ms, now_ms),
            labels,
        ]);
    }
    table
}

/// `labctl node show NAME`.
pub async fn show(
    mut client: OperatorServiceClient<Channel>,
    name: String,
    format: Format,
) -> anyhow::Result<()> {
    let node = client
        .get_node(GetNodeRequest { name })
        .await
        .map_err(from_status)?
        .into_inner();
    let v = view(node, true);
    output::print_detail(format, &v)
}

/// `labctl node revoke NAME`.
pub async fn revoke(
    mut client: OperatorServiceClient<Channel>,
    name: String,
) -> anyhow::Result<()> {
    let resp = client
        .revoke_node(RevokeNodeRequest { name: name.clone() })
        .await
        .map_err(from_status)?
        .into_inner();
    crate::outln!(
        "node '{name}' revoked: {} certificate(s) revoked, session {}",
        resp.certificates_revoked,
        if resp.session_closed {
            "closed"
        } else {
            "was not open"
        }
    )?;
    Ok(())
}

/// `labctl node remove NAME [--forget-backups]`: without the flag, a hint names
/// `labctl backups forget` when the node has backup records (no prompt: scripts use this).
pub async fn remove(
    mut client: OperatorServiceClient<Channel>,
    name: String,
    forget_backups: bool,
) -> anyhow::Result<()> {
    client
        .remove_node(RemoveNodeRequest { name: name.clone() })
        .await
        .map_err(from_status)?;
    crate::outln!("node '{name}' removed; it can be enrolled again with a new token")?;
    let records = super::backups::count(&mut client, &name).await?;
    if records == 0 {
        return Ok(());
    }
    if forget_backups {
        return super::backups::forget(client, &name, None).await;
    }
    crate::outln!(
        "node '{name}' still has {records} backup record(s); `labctl backups forget {name}` deletes them"
    )?;
    Ok(())
}
