//! The topology as an indented tree for the terminal: each hypervisor with its guests (VMID,
//! kind, the node inside and whether it is online, its k3s role), the nodes on no hypervisor,
//! then clusters, pools, alerts (`!`) and problems (`?`). Names come from facts and are
//! escaped.

use std::fmt::Write;

use lab_proto::topology::{NodeRef, Topology};

use crate::output::{escape, paint};

fn node(n: &NodeRef, color: bool) -> String {
    let state = if n.online {
        paint("online", "32", color)
    } else {
        paint("offline", "31", color)
    };
    let role = n
        .k3s_role
        .as_deref()
        .map(|r| format!(", k3s {}", escape(r)))
        .unwrap_or_default();
    format!("{} ({state}{role})", escape(&n.name))
}

fn names(nodes: &[NodeRef]) -> String {
    if nodes.is_empty() {
        return "-".into();
    }
    let v: Vec<String> = nodes.iter().map(|n| escape(&n.name).into_owned()).collect();
    v.join(", ")
}

/// Renders the tree; `color` paints online green and offline red.
pub fn render(t: &Topology, color: bool) -> String {
    let mut s = String::new();
    for h in &t.hypervisors {
        let mut about = vec![format!("pve node {}", escape(&h.pve_node))];
        if let Some(c) = &h.cluster {
            about.push(format!("cluster {}", escape(c)));
        }
        if let Some(v) = &h.version {
            about.push(format!("pve {}", escape(v)));
        }
        let _ = writeln!(s, "{} [{}]", node(&h.node, color), about.join(", "));
        for (i, g) in h.guests.iter().enumerate() {
            let branch = if i + 1 == h.guests.len() {
                "└─"
            } else {
                "├─"
            };
            let name = g.name.as_deref().map(escape).unwrap_or_default();
            let inside = match (&g.node, g.template, &g.uuid) {
                (_, true, _) => "template".to_owned(),
                (Some(n), ..) => format!("→ {}", node(n, color)),
                (None, _, Some(_)) => "no enrolled node".to_owned(),
                (None, _, None) => "no enrolled node (no smbios1 uuid to match)".to_owned(),
            };
            let _ = writeln!(
                s,
                "{branch} {} {} {name}  {inside}",
                g.vmid,
                g.kind.as_str()
            );
        }
    }
    if !t.standalone.is_empty() {
        let _ = writeln!(s, "on no hypervisor:");
        for n in &t.standalone {
            let _ = writeln!(s, "  {}", node(n, color));
        }
    }
    for c in &t.k3s {
        let _ = writeln!(
            s,
            "k3s cluster {}: servers {}; agents {}",
            escape(&c.id),
            names(&c.servers),
            names(&c.agents)
        );
    }
    for c in &t.ceph {
        let health = c.health.as_deref().unwrap_or("health unknown");
        let summary = c
            .summary
            .as_deref()
            .map(|x| format!(", {}", escape(x)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "ceph {}: {}{summary}; hosts {}",
            escape(&c.fsid),
            escape(health),
            names(&c.hosts)
        );
    }
    for c in &t.postgresql {
        let head = match (&c.primary, &c.upstream) {
            (Some(p), _) => format!(
                "primary {} {}{}",
                escape(&p.node.name),
                escape(&p.cluster),
                p.port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
            (None, Some(u)) => format!("primary {} (not an enrolled node)", escape(u)),
            (None, None) => "primary unknown".into(),
        };
        let standbys: Vec<String> = c
            .standbys
            .iter()
            .map(|sb| {
                let lag = sb
                    .lag_bytes
                    .map(|b| format!(" (lag {})", crate::output::bytes(b)))
                    .unwrap_or_default();
                format!("{} {}{lag}", escape(&sb.node.name), escape(&sb.cluster))
            })
            .collect();
        let standbys = if standbys.is_empty() {
            "-".into()
        } else {
            standbys.join(", ")
        };
        let _ = writeln!(s, "postgresql {head} → standbys {standbys}");
    }
    for p in &t.storage {
        let mounted = match p.mounted {
            Some(false) => " (not mounted)",
            _ => "",
        };
        let members: Vec<String> = p.members.iter().map(|m| escape(m).into_owned()).collect();
        let _ = writeln!(
            s,
            "{} {} on {}{mounted}: {}",
            escape(&p.kind),
            escape(&p.name),
            escape(&p.node),
            members.join(", ")
        );
    }
    for a in &t.alerts {
        let _ = writeln!(s, "{} {}", paint("!", "33", color), escape(a));
    }
    for p in &t.problems {
        let _ = writeln!(s, "? {}", escape(p));
    }
    if s.is_empty() {
        s.push_str("no nodes have reported facts yet\n");
    }
    s
}
