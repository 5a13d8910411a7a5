//! Job ids accepted by unique prefix, as git accepts commit ids: `labctl job show 19a1f` finds
//! the one job whose id starts so among the newest [`SEARCHED`] jobs; an ambiguous prefix is an
//! error listing the candidates. The decision is the pure [`resolve`].

use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::ListJobsRequest;
use tonic::transport::Channel;

use crate::failure::{from_status, Failure};

/// Length of a full job id (13 hex digits of milliseconds, 6 random).
const FULL_LEN: usize = 19;

/// Newest jobs searched for a prefix.
pub const SEARCHED: u32 = 500;

/// Candidates named in an "ambiguous" error.
const NAMED: usize = 10;

/// The one id in `ids` that starts with `prefix`. Pure.
pub fn resolve(prefix: &str, ids: &[String]) -> Result<String, Failure> {
    if let Some(exact) = ids.iter().find(|id| *id == prefix) {
        return Ok(exact.clone());
    }
    let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Failure::Failed(format!(
            "no job id starts with '{prefix}' among the newest {SEARCHED} jobs; list them with 'labctl jobs'"
        ))),
        many => {
            let mut names: Vec<&str> = many.iter().take(NAMED).map(|s| s.as_str()).collect();
            if many.len() > NAMED {
                names.push("...");
            }
            Err(Failure::Usage(format!(
                "job id prefix '{prefix}' is ambiguous: {} jobs match ({}); give more digits",
                many.len(),
                names.join(", ")
            )))
        }
    }
}

/// `id` itself when it is a full id, else the one recent job id it is a prefix of.
pub async fn job_id(
    client: &mut OperatorServiceClient<Channel>,
    id: String,
) -> anyhow::Result<String> {
    if id.len() >= FULL_LEN || id.is_empty() {
        return Ok(id);
    }
    // Only the ids are needed: the pages' tasks are not read further.
    let mut ids: Vec<String> = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_jobs(ListJobsRequest {
                limit: SEARCHED,
                page_token,
                omit_tasks: true,
                ..Default::default()
            })
            .await
            .map_err(from_status)?
            .into_inner();
        ids.extend(page.jobs.into_iter().map(|j| j.job_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(resolve(&id, &ids)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_prefixes_resolve_and_ambiguous_ones_list_candidates() {
        let ids: Vec<String> = [
            "19a1f0c2e3b4d5e6f70",
            "19a1f0c2e3b4d5aaaaa",
            "19b0000000000000001",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            resolve("19b", &ids).ok().as_deref(),
            Some("19b0000000000000001")
        );
        assert_eq!(
            resolve("19a1f0c2e3b4d5e", &ids).ok().as_deref(),
            Some("19a1f0c2e3b4d5e6f70")
        );
        let e = resolve("19a", &ids)
            .err()
            .map(|e| (e.exit_code(), e.to_string()));
        assert_eq!(
            e,
            Some((
                2,
                "job id prefix '19a' is ambiguous: 2 jobs match (19a1f0c2e3b4d5e6f70, 19a1f0c2e3b4d5aaaaa); give more digits".into()
            ))
        );
        let e = resolve("ff", &ids)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("no job id starts with 'ff' among the newest 500 jobs"),
            "{e}"
        );
    }
}
