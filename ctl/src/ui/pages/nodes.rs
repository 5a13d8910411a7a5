//! `GET /nodes?l=SELECTOR&sort=COLUMN&desc=1&page=N`: the node table. The selector box takes
//! the grammar of `labctl nodes -l` and shows a syntax error with the caret under the spot, as
//! labctl prints it; nothing is asked of the coordinator then. Offline (and revoked) nodes come
//! first unless another column is chosen; 100 rows a page, so 10,000 nodes stay quick.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use serde::Deserialize;

use super::Paging;
use crate::cmd::nodes::{status, view, NodeView, DERIVED, VIEW_FACTS};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};

/// Rows a page.
const PER_PAGE: usize = 100;

/// Query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    /// Selector.
    #[serde(default)]
    pub l: String,
    /// Column to sort by (see [`Column`]).
    #[serde(default)]
    pub sort: String,
    /// "1" sorts descending.
    #[serde(default)]
    pub desc: String,
    /// 1-based page.
    pub page: Option<usize>,
}

/// Sortable columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Offline first, then by name (the default).
    Status,
    /// Node name.
    Name,
    /// OS and version.
    Os,
    /// Architecture.
    Arch,
    /// Virtualization.
    Virt,
    /// Logical CPUs.
    Cpu,
    /// Memory.
    Memory,
    /// Last contact.
    Seen,
    /// Agent version.
    Agent,
}

impl Column {
    const ALL: [Column; 9] = [
        Column::Name,
        Column::Status,
        Column::Os,
        Column::Arch,
        Column::Virt,
        Column::Cpu,
        Column::Memory,
        Column::Seen,
        Column::Agent,
    ];

    fn key(self) -> &'static str {
        match self {
            Column::Status => "status",
            Column::Name => "name",
            Column::Os => "os",
            Column::Arch => "arch",
            Column::Virt => "virt",
            Column::Cpu => "cpu",
            Column::Memory => "memory",
            Column::Seen => "seen",
            Column::Agent => "agent",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Column::Status => "Status",
            Column::Name => "Name",
            Column::Os => "OS",
            Column::Arch => "Arch",
            Column::Virt => "Virt",
            Column::Cpu => "CPUs",
            Column::Memory => "Memory",
            Column::Seen => "Last seen",
            Column::Agent => "Agent",
        }
    }

    /// The column named `key`; the default (status) for anything else.
    pub fn parse(key: &str) -> Column {
        Column::ALL
            .into_iter()
            .find(|c| c.key() == key)
            .unwrap_or(Column::Status)
    }
}

/// Status rank: revoked, offline, online.
fn rank(v: &NodeView) -> u8 {
    match status(v) {
        "revoked" => 0,
        "offline" => 1,
        _ => 2,
    }
}

fn os(v: &NodeView) -> String {
    match (&v.os, &v.os_version) {
        (Some(os), Some(version)) => format!("{os} {version}"),
        (Some(os), None) => os.clone(),
        _ => String::new(),
    }
}

fn seen_ms(v: &NodeView) -> i64 {
    output::unix_ms(v.last_seen.as_deref())
}

/// Sorts `views` by `column` (ties by name). Pure.
pub fn sort(views: &mut [NodeView], column: Column, descending: bool) {
    let by = |a: &NodeView, b: &NodeView| -> Ordering {
        match column {
            Column::Status => rank(a).cmp(&rank(b)),
            Column::Name => Ordering::Equal,
            Column::Os => os(a).cmp(&os(b)),
            Column::Arch => a.arch.cmp(&b.arch),
            Column::Virt => a.virt.cmp(&b.virt),
            Column::Cpu => a.cpus.cmp(&b.cpus),
            Column::Memory => a.memory_bytes.cmp(&b.memory_bytes),
            Column::Seen => seen_ms(a).cmp(&seen_ms(b)),
            Column::Agent => a.agent_version.cmp(&b.agent_version),
        }
    };
    views.sort_by(|a, b| {
        let o = by(a, b).then_with(|| a.name.cmp(&b.name));
        if descending {
            o.reverse()
        } else {
            o
        }
    });
}

/// The URL of this list with other parameters.
fn href(selector: &str, column: Column, descending: bool, page: usize) -> String {
    let mut url = format!("/nodes?sort={}", column.key());
    if !selector.is_empty() {
        let _ = write!(url, "&l={}", Url(selector));
    }
    if descending {
        url.push_str("&desc=1");
    }
    if page > 1 {
        let _ = write!(url, "&page={page}");
    }
    url
}

