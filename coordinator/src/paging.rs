//! Pages of list answers. Every list RPC answers at most one page: a number of items the server
//! caps and a byte size the server caps, plus a token for the rest, so no answer grows past the
//! response limit whatever the fleet size, the facts or the task results. Tokens name where the
//! next page starts (a node name, a job id, a task index); a client passes them back unchanged
//! (`lab_proto::pages` follows them).

use prost::Message;

use crate::error::ApiError;

/// Bytes of items in one answer. One item more may pass it, and no item is larger than a few
/// MiB (facts, specs and results are capped), so an answer stays far below
/// `MAX_OPERATOR_RESPONSE_BYTES`.
pub const PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Most nodes in one `ListNodes` answer.
pub const MAX_NODES_PAGE: usize = 1000;
/// Most jobs in one `ListJobs` answer.
pub const MAX_JOBS_PAGE: usize = 100;
/// Most tasks of one job in one answer.
pub const MAX_TASKS_PAGE: usize = 1000;

/// The page length for a request: `requested`, the maximum when 0 or above it.
pub fn page_size(requested: u32, max: usize) -> usize {
    match requested as usize {
        0 => max,
        n => n.min(max),
    }
}

/// Collects the items of one page while they fit its length and byte budget (the first item
/// always fits, so every page makes progress).
#[derive(Debug)]
pub struct Page<T> {
    items: Vec<T>,
    bytes: usize,
    size: usize,
    budget: usize,
}

impl<T: Message> Page<T> {
    /// A page of at most `size` items and about `budget` bytes.
    pub fn new(size: usize, budget: usize) -> Self {
        Page {
            items: Vec::new(),
            bytes: 0,
            size: size.max(1),
            budget,
        }
    }

    /// Whether no further item fits.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.size || self.bytes >= self.budget
    }

    /// Bytes of the budget still free.
    pub fn remaining(&self) -> usize {
        self.budget.saturating_sub(self.bytes)
    }

    /// Adds `item`, or hands it back when the page is full without it.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        let len = item.encoded_len();
        let fits = self.items.is_empty() || self.bytes + len <= self.budget;
        if self.items.len() >= self.size || !fits {
            return Err(item);
        }
        self.bytes += len;
        self.items.push(item);
        Ok(())
    }

    /// The items, in the order pushed.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

/// A task page token: the index of the first task of the page.
pub fn task_index(token: &str) -> Result<usize, ApiError> {
    if token.is_empty() {
        return Ok(0);
    }
    token.parse().map_err(|_| bad_token(token))
}

/// A job page token: how many jobs the listing returned before, and the id of the next one.
pub fn job_position(token: &str) -> Result<(usize, Option<String>), ApiError> {
    if token.is_empty() {
        return Ok((0, None));
    }
    let (count, id) = token.split_once(':').ok_or_else(|| bad_token(token))?;
    let count = count.parse().map_err(|_| bad_token(token))?;
    Ok((count, Some(id.to_owned())))
}

/// The token of a job page that starts at job `id` after `count` jobs.
pub fn job_token(count: usize, id: &str) -> String {
    format!("{count}:{id}")
}

fn bad_token(token: &str) -> ApiError {
    ApiError::InvalidArgument(format!(
        "page token '{token}' is not one this coordinator gave out; list again without a page token"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::Node;

    fn node(name: &str, facts: usize) -> Node {
        Node {
            name: name.into(),
            facts_json: "x".repeat(facts),
            ..Default::default()
        }
    }

    #[test]
    fn page_sizes_are_capped() {
        assert_eq!(page_size(0, 100), 100);
        assert_eq!(page_size(7, 100), 7);
        assert_eq!(page_size(100_000, 100), 100);
    }

    #[test]
    fn a_page_stops_at_its_length() {
        let mut page = Page::new(2, PAGE_BYTES);
        assert!(page.push(node("a", 1)).is_ok());
        assert!(page.push(node("b", 1)).is_ok());
        assert!(page.is_full());
        assert_eq!(page.push(node("c", 1)).unwrap_err().name, "c");
        assert_eq!(page.into_items().len(), 2);
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_but_always_takes_one_item() {
        let mut page = Page::new(100, 1000);
        assert!(
            page.push(node("big", 5000)).is_ok(),
            "the first item always fits"
        );
        assert!(page.is_full());
        assert!(page.push(node("small", 1)).is_err());
        let mut page = Page::new(100, 1000);
        assert!(page.push(node("a", 600)).is_ok());
        assert!(page.push(node("b", 600)).is_err());
        assert!(!page.is_full());
        assert!(page.remaining() < 400);
    }

    #[test]
    fn tokens_round_trip_and_bad_ones_are_refused() {
        assert_eq!(task_index("").unwrap(), 0);
        assert_eq!(task_index("1000").unwrap(), 1000);
        assert!(task_index("x").is_err());
        assert_eq!(job_position("").unwrap(), (0, None));
        let token = job_token(100, "0193-abc");
        assert_eq!(
            job_position(&token).unwrap(),
            (100, Some("0193-abc".into()))
        );
        let err = job_position("nonsense").unwrap_err().to_string();
        assert!(err.contains("list again without a page token"), "{err}");
    }
}
