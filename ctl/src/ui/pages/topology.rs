//! `GET /topology`: the lab as the coordinator derives it from facts (hypervisors with their
//! guests and the nodes inside, k3s and Ceph clusters, nodes on no hypervisor), drawn as an SVG
//! of groups; a node is a box coloured by its status that links to its page, a guest without an
//! enrolled node is a grey box. Alerts and join problems are listed above the picture.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use lab_proto::topology::{NodeRef, Topology};
use lab_proto::v1::GetTopologyRequest;

use crate::ui::html::{Esc, Nav, Url};
use crate::ui::server::{render, PageError, PageResult, Ui};

/// Boxes a row.
const COLUMNS: usize = 6;
/// Boxes drawn per group; the rest is a link to the node list.
const MAX_PER_GROUP: usize = 300;
const BOX_W: usize = 150;
const BOX_H: usize = 30;
const GAP: usize = 10;
const HEADER: usize = 34;

/// One box of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Text in the box.
    pub label: String,
    /// Hover text.
    pub title: String,
    /// The enrolled node the box stands for (a link to its page) and whether it is online.
    pub node: Option<(String, bool)>,
}

/// A framed group of boxes with a title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The frame's title.
    pub title: String,
    /// The boxes.
    pub items: Vec<Item>,
}

fn node_item(n: &NodeRef, prefix: &str) -> Item {
    let role = n.k3s_role.as_deref().map(|r| format!(" · k3s {r}"));
    Item {
        label: format!("{prefix}{}", n.name),
        title: format!(
            "{} ({}){}",
            n.name,
            if n.online { "online" } else { "offline" },
            role.unwrap_or_default()
        ),
        node: Some((n.name.clone(), n.online)),
    }
}

/// The groups the picture shows for `t`: each hypervisor with its guests, each k3s and Ceph
/// cluster, then the nodes on no hypervisor. Pure.
pub fn groups(t: &Topology) -> Vec<Group> {
    let mut out = Vec::new();
    for h in &t.hypervisors {
        let mut items = vec![node_item(&h.node, "host ")];
        for g in &h.guests {
            let name = g.name.clone().unwrap_or_default();
            items.push(match &g.node {
                Some(n) => {
                    let mut it = node_item(n, &format!("{} ", g.vmid));
                    it.title = format!("{} {} {name}: {}", g.kind.as_str(), g.vmid, it.title);
                    it
                }
                None => Item {
                    label: format!("{} {name}", g.vmid),
                    title: format!(
                        "{} {} {name}: {}",
                        g.kind.as_str(),
                        g.vmid,
                        if g.template {
                            "template"
                        } else {
                            "no enrolled node inside"
                        }
                    ),
                    node: None,
                },
            });
        }
        out.push(Group {
            title: format!(
                "hypervisor {} (pve node {}) · {} guest(s)",
                h.node.name,
                h.pve_node,
                h.guests.len()
            ),
            items,
        });
    }
    for c in &t.k3s {
        let items = c
            .servers
            .iter()
            .map(|n| node_item(n, "server "))
            .chain(c.agents.iter().map(|n| node_item(n, "agent ")))
            .collect();
        out.push(Group {
            title: format!("k3s cluster {}", c.id),
            items,
        });
    }
    for c in &t.ceph {
        out.push(Group {
            title: format!(
                "Ceph {} · {}",
                c.fsid,
                c.health.as_deref().unwrap_or("health unknown")
            ),
            items: c.hosts.iter().map(|n| node_item(n, "")).collect(),
        });
    }
    if !t.standalone.is_empty() {
        out.push(Group {
            title: format!("on no hypervisor · {} node(s)", t.standalone.len()),
            items: t.standalone.iter().map(|n| node_item(n, "")).collect(),
        });
    }
    out
}

