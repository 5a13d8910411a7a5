//! `GET /topology`: the fleet as an SVG picture. Until the coordinator derives the hypervisor →
//! VM → k3s tree, nodes are grouped by their `virt` label (kvm, lxc, docker, none, …); each
//! node is a box coloured by its status and links to its page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use lab_proto::v1::Node;

use crate::ui::html::{Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// Boxes a row.
const COLUMNS: usize = 6;
/// Boxes drawn per group; the rest is a link to the node list.
const MAX_PER_GROUP: usize = 300;
const BOX_W: usize = 150;
const BOX_H: usize = 30;
const GAP: usize = 10;
const HEADER: usize = 34;

/// The SVG of `nodes` grouped by `virt`. Pure.
pub fn svg(nodes: &[Node]) -> String {
    let mut groups: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
    for n in nodes {
        let virt = n
            .labels
            .get("virt")
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        groups.entry(virt).or_default().push(n);
    }
    let width = COLUMNS * (BOX_W + GAP) + GAP;
    let mut y = GAP;
    let mut body = String::new();
    for (virt, members) in &groups {
        let shown = members.len().min(MAX_PER_GROUP);
        let rows = shown.div_ceil(COLUMNS).max(1);
        let more = members.len() - shown;
        let height = HEADER + rows * (BOX_H + GAP) + if more > 0 { 24 } else { 0 };
        let _ = write!(
            body,
            "<g class=\"group\" data-virt=\"{v}\"><rect class=\"frame\" x=\"1\" y=\"{y}\" width=\"{w}\" height=\"{height}\" rx=\"8\"/>\
<text class=\"title\" x=\"{tx}\" y=\"{ty}\">virt={v} · {count} node(s)</text>",
            v = Esc(virt),
            w = width - 2,
            tx = GAP + 4,
            ty = y + 22,
            count = members.len(),
        );
        for (i, n) in members.iter().take(shown).enumerate() {
            let x = GAP + (i % COLUMNS) * (BOX_W + GAP);
            let by = y + HEADER + (i / COLUMNS) * (BOX_H + GAP);
            let status = if n.revoked {
                "revoked"
            } else if n.online {
                "online"
            } else {
                "offline"
            };
            let label: String = if n.name.chars().count() > 18 {
                n.name.chars().take(17).collect::<String>() + "…"
            } else {
                n.name.clone()
            };
            let _ = write!(
                body,
                "<a href=\"/nodes/{url}\" class=\"node {class}\" data-node=\"{name}\"><title>{name} ({status})</title>\
<rect x=\"{x}\" y=\"{by}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"5\"/>\
<text x=\"{tx}\" y=\"{ty}\">{label}</text></a>",
                url = Url(&n.name),
                class = crate::ui::html::state_class(status),
                name = Esc(&n.name),
                tx = x + 8,
                ty = by + 20,
                label = Esc(&label),
            );
        }
        if more > 0 {
            let _ = write!(
                body,
                "<a href=\"/nodes?l={}\"><text class=\"more\" x=\"{}\" y=\"{}\">and {more} more…</text></a>",
                Url(&format!("virt={virt}")),
                GAP + 4,
                y + height - 8
            );
        }
        body.push_str("</g>");
        y += height + GAP;
    }
    format!(
        "<svg id=\"topology\" class=\"topology\" viewBox=\"0 0 {width} {y}\" role=\"img\" aria-label=\"nodes grouped by virtualization\" xmlns=\"http://www.w3.org/2000/svg\">{body}</svg>"
    )
}

/// `GET /topology`.
pub async fn get(State(ui): State<Arc<Ui>>) -> PageResult {
    let who = ui.who().await?;
    let nodes = lab_proto::pages::all_nodes(&mut ui.client(), "").await?;
    let body = format!(
        "<p class=\"muted\">Nodes grouped by their <code>virt</code> label; a box is a node (green online, red offline). \
The hypervisor → VM → k3s picture replaces this once the coordinator derives it.</p><div class=\"scroll\">{}</div>",
        svg(&nodes)
    );
    Ok(render(&ui.frame("Topology", Nav::Topology, &who), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_grouped_by_virt_and_link_to_their_page() {
        let node = |name: &str, virt: &str, online: bool| Node {
            name: name.into(),
            online,
            labels: [("virt".to_owned(), virt.to_owned())].into(),
            ..Default::default()
        };
        let out = svg(&[
            node("a", "kvm", true),
            node("b", "lxc", false),
            node("c", "kvm", true),
        ]);
        assert!(out.contains("virt=kvm · 2 node(s)"), "{out}");
        assert!(out.contains("virt=lxc · 1 node(s)"), "{out}");
        assert!(
            out.contains("<a href=\"/nodes/b\" class=\"node bad\""),
            "{out}"
        );
    }
}