/// `GET /nodes`.
pub async fn get(State(ui): State<Arc<Ui>>, Query(p): Query<Params>) -> PageResult {
    let who = ui.who().await?;
    let column = Column::parse(&p.sort);
    let descending = p.desc == "1";
    let selector = p.l.trim().to_owned();
    let hidden = format!(
        "<input type=\"hidden\" name=\"sort\" value=\"{}\">{}",
        column.key(),
        if descending {
            "<input type=\"hidden\" name=\"desc\" value=\"1\">"
        } else {
            ""
        }
    );
    let mut body = super::selector_form(
        "/nodes",
        "Selector",
        &selector,
        "os=debian,role in (nas,k3s),facts.platform.cpus>=4",
        &hidden,
    );
    if let Some(error) = super::selector_error(&selector) {
        body.push_str(&error);
        return Ok(render(&ui.frame("Nodes", Nav::Nodes, &who), &body));
    }
    let mut client = ui.client();
    let nodes = lab_proto::pages::all_nodes_brief(&mut client, &selector, &VIEW_FACTS).await?;
    let mut views: Vec<NodeView> = nodes.into_iter().map(|n| view(n, false)).collect();
    sort(&mut views, column, descending);
    let paging = Paging::new(p.page, PER_PAGE, views.len());
    let now = output::now_ms();
    let offline = views.iter().filter(|v| rank(v) < 2).count();
    let _ = write!(
        body,
        "<p id=\"nodes-summary\">{} node(s){}, {offline} not online</p>",
        views.len(),
        if selector.is_empty() {
            String::new()
        } else {
            format!(" matching <code>{}</code>", Esc(&selector))
        }
    );
    let pager = paging.nav(|n| href(&selector, column, descending, n));
    body.push_str(&pager);
    let mut head = String::new();
    for c in Column::ALL {
        let (desc, mark, sorted) = match (c == column, descending) {
            (true, false) => (true, " ▲", "ascending"),
            (true, true) => (false, " ▼", "descending"),
            (false, _) => (false, "", "none"),
        };
        let _ = write!(
            head,
            "<th aria-sort=\"{sorted}\"><a href=\"{}\">{}{mark}</a></th>",
            Esc(&href(&selector, c, desc, 1)),
            c.title()
        );
    }
    head.push_str("<th>Labels</th>");
    let mut rows = String::new();
    for v in &views[paging.range()] {
        let labels: Vec<String> = v
            .labels
            .iter()
            .filter(|(k, _)| !DERIVED.contains(&k.as_str()))
            .map(|(k, val)| format!("<span class=\"chip\">{}={}</span>", Esc(k), Esc(val)))
            .collect();
        let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "–".into());
        let _ = write!(
            rows,
            "<tr id=\"node-{id}\" data-node=\"{name}\" data-status=\"{st}\">\
<td><a href=\"/nodes/{url}\">{name}</a></td><td>{badge}</td><td>{os}</td><td>{arch}</td>\
<td>{virt}</td><td class=\"num\">{cpus}</td><td class=\"num\">{mem}</td><td>{seen}</td>\
<td>{agent}</td><td>{labels}</td></tr>",
            id = Esc(&v.name),
            name = Esc(&v.name),
            url = Url(&v.name),
            st = status(v),
            badge = html::badge(status(v)),
            os = Esc(&os(v)),
            arch = Esc(&dash(&v.arch)),
            virt = Esc(&dash(&v.virt)),
            cpus = v.cpus.map(|c| c.to_string()).unwrap_or_default(),
            mem = v.memory_bytes.map(output::bytes).unwrap_or_default(),
            seen = time(seen_ms(v), now),
            agent = Esc(&v.agent_version),
            labels = labels.join(" "),
        );
    }
    body.push_str(&super::table("nodes", &head, &rows));
    if paging.pages() > 1 {
        body.push_str(&pager);
    }
    Ok(render(&ui.frame("Nodes", Nav::Nodes, &who), &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, online: bool, cpus: u64) -> NodeView {
        view(
            lab_proto::v1::Node {
                name: name.into(),
                online,
                facts_json: format!("{{\"platform\":{{\"cpus\":{cpus}}}}}"),
                ..Default::default()
            },
            false,
        )
    }

    fn names(v: &[NodeView]) -> Vec<&str> {
        v.iter().map(|n| n.name.as_str()).collect()
    }

    #[test]
    fn offline_first_by_default_then_by_name() {
        let mut v = vec![node("b", true, 1), node("c", false, 8), node("a", true, 4)];
        sort(&mut v, Column::parse(""), false);
        assert_eq!(names(&v), ["c", "a", "b"]);
        sort(&mut v, Column::parse("cpu"), true);
        assert_eq!(names(&v), ["c", "a", "b"]);
        sort(&mut v, Column::parse("name"), false);
        assert_eq!(names(&v), ["a", "b", "c"]);
    }

    #[test]
    fn sort_links_keep_the_selector() {
        assert_eq!(
            href("role in (a,b)", Column::Cpu, true, 2),
            "/nodes?sort=cpu&l=role%20in%20%28a%2Cb%29&desc=1&page=2"
        );
        assert_eq!(href("", Column::Status, false, 1), "/nodes?sort=status");
    }
}
