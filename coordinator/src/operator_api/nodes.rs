//! `ListNodes` and the node as operators see it. A listing is either a walk by name with
//! page tokens (labctl's tables, scripts reading every node) or a sorted listing read by offset
//! with the total count (the dashboard's node table shows page N of a sorted view); see
//! `ListNodesRequest` for which is which.

use lab_proto::selector::Selector;
use lab_proto::v1::{ListNodesRequest, ListNodesResponse, Node};

use super::OperatorApi;
use crate::error::ApiError;
use crate::inventory::{self, select_from, NodeEntry, SortedRequest};
use crate::listing::{self, order::OrderBy};
use crate::paging::{page_size, Page, MAX_NODES_PAGE, PAGE_BYTES};

impl OperatorApi {
    /// A node as operators see it; with `keep`, its facts only at those JSON pointers (none:
    /// no facts) instead of the whole document.
    pub(super) fn node_view_with(&self, entry: NodeEntry, keep: Option<&[String]>) -> Node {
        let NodeEntry {
            record: rec,
            facts,
            facts_doc,
            labels,
        } = entry;
        let online = self.coord.sessions.is_online(&rec.name);
        let last_seen = self.last_seen(&rec);
        let (facts_json, facts_collected_unix_ms) = facts
            .map(|f| match keep {
                None => (f.json, f.collected_unix_ms),
                Some([]) => (String::new(), f.collected_unix_ms),
                Some(paths) => (
                    listing::keep_facts(&facts_doc, paths).to_string(),
                    f.collected_unix_ms,
                ),
            })
            .unwrap_or_default();
        Node {
            online,
            last_seen_unix_ms: last_seen,
            labels: labels.into_iter().collect(),
            facts_collected_unix_ms,
            enrolled_unix_ms: rec.enrolled_unix_ms,
            revoked: rec.revoked,
            agent_version: rec.agent_version,
            boot_id: rec.boot_id,
            facts_json,
            cert_not_after_unix_ms: rec.cert_not_after_unix_ms,
            age_recipient: rec.age_recipient,
            address: rec.last_address,
            name: rec.name,
        }
    }

    /// A node's last contact: its session's, else the stored one.
    fn last_seen(&self, rec: &lab_proto::store::v1::NodeRecord) -> i64 {
        self.coord
            .sessions
            .last_seen_ms(&rec.name)
            .unwrap_or(rec.last_seen_unix_ms)
    }

    /// One `ListNodes` answer.
    pub(super) fn list_node_page(
        &self,
        req: ListNodesRequest,
    ) -> Result<ListNodesResponse, ApiError> {
        let selector: Selector = req.selector.parse()?;
        listing::check_fact_paths(&req.fact_paths).map_err(ApiError::InvalidArgument)?;
        let keep = req.omit_facts.then_some(req.fact_paths.as_slice());
        let need = listing::facts_need(&selector, keep);
        let mut page = Page::new(page_size(req.page_size, MAX_NODES_PAGE), PAGE_BYTES);
        let online = self.online();
        let sorted = !req.order_by.is_empty() || req.descending || req.offset > 0;
        if sorted {
            if !req.page_token.is_empty() {
                return Err(ApiError::InvalidArgument(
                    "page_token continues a walk by name; a sorted listing (order_by, \
                     descending or offset) pages with offset"
                        .into(),
                ));
            }
            let order = OrderBy::parse(&req.order_by).map_err(ApiError::InvalidArgument)?;
            let sorted = inventory::select_sorted(
                &self.coord.store,
                &selector,
                online,
                &|rec| self.last_seen(rec),
                &SortedRequest {
                    order: &order,
                    descending: req.descending,
                    offset: req.offset as usize,
                    limit: page_size(req.page_size, MAX_NODES_PAGE),
                    need,
                },
            )?;
            for entry in sorted.entries {
                if page.push(self.node_view_with(entry, keep)).is_err() {
                    break;
                }
            }
            return Ok(ListNodesResponse {
                nodes: page.into_items(),
                next_page_token: String::new(),
                total: sorted.total,
                online: sorted.online,
            });
        }
        let mut next_page_token = String::new();
        for entry in select_from(&self.coord.store, &selector, &req.page_token, online, need)? {
            if let Err(left_out) = page.push(self.node_view_with(entry?, keep)) {
                next_page_token = left_out.name;
                break;
            }
        }
        Ok(ListNodesResponse {
            nodes: page.into_items(),
            next_page_token,
            ..Default::default()
        })
    }
}
