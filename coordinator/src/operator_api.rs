//! `OperatorService`: what labctl and scripts call (schedules are served by
//! [`crate::schedules::api`]). Authorization already happened in
//! [`crate::auth`]; handlers only read the resolved [`Caller`] for auditing.

use std::collections::BTreeMap;
use std::sync::Arc;

use lab_proto::identity::{IdentityError, NodeName};
use lab_proto::limits::MAX_LABELS;
use lab_proto::store::v1::{JobRecord, NodeRecord};
use lab_proto::v1::operator_service_server::OperatorService;
use lab_proto::v1::{
    CancelJobRequest, CountNodesRequest, CountNodesResponse, CreateScheduleRequest,
    CreateTokenRequest, CreateTokenResponse, CreateUserRequest, CreateUserResponse,
    DeleteScheduleRequest, DeleteScheduleResponse, DeleteUserRequest, DeleteUserResponse,
    ForgetBackupsRequest, ForgetBackupsResponse, GetJobRequest, GetNodeRequest, GetScheduleRequest,
    GetTopologyRequest, GetTopologyResponse, JobCounts, JobEvent, JobInfo, LabelNodeRequest,
    ListBackupsRequest, ListBackupsResponse, ListJobsRequest, ListJobsResponse, ListNodesRequest,
    ListNodesResponse, ListSchedulesRequest, ListSchedulesResponse, ListTokensRequest,
    ListTokensResponse, ListUsersRequest, ListUsersResponse, Node, RemoveNodeRequest,
    RemoveNodeResponse, RenewUserRequest, RenewUserResponse, RevokeNodeRequest, RevokeNodeResponse,
    RevokeTokenRequest, RevokeUserRequest, Schedule, SetSchedulePausedRequest, SetUserRoleRequest,
    SubmitJobRequest, SubmitJobResponse, TokenInfo, User, WatchJobRequest, WhoAmIRequest,
    WhoAmIResponse,
};
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::clock::now_ms;
use crate::error::validate_labels;
use crate::error::ApiError;
use crate::inventory::{entry, select_from, NodeEntry};
use crate::listing;
use crate::operators::user_view;
use crate::paging::{self, page_size, Page, MAX_JOBS_PAGE, MAX_TASKS_PAGE, PAGE_BYTES};
use crate::sessions::CloseReason;
use crate::state::Coordinator;
use lab_proto::selector::Selector;

mod nodes;
mod tokens;
use tokens::token_info;

/// The `OperatorService` implementation.
pub struct OperatorApi {
    coord: Arc<Coordinator>,
}

impl OperatorApi {
    /// Handlers over `coord`.
    pub fn new(coord: Arc<Coordinator>) -> Self {
        OperatorApi { coord }
    }

    /// Live state for the derived `status` and `hypervisor` labels.
    fn online(&self) -> &Coordinator {
        &self.coord
    }

    fn node_view(&self, entry: NodeEntry) -> Node {
        self.node_view_with(entry, None)
    }

    fn existing_node(&self, name: &str) -> Result<NodeRecord, ApiError> {
        let name = parse_name::<NodeName>(name)?;
        self.coord.store.node(name.as_str())?.ok_or_else(|| {
            ApiError::NotFound(format!("no node named '{name}'; see 'labctl nodes'"))
        })
    }

    fn existing_job(&self, job_id: &str) -> Result<JobRecord, ApiError> {
        self.coord
            .store
            .job(job_id)?
            .ok_or_else(|| ApiError::NotFound(format!("no job '{job_id}'; see 'labctl jobs'")))
    }

