//! Reading paged lists: `ListNodes`, `ListJobs` and a job's tasks (`GetJob`) answer one page
//! at a time (the coordinator caps a page's length and size) with a token for the next. These
//! helpers follow the tokens to the end, so labctl and scripts see whole lists. They only call
//! RPCs on a client the caller dialled.

use tonic::transport::Channel;
use tonic::Status;

use crate::v1::operator_service_client::OperatorServiceClient;
use crate::v1::{GetJobRequest, JobInfo, ListJobsRequest, ListNodesRequest, Node};

/// Every node `selector` matches, by name.
pub async fn all_nodes(
    client: &mut OperatorServiceClient<Channel>,
    selector: &str,
) -> Result<Vec<Node>, Status> {
    nodes(
        client,
        ListNodesRequest {
            selector: selector.to_owned(),
            ..Default::default()
        },
    )
    .await
}

/// Every node `selector` matches, by name, with only the facts at the JSON pointers
/// `fact_paths` (`ListNodesRequest.omit_facts`): for tables of many nodes. A coordinator from
/// before that option sends whole fact documents, which read the same.
pub async fn all_nodes_brief(
    client: &mut OperatorServiceClient<Channel>,
    selector: &str,
    fact_paths: &[&str],
) -> Result<Vec<Node>, Status> {
    nodes(
        client,
        ListNodesRequest {
            selector: selector.to_owned(),
            omit_facts: true,
            fact_paths: fact_paths.iter().map(|p| (*p).to_owned()).collect(),
            ..Default::default()
        },
    )
    .await
}

/// Every page of `request`'s listing.
async fn nodes(
    client: &mut OperatorServiceClient<Channel>,
    mut request: ListNodesRequest,
) -> Result<Vec<Node>, Status> {
    let mut nodes = Vec::new();
    loop {
        let page = client.list_nodes(request.clone()).await?.into_inner();
        nodes.extend(page.nodes);
        if page.next_page_token.is_empty() {
            return Ok(nodes);
        }
        request.page_token = page.next_page_token;
    }
}

/// Reads the rest of `job`'s tasks when the answer that carried it held only their first page.
pub async fn complete_tasks(
    client: &mut OperatorServiceClient<Channel>,
    job: &mut JobInfo,
) -> Result<(), Status> {
    while !job.next_page_token.is_empty() {
        let page = client
            .get_job(GetJobRequest {
                job_id: job.job_id.clone(),
                page_token: std::mem::take(&mut job.next_page_token),
                ..Default::default()
            })
            .await?
            .into_inner();
        job.tasks.extend(page.tasks);
        job.next_page_token = page.next_page_token;
    }
    Ok(())
}

/// One job with all its tasks.
pub async fn whole_job(
    client: &mut OperatorServiceClient<Channel>,
    job_id: &str,
) -> Result<JobInfo, Status> {
    let mut job = client
        .get_job(GetJobRequest {
            job_id: job_id.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    complete_tasks(client, &mut job).await?;
    Ok(job)
}

/// The `limit` newest jobs (0 = the server's default of 100), newest first, with all their
/// tasks.
pub async fn recent_jobs(
    client: &mut OperatorServiceClient<Channel>,
    limit: u32,
) -> Result<Vec<JobInfo>, Status> {
    let mut jobs = list_jobs(client, limit, false).await?;
    for job in &mut jobs {
        complete_tasks(client, job).await?;
    }
    Ok(jobs)
}

/// The `limit` newest jobs, newest first, with their counts but without their tasks (cheap at
/// any fleet size).
pub async fn recent_job_summaries(
    client: &mut OperatorServiceClient<Channel>,
    limit: u32,
) -> Result<Vec<JobInfo>, Status> {
    list_jobs(client, limit, true).await
}

/// Every page of `ListJobs` for the `limit` newest jobs.
async fn list_jobs(
    client: &mut OperatorServiceClient<Channel>,
    limit: u32,
    omit_tasks: bool,
) -> Result<Vec<JobInfo>, Status> {
    let mut jobs = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_jobs(ListJobsRequest {
                limit,
                page_token,
                omit_tasks,
                ..Default::default()
            })
            .await?
            .into_inner();
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return Ok(jobs);
        }
        page_token = page.next_page_token;
    }
}
