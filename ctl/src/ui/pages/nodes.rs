//! `GET /nodes?l=SELECTOR&sort=COLUMN&desc=1&page=N`: the node table. The selector box takes
//! the grammar of `labctl nodes -l` and shows a syntax error with the caret under the spot, as
//! labctl prints it; nothing is asked of the coordinator then. Offline (and revoked) nodes come
//! first unless another column is chosen; 100 rows a page. The coordinator sorts and sends only
//! the page shown (a sorted `ListNodes` with an offset), with the count of all matches, so
//! 10,000 nodes stay quick.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use serde::Deserialize;

use super::Paging;
use crate::cmd::nodes::{status, view, NodeView, DERIVED, VIEW_FACTS};
use crate::output;
use crate::ui::html::{self, time, Esc, Nav, Url};
use crate::ui::server::{render, PageResult, Ui};
use lab_proto::v1::{ListNodesRequest, ListNodesResponse};

/// Rows a page.
const PER_PAGE: u32 = 100;

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

    /// The coordinator's order for this column (`ListNodesRequest.order_by`).
    fn order_by(self) -> &'static str {
        match self {
            Column::Status => "status",
            Column::Name => "name",
            Column::Os => "os",
            Column::Arch => "label:arch",
            Column::Virt => "label:virt",
            Column::Cpu => "cpus",
            Column::Memory => "memory",
            Column::Seen => "last_seen",
            Column::Agent => "agent_version",
        }
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

/// The sorted listing's page `page` (1-based) of `per` rows: without the fact documents but
/// their platform part.
fn request(selector: &str, column: Column, descending: bool, page: usize) -> ListNodesRequest {
    ListNodesRequest {
        selector: selector.to_owned(),
        page_size: PER_PAGE,
        omit_facts: true,
        fact_paths: VIEW_FACTS.iter().map(|p| (*p).to_owned()).collect(),
        order_by: column.order_by().to_owned(),
        descending,
        offset: u32::try_from(page.max(1) - 1)
            .unwrap_or(u32::MAX)
            .saturating_mul(PER_PAGE),
        ..Default::default()
    }
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
    let asked = p.page.unwrap_or(1).max(1);
    let mut answer: ListNodesResponse = client
        .list_nodes(request(&selector, column, descending, asked))
        .await?
        .into_inner();
    let paging = Paging::new(Some(asked), PER_PAGE as usize, answer.total as usize);
    if paging.page != asked {
        // A page past the end (the fleet shrank, or a hand-made URL): the last one.
        answer = client
            .list_nodes(request(&selector, column, descending, paging.page))
            .await?
            .into_inner();
    }
    let views: Vec<NodeView> = answer.nodes.into_iter().map(|n| view(n, false)).collect();
    let now = output::now_ms();
    let _ = write!(
        body,
        "<p id=\"nodes-summary\">{} node(s){}, {} not online</p>",
        answer.total,
        if selector.is_empty() {
            String::new()
        } else {
            format!(" matching <code>{}</code>", Esc(&selector))
        },
        answer.total.saturating_sub(answer.online),
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
    for v in &views {
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

    #[test]
    fn every_column_asks_the_coordinator_for_an_order_it_knows() {
        use lab_coordinator::listing::order::OrderBy;
        for c in Column::ALL {
            assert!(OrderBy::parse(c.order_by()).is_ok(), "{c:?}");
        }
        let r = request("os=debian", Column::parse(""), false, 3);
        assert_eq!(
            (r.order_by.as_str(), r.offset, r.page_size, r.descending),
            ("status", 200, 100, false)
        );
        assert_eq!(request("", Column::Cpu, true, 0).offset, 0);
        assert_eq!(request("", Column::Cpu, true, usize::MAX).offset, u32::MAX);
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