    /// `job` with one page of its tasks: from the task `token` names on, at most `page_size`
    /// tasks and about `budget` bytes of them; `next_page_token` names the first one left out.
    /// A `page_size` of 0 leaves the tasks out (the counts are always there).
    fn job_info(
        &self,
        job: JobRecord,
        token: &str,
        page_size: usize,
        budget: usize,
    ) -> Result<JobInfo, ApiError> {
        // Without tasks the count in the record does (no need to read 10,000 ids).
        let ids = match page_size {
            0 => Vec::new(),
            _ => self.coord.store.task_ids_of(&job)?,
        };
        let counts = JobCounts {
            total: if page_size == 0 {
                job.task_count
            } else {
                ids.len() as u32
            },
            pending: job.pending_tasks,
            finished: job.final_tasks,
            succeeded: job.succeeded_tasks,
            failed: job.failed_tasks,
        };
        let mut page = Page::new(page_size, budget);
        let mut next_page_token = String::new();
        let wanted = if page_size == 0 { 0 } else { ids.len() };
        for (i, id) in ids
            .iter()
            .enumerate()
            .take(wanted)
            .skip(paging::task_index(token)?)
        {
            let Some(info) = self.coord.store.task(id)?.and_then(|t| t.info) else {
                continue;
            };
            if page.push(info).is_err() {
                next_page_token = i.to_string();
                break;
            }
        }
        let mut spec = job.spec;
        // Stored specs hold no secret content; a record from before that rule shows none either.
        if let Some(spec) = spec.as_mut() {
            crate::jobs::secrets::redact(spec);
        }
        Ok(JobInfo {
            tasks: page.into_items(),
            next_page_token,
            job_id: job.job_id,
            spec,
            submitted_by: job.submitted_by,
            submitted_unix_ms: job.submitted_unix_ms,
            done: job.done,
            finished_unix_ms: job.finished_unix_ms,
            cancel_requested: job.cancel_requested,
            counts: Some(counts),
        })
    }

    async fn label(&self, req: LabelNodeRequest) -> Result<Node, ApiError> {
        let mut node = self.existing_node(&req.name)?;
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        validate_labels(&set)?;
        for key in &req.remove {
            if !node.labels.contains_key(key) {
                return Err(ApiError::NotFound(format!(
                    "node '{}' has no operator label '{key}' (derived and agent labels cannot be removed here)",
                    node.name
                )));
            }
        }
        for key in &req.remove {
            node.labels.remove(key);
        }
        node.labels.extend(set);
        // Reserved keys stored before they were reserved never took effect; drop them.
        node.labels
            .retain(|k, _| !lab_proto::labels::is_reserved(k));
        if node.labels.len() > MAX_LABELS {
            return Err(ApiError::InvalidArgument(
                lab_proto::labels::LabelError::TooMany(node.labels.len()).to_string(),
            ));
        }
        self.coord.store.put_node(node.clone()).await?;
        Ok(self.node_view(entry(&self.coord.store, node, self.online())?))
    }

    async fn revoke(&self, name: &str) -> Result<RevokeNodeResponse, ApiError> {
        let mut node = self.existing_node(name)?;
        let name: NodeName = parse_name(&node.name)?;
        if !node.revoked {
            node.revoked = true;
            node.revoked_unix_ms = now_ms();
            self.coord.store.put_node(node).await?;
        }
        let count = self
            .coord
            .store
            .revoke_certificates(&self.coord.node_id(&name).uri())
            .await?;
        let closed = self
            .coord
            .sessions
            .close(name.as_str(), CloseReason::Revoked);
        tracing::warn!(node = %name, certificates = count, session_closed = closed, "node revoked");
        Ok(RevokeNodeResponse {
            certificates_revoked: count,
            session_closed: closed,
        })
    }

    async fn remove(&self, name: &str) -> Result<RemoveNodeResponse, ApiError> {
        self.revoke(name).await?;
        self.coord.store.remove_node(name).await?;
        self.coord.topology.remove(name);
        tracing::warn!(node = %name, "node removed");
        Ok(RemoveNodeResponse {})
    }
}

fn parse_name<T: std::str::FromStr<Err = IdentityError>>(name: &str) -> Result<T, ApiError> {
    name.parse()
        .map_err(|e: IdentityError| ApiError::InvalidArgument(e.to_string()))
}

