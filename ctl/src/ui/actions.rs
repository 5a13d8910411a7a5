//! The dashboard's state-changing requests: cancel a job, run a job again, pause and resume a
//! schedule. Each is a POST form from the dashboard's own page carrying the run's CSRF token
//! (checked here, after `auth` checked the cookie and the origin); whether the identity may do
//! it is the coordinator's decision alone (a viewer gets its PermissionDenied as 403). Success
//! redirects (303) back to the page.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Redirect;
use axum::Form;
use lab_proto::v1::{
    task_spec, CancelJobRequest, GetJobRequest, JobSpec, SetSchedulePausedRequest, SubmitJobRequest,
};
use serde::Deserialize;

use super::html::Url;
use super::server::{PageError, Ui};

/// The form every action posts.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    /// The CSRF token of the page the form came from.
    #[serde(default)]
    pub csrf: String,
}

/// The result of an action.
pub type ActionResult = Result<Redirect, PageError>;

fn check(ui: &Ui, form: Result<Form<ActionForm>, FormRejection>) -> Result<(), PageError> {
    let token = form.map(|f| f.0.csrf).unwrap_or_default();
    if ui.keys.csrf_ok(&token) {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "missing or wrong CSRF token: use the buttons on the dashboard's pages (reload the page if labctl ui was restarted)".into(),
        ))
    }
}

/// Whether a job's spec had secret file content, which the coordinator does not keep.
fn has_secret_content(spec: &JobSpec) -> bool {
    let Some(task_spec::Kind::Config(config)) = spec.task.as_ref().and_then(|t| t.kind.as_ref())
    else {
        return false;
    };
    config
        .resources
        .iter()
        .any(|r| matches!(&r.kind, Some(lab_proto::v1::resource::Kind::File(f)) if f.secret))
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    check(&ui, form)?;
    ui.client()
        .cancel_job(CancelJobRequest { job_id: id.clone() })
        .await?;
    Ok(Redirect::to(&format!("/jobs/{}", Url(&id))))
}

/// `POST /jobs/{id}/rerun`: submits the job's spec again (its selector is resolved anew) and
/// goes to the new job.
pub async fn rerun(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    check(&ui, form)?;
    let mut client = ui.client();
    let job = client
        .get_job(GetJobRequest {
            job_id: id.clone(),
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let spec = job.spec.unwrap_or_default();
    if has_secret_content(&spec) {
        return Err(PageError::BadRequest(format!(
            "job {id} wrote secret file content, which the coordinator does not keep; run its spec file again with 'labctl apply -f FILE'"
        )));
    }
    let submitted = client
        .submit_job(SubmitJobRequest { spec: Some(spec) })
        .await?
        .into_inner();
    Ok(Redirect::to(&format!("/jobs/{}", Url(&submitted.job_id))))
}

async fn set_paused(
    ui: &Ui,
    name: String,
    paused: bool,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    check(ui, form)?;
    ui.client()
        .set_schedule_paused(SetSchedulePausedRequest { name, paused })
        .await?;
    Ok(Redirect::to("/schedules"))
}

/// `POST /schedules/{name}/pause`.
pub async fn pause(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    set_paused(&ui, name, true, form).await
}

/// `POST /schedules/{name}/resume`.
pub async fn resume(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> ActionResult {
    set_paused(&ui, name, false, form).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{resource, ConfigTask, FileResource, Resource, TaskSpec};

    #[test]
    fn secret_file_content_blocks_a_rerun() {
        let spec = |secret: bool| JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Config(ConfigTask {
                    resources: vec![Resource {
                        kind: Some(resource::Kind::File(FileResource {
                            path: "/etc/x".into(),
                            secret,
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    check: false,
                })),
            }),
            ..Default::default()
        };
        assert!(has_secret_content(&spec(true)));
        assert!(!has_secret_content(&spec(false)));
        assert!(!has_secret_content(&JobSpec::default()));
    }
}
