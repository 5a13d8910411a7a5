//! The topology as a graph (boxes and arrows) and its DOT and Mermaid text. Hosts point to
//! their guests, guests to the node inside; nodes point to their k3s cluster (labelled with the
//! role), Ceph cluster and storage pools; a PostgreSQL primary points to its standbys. Offline
//! nodes are dashed, guests without an enrolled node dotted, alerts in red.

use std::collections::BTreeMap;
use std::fmt::Write;

use lab_proto::topology::{NodeRef, Topology};

/// What a box stands for (its shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Proxmox host.
    Host,
    /// A guest of a host.
    Guest,
    /// An enrolled node.
    Node,
    /// A cluster (k3s, Ceph).
    Cluster,
    /// A PostgreSQL server or storage pool.
    Service,
}

/// One box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// Stable id (`n:<node>`, `g:<host>:<vmid>`, …).
    pub id: String,
    /// Lines of text.
    pub label: Vec<String>,
    /// Shape.
    pub kind: Kind,
    /// Drawn faint: an offline node, a guest without an enrolled node.
    pub faint: bool,
    /// Drawn in red: the subject of an alert (unhealthy Ceph).
    pub alert: bool,
}

/// The boxes and arrows.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    /// Boxes, in insertion order.
    pub vertices: Vec<Vertex>,
    /// Arrows: from, to, label.
    pub edges: Vec<(String, String, String)>,
    index: BTreeMap<String, usize>,
}

impl Graph {
    fn vertex(&mut self, id: String, label: Vec<String>, kind: Kind, faint: bool) -> String {
        if !self.index.contains_key(&id) {
            self.index.insert(id.clone(), self.vertices.len());
            self.vertices.push(Vertex {
                id: id.clone(),
                label,
                kind,
                faint,
                alert: false,
            });
        }
        id
    }

    fn node(&mut self, n: &NodeRef) -> String {
        let mut label = vec![n.name.clone()];
        if !n.online {
            label.push("offline".into());
        }
        self.vertex(format!("n:{}", n.name), label, Kind::Node, !n.online)
    }

    fn edge(&mut self, from: &str, to: &str, label: &str) {
        self.edges
            .push((from.to_owned(), to.to_owned(), label.to_owned()));
    }

    /// The index of vertex `id`.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Builds the graph of `t`.
    pub fn of(t: &Topology) -> Graph {
        let mut g = Graph::default();
        for h in &t.hypervisors {
            let host = g.node(&h.node);
            let v = g.position(&host).map(|i| &mut g.vertices[i]);
            if let Some(v) = v {
                v.kind = Kind::Host;
                v.label.push(format!("pve node {}", h.pve_node));
            }
            for guest in &h.guests {
                let mut label = vec![format!("{} {}", guest.vmid, guest.kind.as_str())];
                label.extend(guest.name.clone());
                if guest.node.is_none() {
                    label.push(if guest.template {
                        "template".into()
                    } else {
                        "not enrolled".into()
                    });
                }
                let id = g.vertex(
                    format!("g:{}:{}", h.node.name, guest.vmid),
                    label,
                    Kind::Guest,
                    guest.node.is_none(),
                );
                g.edge(&host, &id, "");
                if let Some(n) = &guest.node {
                    let inner = g.node(n);
                    g.edge(&id, &inner, "");
                }
            }
        }
        for n in &t.standalone {
            g.node(n);
        }
        for c in &t.k3s {
            let id = g.vertex(
                format!("k3s:{}", c.id),
                vec!["k3s".into(), c.id.clone()],
                Kind::Cluster,
                false,
            );
            for (members, role) in [(&c.servers, "server"), (&c.agents, "agent")] {
                for n in members {
                    let from = g.node(n);
                    g.edge(&from, &id, role);
                }
            }
        }
        for c in &t.ceph {
            let health = c.health.clone().unwrap_or_else(|| "health unknown".into());
            let bad = c.health.as_deref().is_some_and(|h| h != "HEALTH_OK");
            let id = g.vertex(
                format!("ceph:{}", c.fsid),
                vec!["ceph".into(), c.fsid.clone(), health],
                Kind::Cluster,
                false,
            );
            if let Some(i) = g.position(&id) {
                g.vertices[i].alert = bad;
            }
            for n in &c.hosts {
                let from = g.node(n);
                g.edge(&from, &id, "");
            }
        }
        for (i, c) in t.postgresql.iter().enumerate() {
            let primary = match (&c.primary, &c.upstream) {
                (Some(p), _) => {
                    let on = g.node(&p.node);
                    let id = g.vertex(
                        format!("pg:{}:{}", p.node.name, p.cluster),
                        vec!["postgresql primary".into(), p.cluster.clone()],
                        Kind::Service,
                        false,
                    );
                    g.edge(&on, &id, "");
                    id
                }
                (None, upstream) => g.vertex(
                    format!("pg-upstream:{i}"),
                    vec![
                        "postgresql primary".into(),
                        upstream.clone().unwrap_or_else(|| "unknown".into()),
                    ],
                    Kind::Service,
                    true,
                ),
            };
            for sb in &c.standbys {
                let on = g.node(&sb.node);
                let id = g.vertex(
                    format!("pg:{}:{}", sb.node.name, sb.cluster),
                    vec!["postgresql standby".into(), sb.cluster.clone()],
                    Kind::Service,
                    false,
                );
                g.edge(&on, &id, "");
                g.edge(&primary, &id, "streams to");
            }
        }
        for p in &t.storage {
            let on = g.node(&NodeRef {
                name: p.node.clone(),
                online: true,
                k3s_role: None,
            });
            let id = g.vertex(
                format!("pool:{}:{}:{}", p.node, p.kind, p.name),
                vec![p.kind.clone(), p.name.clone()],
                Kind::Service,
                p.mounted == Some(false),
            );
            g.edge(&on, &id, "");
        }
        g
    }
}