fn caller_name<T>(req: &Request<T>) -> String {
    match req.extensions().get::<Caller>() {
        Some(Caller::Operator { user, .. }) => user.to_string(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl OperatorService for OperatorApi {
    async fn list_coordinators(
        &self,
        _req: Request<lab_proto::v1::ListCoordinatorsRequest>,
    ) -> Result<Response<lab_proto::v1::ListCoordinatorsResponse>, Status> {
        let advertise = &self.coord.settings.advertise;
        let answer = match &self.coord.options.store {
            Some(crate::store::Location::Etcd(etcd)) => {
                crate::coordinators::from_etcd(etcd, advertise).await?
            }
            _ => crate::coordinators::for_sled(advertise, self.coord.started_unix),
        };
        Ok(Response::new(answer))
    }

    async fn who_am_i(
        &self,
        req: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        match req.extensions().get::<Caller>() {
            Some(Caller::Operator { user, role }) => Ok(Response::new(WhoAmIResponse {
                identity_uri: self.coord.operator_id(user).uri(),
                user: user.to_string(),
                role: role.to_proto() as i32,
            })),
            _ => Err(Status::internal("caller was not resolved to an operator")),
        }
    }

    async fn list_nodes(
        &self,
        req: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Ok(Response::new(self.list_node_page(req.into_inner())?))
    }

    async fn count_nodes(
        &self,
        req: Request<CountNodesRequest>,
    ) -> Result<Response<CountNodesResponse>, Status> {
        let req = req.into_inner();
        let selector: Selector = req.selector.parse().map_err(ApiError::from)?;
        let groupings =
            listing::parse_groupings(&req.group_by).map_err(ApiError::InvalidArgument)?;
        let need = listing::facts_need(&selector, Some(&[]));
        let mut counts = listing::Counts::new(groupings);
        let online = self.online();
        for entry in
            select_from(&self.coord.store, &selector, "", online, need).map_err(ApiError::from)?
        {
            let entry = entry.map_err(ApiError::from)?;
            counts.add(&entry.labels, &entry.record.agent_version);
        }
        Ok(Response::new(counts.into_response()))
    }

    async fn get_node(&self, req: Request<GetNodeRequest>) -> Result<Response<Node>, Status> {
        let rec = self.existing_node(&req.get_ref().name)?;
        let e = entry(&self.coord.store, rec, self.online()).map_err(ApiError::from)?;
        Ok(Response::new(self.node_view(e)))
    }

    async fn label_node(&self, req: Request<LabelNodeRequest>) -> Result<Response<Node>, Status> {
        Ok(Response::new(self.label(req.into_inner()).await?))
    }

    async fn revoke_node(
        &self,
        req: Request<RevokeNodeRequest>,
    ) -> Result<Response<RevokeNodeResponse>, Status> {
        Ok(Response::new(self.revoke(&req.get_ref().name).await?))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        Ok(Response::new(self.remove(&req.get_ref().name).await?))
    }

    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let creator = caller_name(&req);
        Ok(Response::new(
            OperatorApi::create_token(self, creator, req.into_inner()).await?,
        ))
    }

    async fn list_tokens(
        &self,
        _req: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        let tokens = self.coord.store.tokens().map_err(ApiError::from)?;
        Ok(Response::new(ListTokensResponse {
            tokens: tokens.into_iter().map(token_info).collect(),
        }))
    }

    async fn create_user(
        &self,
        req: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        Ok(Response::new(
            crate::operators::create(&self.coord, req.into_inner()).await?,
        ))
    }

    async fn list_users(
        &self,
        _req: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let users = self.coord.store.users().map_err(ApiError::from)?;
        Ok(Response::new(ListUsersResponse {
            users: users.into_iter().map(user_view).collect(),
        }))
    }

    async fn delete_user(
        &self,
        req: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let by = caller_name(&req);
        let (certificates_revoked, streams_closed) =
            crate::operators::delete(&self.coord, &req.get_ref().name, &by).await?;
        Ok(Response::new(DeleteUserResponse {
            certificates_revoked,
            streams_closed,
        }))
    }

    async fn revoke_user(&self, req: Request<RevokeUserRequest>) -> Result<Response<User>, Status> {
        let by = caller_name(&req);
        let user = crate::operators::revoke(&self.coord, &req.get_ref().name, &by).await?;
        Ok(Response::new(user))
    }

    async fn set_user_role(
        &self,
        req: Request<SetUserRoleRequest>,
    ) -> Result<Response<User>, Status> {
        let by = caller_name(&req);
        let SetUserRoleRequest { name, role } = req.into_inner();
        let user = crate::operators::set_role(&self.coord, &name, role, &by).await?;
        Ok(Response::new(user))
    }

    async fn renew_user(
        &self,
        req: Request<RenewUserRequest>,
    ) -> Result<Response<RenewUserResponse>, Status> {
        let Some(Caller::Operator { user, .. }) = req.extensions().get::<Caller>().cloned() else {
            return Err(Status::internal("caller was not resolved to an operator"));
        };
        let resp = crate::operators::renew(&self.coord, &user, req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn revoke_token(
        &self,
        req: Request<RevokeTokenRequest>,
    ) -> Result<Response<TokenInfo>, Status> {
        let id = &req.get_ref().token_id;
        let rec = self
            .coord
            .store
            .revoke_token(id, now_ms())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(format!("no token with id '{id}'; see 'labctl token list'"))
            })?;
        if rec.used_unix_ms != 0 {
            return Err(ApiError::FailedPrecondition(format!(
                "token '{id}' was already used by node '{}'; revoke the node instead ('labctl node revoke {}')",
                rec.used_by, rec.used_by
            ))
            .into());
        }
        tracing::warn!(token = %id, by = %caller_name(&req), "enrollment token revoked");
        Ok(Response::new(token_info(rec)))
    }

    async fn submit_job(
        &self,
        req: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobResponse>, Status> {
        let by = caller_name(&req);
        let spec = req.into_inner().spec.unwrap_or_default();
        let (job, nodes) = crate::jobs::submit(&self.coord.job_cx(), &by, spec).await?;
        Ok(Response::new(SubmitJobResponse {
            job_id: job.job_id,
            nodes,
        }))
    }

    async fn get_job(&self, req: Request<GetJobRequest>) -> Result<Response<JobInfo>, Status> {
        let GetJobRequest {
            job_id,
            page_size: size,
            page_token,
        } = req.into_inner();
        let job = self.existing_job(&job_id)?;
        let size = page_size(size, MAX_TASKS_PAGE);
        Ok(Response::new(self.job_info(
            job,
            &page_token,
            size,
            PAGE_BYTES,
        )?))
    }

    async fn list_jobs(
        &self,
        req: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let req = req.into_inner();
        let limit = match req.limit {
            0 => 100,
            n => n as usize,
        };
        let (returned, start) = paging::job_position(&req.page_token)?;
        let want = limit
            .saturating_sub(returned)
            .min(page_size(req.page_size, MAX_JOBS_PAGE));
        let store = &self.coord.store;
        // With a node: each job with only that node's task (and no other task read).
        let records: Vec<(JobRecord, Option<String>)> = if req.node.is_empty() {
            store
                .jobs_newest_from(start.as_deref(), want + 1)
                .map_err(ApiError::from)?
                .into_iter()
                .map(|job| (job, None))
                .collect()
        } else {
            let node = parse_name::<NodeName>(&req.node)?;
            store
                .node_jobs_newest_from(node.as_str(), start.as_deref(), want + 1)
                .map_err(ApiError::from)?
                .into_iter()
                .map(|(job, task)| (job, Some(task)))
                .collect()
        };
        let mut page = Page::new(want, PAGE_BYTES);
        let mut next_page_token = String::new();
        let tasks_page = if req.omit_tasks || !req.node.is_empty() {
            0
        } else {
            MAX_TASKS_PAGE
        };
        for (i, (job, node_task)) in records.into_iter().enumerate() {
            let id = job.job_id.clone();
            let left_out = i >= want || page.is_full() || {
                let mut info = self.job_info(job, "", tasks_page, page.remaining())?;
                if let (Some(task), false) = (node_task, req.omit_tasks) {
                    let task = store.task(&task).map_err(ApiError::from)?;
                    info.tasks.extend(task.and_then(|t| t.info));
                }
                page.push(info).is_err()
            };
            if left_out {
                if returned + i < limit {
                    next_page_token = paging::job_token(returned + i, &id);
                }
                break;
            }
        }
        Ok(Response::new(ListJobsResponse {
            jobs: page.into_items(),
            next_page_token,
        }))
    }

    type WatchJobStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<JobEvent, Status>> + Send>>;

    async fn watch_job(
        &self,
        req: Request<WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let by = caller_name(&req);
        let WatchJobRequest {
            job_id,
            from_seq,
            node,
            stored_only,
        } = req.into_inner();
        self.existing_job(&job_id)?;
        let rx = crate::jobs::watch::stream(
            &self.coord.job_cx(),
            &self.coord.tasks,
            &self.coord.shutdown,
            job_id,
            from_seq,
            node,
            stored_only,
        );
        let rx = self.coord.operators.guard_stream(&self.coord, &by, rx);
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn cancel_job(
        &self,
        req: Request<CancelJobRequest>,
    ) -> Result<Response<JobInfo>, Status> {
        let job = crate::jobs::cancel(&self.coord.job_cx(), &req.get_ref().job_id).await?;
        Ok(Response::new(self.job_info(
            job,
            "",
            MAX_TASKS_PAGE,
            PAGE_BYTES,
        )?))
    }

    async fn create_schedule(
        &self,
        req: Request<CreateScheduleRequest>,
    ) -> Result<Response<Schedule>, Status> {
        let by = caller_name(&req);
        let schedule = crate::schedules::api::create(&self.coord, &by, req.into_inner()).await?;
        Ok(Response::new(schedule))
    }

    async fn list_schedules(
        &self,
        _req: Request<ListSchedulesRequest>,
    ) -> Result<Response<ListSchedulesResponse>, Status> {
        let schedules = crate::schedules::api::list(&self.coord)?;
        Ok(Response::new(ListSchedulesResponse { schedules }))
    }

    async fn get_schedule(
        &self,
        req: Request<GetScheduleRequest>,
    ) -> Result<Response<Schedule>, Status> {
        let schedule = crate::schedules::api::get(&self.coord, &req.get_ref().name)?;
        Ok(Response::new(schedule))
    }

    async fn set_schedule_paused(
        &self,
        req: Request<SetSchedulePausedRequest>,
    ) -> Result<Response<Schedule>, Status> {
        let SetSchedulePausedRequest { name, paused } = req.into_inner();
        let schedule = crate::schedules::api::set_paused(&self.coord, &name, paused).await?;
        Ok(Response::new(schedule))
    }

    async fn delete_schedule(
        &self,
        req: Request<DeleteScheduleRequest>,
    ) -> Result<Response<DeleteScheduleResponse>, Status> {
        crate::schedules::api::delete(&self.coord, &req.get_ref().name).await?;
        Ok(Response::new(DeleteScheduleResponse {}))
    }

    async fn list_backups(
        &self,
        req: Request<ListBackupsRequest>,
    ) -> Result<Response<ListBackupsResponse>, Status> {
        let selector: Selector = req.get_ref().selector.parse().map_err(ApiError::from)?;
        let now = crate::clock::now_ms();
        let backups = crate::backups::list(&self.coord.store, &selector, now, self.online())
            .map_err(ApiError::from)?;
        Ok(Response::new(ListBackupsResponse { backups }))
    }

    async fn forget_backups(
        &self,
        req: Request<ForgetBackupsRequest>,
    ) -> Result<Response<ForgetBackupsResponse>, Status> {
        let req = req.into_inner();
        let node: NodeName = req.node.parse().map_err(|e: IdentityError| {
            ApiError::InvalidArgument(format!("node name '{}': {e}", req.node))
        })?;
        let name = (!req.name.is_empty()).then_some(req.name.as_str());
        let forgotten = self
            .coord
            .store
            .forget_backups(node.as_str(), name)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ForgetBackupsResponse { forgotten }))
    }

    async fn get_topology(
        &self,
        _req: Request<GetTopologyRequest>,
    ) -> Result<Response<GetTopologyResponse>, Status> {
        let coord = self.coord.clone();
        // The join (when facts changed) and the serialization are CPU work over every node.
        let json = tokio::task::spawn_blocking(move || {
            let t = coord
                .topology
                .topology(&|n: &str| coord.sessions.is_online(n));
            serde_json::to_string(&t)
        })
        .await
        .map_err(|e| Status::internal(format!("topology task failed: {e}")))?
        .map_err(|e| Status::internal(format!("cannot serialize the topology: {e}")))?;
        Ok(Response::new(GetTopologyResponse { json }))
    }
}
