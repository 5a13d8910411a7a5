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

/// Labels the coordinator derives; the table shows them as columns (`status` as STATUS, `node`
/// as NAME), not in LABELS.
pub(crate) const DERIVED: [&str; 7] = [
    "node",
    "status",
    "os",
    "os-version",
    "arch",
    "virt",
    "hostname",
];

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
    /// The node's age recipient (secrets for it are encrypted to it); null when none reported.
    pub age_recipient: Option<String>,
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

/// The facts [`view`] reads (besides the whole document for `node show`): listings ask the
/// coordinator for only these.
pub(crate) const VIEW_FACTS: [&str; 1] = ["/platform"];

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
        age_recipient: (!node.age_recipient.is_empty()).then_some(node.age_recipient),
    }
}

/// The selector matching the nodes both `a` and `b` match (all requirements must hold, so the
/// intersection is the two joined by ','; an empty one matches every node). Pure.
pub fn intersect(a: &str, b: &str) -> String {
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, _) => b.trim().to_owned(),
        (_, true) => a.trim().to_owned(),
        _ => format!("{},{}", a.trim(), b.trim()),
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
    // Sorted, as in `labctl nodes` (the wire map has no order).
    let sorted: BTreeMap<&String, &String> = node.labels.iter().collect();
    let labels: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    crate::outln!(
        "{}: {}",
        output::escape(&node.name),
        output::escape(&labels.join(","))
    )?;
    Ok(())
}

/// `labctl nodes [-w]`: JSON/YAML, names, or the table (fitted to 80 columns unless wide);
/// with `watch`, again whenever a node's status, labels or version change (see
/// [`crate::cmd::watch`]).
pub async fn list(
    mut client: OperatorServiceClient<Channel>,
    selector: &str,
    format: Format,
    watch: Option<tokio_util::sync::CancellationToken>,
) -> anyhow::Result<()> {
    let Some(shutdown) = watch else {
        let views = fetch(&mut client, selector).await?;
        if output::print_list(format, &views, |v| v.name.clone())? {
            return Ok(());
        }
        let table = table(&views, output::now_ms(), format, output::use_color());
        crate::outln!("{table}")?;
        if views.is_empty() && !selector.is_empty() {
            crate::errln!(
                "no node matches selector '{selector}'; 'labctl nodes -o wide' shows every label"
            );
        }
        return Ok(());
    };
    super::watch::run(shutdown, || {
        let mut client = client.clone();
        async move {
            let views = fetch(&mut client, selector).await?;
            let mut key = change_key(&views);
            let text = match format {
                Format::Table | Format::Wide => {
                    table(&views, output::now_ms(), format, output::use_color())
                }
                Format::Name => output::names(&views, |v| v.name.clone()),
                Format::Json => serde_json::to_string_pretty(&views)?,
                Format::Yaml => serde_yaml_ng::to_string(&views)?,
            };
            if format == Format::Name {
                key.clone_from(&text);
            }
            Ok((key, text))
        }
    })
    .await
}

async fn fetch(
    client: &mut OperatorServiceClient<Channel>,
    selector: &str,
) -> anyhow::Result<Vec<NodeView>> {
    let nodes = lab_proto::pages::all_nodes_brief(client, selector, &VIEW_FACTS)
        .await
        .map_err(from_status)?;
    Ok(nodes.into_iter().map(|n| view(n, false)).collect())
}

/// What `--watch` compares: name, status, labels and agent version of every node (not the
/// times, which change with every heartbeat).
fn change_key(views: &[NodeView]) -> String {
    views
        .iter()
        .map(|v| {
            format!(
                "{} {} {:?} {}\n",
                v.name,
                status(v),
                v.labels,
                v.agent_version
            )
        })
        .collect()
}

/// The `status` label's value: revoked, online or offline.
pub(crate) fn status(v: &NodeView) -> &'static str {
    if v.revoked {
        "revoked"
    } else if v.online {
        "online"
    } else {
        "offline"
    }
}

/// The `labctl nodes` table: fitted to 80 columns (long label lists end in `…`), or with
/// `-o wide` also the OS version, virtualization, last contact and agent version and every
/// label. Pure.
pub fn table(views: &[NodeView], now_ms: i64, format: Format, color: bool) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = views.iter().map(|v| {
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
        let last_seen_ms = output::unix_ms(v.last_seen.as_deref());
        let cpus = v.cpus.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        let memory = v
            .memory_bytes
            .map(output::bytes)
            .unwrap_or_else(|| "-".into());
        (
            v,
            uptime,
            labels,
            output::age(last_seen_ms, now_ms),
            cpus,
            memory,
        )
    });
    if format.is_wide() {
        let mut t = output::table([
            "NAME",
            "STATUS",
            "OS",
            "VERSION",
            "ARCH",
            "VIRT",
            "CPU",
            "MEMORY",
            "UPTIME",
            "LAST SEEN",
            "AGENT",
            "LABELS",
        ]);
        for (v, uptime, labels, seen, cpus, memory) in rows {
            let mut styles = [""; 12];
            styles[1] = output::state_style(status(v));
            let cells = [
                v.name.clone(),
                status(v).into(),
                dash(&v.os),
                dash(&v.os_version),
                dash(&v.arch),
                dash(&v.virt),
                cpus,
                memory,
                uptime,
                seen,
                if v.agent_version.is_empty() {
                    "-".into()
                } else {
                    v.agent_version.clone()
                },
                labels,
            ];
            t.row_styled(cells, styles, color);
        }
        return t.to_string();
    }
    let mut t = output::table([
        "NAME", "STATUS", "OS", "ARCH", "CPU", "MEMORY", "UPTIME", "LABELS",
    ]);
    for (v, uptime, labels, _, cpus, memory) in rows {
        let os = match (&v.os, &v.os_version) {
            (Some(os), Some(version)) => format!("{os} {version}"),
            (os, _) => dash(os),
        };
        let mut styles = [""; 8];
        styles[1] = output::state_style(status(v));
        let cells = [
            v.name.clone(),
            status(v).into(),
            os,
            dash(&v.arch),
            cpus,
            memory,
            uptime,
            labels,
        ];
        t.row_styled(cells, styles, color);
    }
    t.fit(format.fit()).to_string()
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
    output::print_detail(format, &v, &v.name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersect_joins_requirements_and_keeps_every_node_neutral() {
        assert_eq!(intersect("", "status=online"), "status=online");
        assert_eq!(intersect(" role=nas ", ""), "role=nas");
        assert_eq!(intersect("", ""), "");
        assert_eq!(
            intersect("role in (a,b)", "status=online"),
            "role in (a,b),status=online"
        );
        let both: Selector = intersect("role=nas", "site=attic").parse().unwrap();
        let labels = |role: &str, site: &str| {
            [
                ("role".to_owned(), role.to_owned()),
                ("site".to_owned(), site.to_owned()),
            ]
            .into()
        };
        assert!(both.matches(&labels("nas", "attic"), &Value::Null));
        assert!(!both.matches(&labels("nas", "cellar"), &Value::Null));
        assert!(!both.matches(&labels("web", "attic"), &Value::Null));
    }
}