/// The SVG of `groups`. Pure.
pub fn svg(groups: &[Group]) -> String {
    let width = COLUMNS * (BOX_W + GAP) + GAP;
    let mut y = GAP;
    let mut body = String::new();
    for group in groups {
        let shown = group.items.len().min(MAX_PER_GROUP);
        let rows = shown.div_ceil(COLUMNS).max(1);
        let more = group.items.len() - shown;
        let height = HEADER + rows * (BOX_H + GAP) + if more > 0 { 24 } else { 0 };
        let _ = write!(
            body,
            "<g class=\"group\"><rect class=\"frame\" x=\"1\" y=\"{y}\" width=\"{w}\" height=\"{height}\" rx=\"8\"/>\
<text class=\"title\" x=\"{tx}\" y=\"{ty}\">{title}</text>",
            w = width - 2,
            tx = GAP + 4,
            ty = y + 22,
            title = Esc(&group.title),
        );
        for (i, item) in group.items.iter().take(shown).enumerate() {
            let x = GAP + (i % COLUMNS) * (BOX_W + GAP);
            let by = y + HEADER + (i / COLUMNS) * (BOX_H + GAP);
            let label: String = if item.label.chars().count() > 18 {
                item.label.chars().take(17).collect::<String>() + "…"
            } else {
                item.label.clone()
            };
            let inner = format!(
                "<title>{title}</title><rect x=\"{x}\" y=\"{by}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"5\"/>\
<text x=\"{tx}\" y=\"{ty}\">{label}</text>",
                title = Esc(&item.title),
                tx = x + 8,
                ty = by + 20,
                label = Esc(&label),
            );
            let _ = match &item.node {
                Some((name, online)) => write!(
                    body,
                    "<a href=\"/nodes/{url}\" class=\"node {class}\" data-node=\"{name}\">{inner}</a>",
                    url = Url(name),
                    class = crate::ui::html::state_class(if *online { "online" } else { "offline" }),
                    name = Esc(name),
                ),
                None => write!(body, "<g class=\"node neutral\">{inner}</g>"),
            };
        }
        if more > 0 {
            let _ = write!(
                body,
                "<a href=\"/nodes\"><text class=\"more\" x=\"{}\" y=\"{}\">and {more} more…</text></a>",
                GAP + 4,
                y + height - 8
            );
        }
        body.push_str("</g>");
        y += height + GAP;
    }
    format!(
        "<svg id=\"topology\" class=\"topology\" viewBox=\"0 0 {width} {y}\" role=\"img\" aria-label=\"the lab's topology\" xmlns=\"http://www.w3.org/2000/svg\">{body}</svg>"
    )
}

/// The alerts and problems of `t` as HTML lists (empty when there are none). Pure.
fn notes(t: &Topology) -> String {
    let mut s = String::new();
    for (class, title, lines) in [
        ("bad", "Alerts", &t.alerts),
        ("warn", "Problems", &t.problems),
    ] {
        if lines.is_empty() {
            continue;
        }
        let _ = write!(s, "<h2>{title}</h2><ul class=\"{class}\">");
        for l in lines {
            let _ = write!(s, "<li>{}</li>", Esc(l));
        }
        s.push_str("</ul>");
    }
    s
}

/// `GET /topology`.
pub async fn get(State(ui): State<Arc<Ui>>) -> PageResult {
    let who = ui.who().await?;
    let json = ui
        .client()
        .get_topology(GetTopologyRequest {})
        .await?
        .into_inner()
        .json;
    let t: Topology = serde_json::from_str(&json).map_err(|e| {
        PageError::Coordinator(tonic::Status::internal(format!(
            "the coordinator's topology is not valid JSON: {e}"
        )))
    })?;
    let body = format!(
        "<p class=\"muted\">Derived by the coordinator from the nodes' facts: Proxmox guests are matched to the enrolled node inside by SMBIOS UUID. \
A box is a node (green online, red offline; click for its page); a grey box is a guest without an enrolled node.</p>{}<div class=\"scroll\">{}</div>",
        notes(&t),
        svg(&groups(&t))
    );
    Ok(render(&ui.frame("Topology", Nav::Topology, &who), &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::topology::{Guest, Hypervisor};

    fn node(name: &str, online: bool) -> NodeRef {
        NodeRef {
            name: name.into(),
            online,
            ..Default::default()
        }
    }

    #[test]
    fn hypervisors_carry_their_guests_and_nodes_link_to_their_page() {
        let t = Topology {
            hypervisors: vec![Hypervisor {
                node: node("pve1", true),
                pve_node: "pve1".into(),
                guests: vec![
                    Guest {
                        vmid: 101,
                        name: Some("web".into()),
                        node: Some(node("web", false)),
                        ..Default::default()
                    },
                    Guest {
                        vmid: 102,
                        name: Some("spare".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            standalone: vec![node("laptop", true)],
            alerts: vec!["ceph <x> is HEALTH_WARN".into()],
            ..Default::default()
        };
        let g = groups(&t);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].title, "hypervisor pve1 (pve node pve1) · 2 guest(s)");
        assert_eq!(g[0].items[2].node, None);
        let out = svg(&g);
        assert!(
            out.contains("<a href=\"/nodes/web\" class=\"node bad\" data-node=\"web\">"),
            "{out}"
        );
        assert!(
            out.contains(
                "<g class=\"node neutral\"><title>qemu 102 spare: no enrolled node inside</title>"
            ),
            "{out}"
        );
        assert!(out.contains("on no hypervisor · 1 node(s)"), "{out}");
        assert!(notes(&t).contains("ceph &lt;x&gt; is HEALTH_WARN"));
    }
}