/// Text for inside a DOT double-quoted string; a line break becomes `\n`.
fn dot_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            '\n' => s.push_str("\\n"),
            c if c.is_control() => s.push(' '),
            c => s.push(c),
        }
    }
    s
}

/// A DOT double-quoted string.
fn dot_quote(text: &str) -> String {
    format!("\"{}\"", dot_escape(text))
}

/// Graphviz DOT of the topology.
pub fn dot(t: &Topology) -> String {
    let g = Graph::of(t);
    let mut s = String::from(
        "digraph lab {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"sans-serif\", fontsize=11];\n  edge [fontname=\"sans-serif\", fontsize=9];\n",
    );
    for v in &g.vertices {
        let shape = match v.kind {
            Kind::Host => "box3d",
            Kind::Guest => "box",
            Kind::Node => "box",
            Kind::Cluster => "ellipse",
            Kind::Service => "cylinder",
        };
        let mut style = vec![if v.kind == Kind::Node {
            "rounded"
        } else {
            "solid"
        }];
        if v.faint {
            style.push("dashed");
        }
        let color = if v.alert {
            ", color=red, fontcolor=red"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} [label={}, shape={shape}, style={}{color}];",
            dot_quote(&v.id),
            dot_quote(&v.label.join("\n")),
            dot_quote(&style.join(","))
        );
    }
    for (from, to, label) in &g.edges {
        let label = if label.is_empty() {
            String::new()
        } else {
            format!(" [label={}]", dot_quote(label))
        };
        let _ = writeln!(s, "  {} -> {}{label};", dot_quote(from), dot_quote(to));
    }
    s.push_str("}\n");
    s
}

/// Text inside a Mermaid `["…"]` label.
fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => "#quot;".to_owned(),
            '<' => "#lt;".to_owned(),
            '>' => "#gt;".to_owned(),
            '#' => "#35;".to_owned(),
            c if c.is_control() => " ".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A Mermaid flowchart of the topology (ids `v0`, `v1`, … in vertex order).
pub fn mermaid(t: &Topology) -> String {
    let g = Graph::of(t);
    let mut s = String::from("flowchart TB\n");
    for (i, v) in g.vertices.iter().enumerate() {
        let text: Vec<String> = v.label.iter().map(|l| mermaid_text(l)).collect();
        let text = text.join("<br/>");
        let (open, close) = match v.kind {
            Kind::Host => ("[[", "]]"),
            Kind::Guest => ("[", "]"),
            Kind::Node => ("(", ")"),
            Kind::Cluster => ("((", "))"),
            Kind::Service => ("[(", ")]"),
        };
        let _ = writeln!(s, "  v{i}{open}\"{text}\"{close}");
    }
    for (from, to, label) in &g.edges {
        let (Some(a), Some(b)) = (g.position(from), g.position(to)) else {
            continue;
        };
        if label.is_empty() {
            let _ = writeln!(s, "  v{a} --> v{b}");
        } else {
            let _ = writeln!(s, "  v{a} -->|\"{}\"| v{b}", mermaid_text(label));
        }
    }
    let faint: Vec<String> = g
        .vertices
        .iter()
        .enumerate()
        .filter(|(_, v)| v.faint)
        .map(|(i, _)| format!("v{i}"))
        .collect();
    if !faint.is_empty() {
        let _ = writeln!(s, "  classDef faint stroke-dasharray: 4 3,color:#777");
        let _ = writeln!(s, "  class {} faint", faint.join(","));
    }
    let alert: Vec<String> = g
        .vertices
        .iter()
        .enumerate()
        .filter(|(_, v)| v.alert)
        .map(|(i, _)| format!("v{i}"))
        .collect();
    if !alert.is_empty() {
        let _ = writeln!(s, "  classDef alert stroke:#c00,color:#c00");
        let _ = writeln!(s, "  class {} alert", alert.join(","));
    }
    s
}
