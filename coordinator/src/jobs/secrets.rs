//! Secret file content (`file` resources with `secret: true`): never stored, never returned by
//! the API, never logged. (Content from a SOPS file, `contentFrom`, is ciphertext only the node
//! can decrypt: it is stored and forwarded as it is, and schedules may carry it.)
//!
//! At submit, [`take`] moves the content out of the job's spec: the stored spec keeps the
//! resource with `secret: true` and empty content. The content waits in memory ([`Secrets`])
//! only until every task of the job has been confirmed by its agent (its first update) or the
//! job is done; each `Assign` gets it back with [`restore`]. A coordinator restart forgets it:
//! a task not yet delivered then fails with [`LOST`] as its reason, and is never sent with the
//! content missing. A schedule cannot carry secret content (it would have to be stored until
//! it fires), see [`refuse_in_schedule`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use lab_proto::v1::{resource, task_spec, FileResource, JobSpec, TaskSpec};

/// Why a task fails whose secret content the coordinator no longer has.
pub const LOST: &str = "the coordinator restarted before this node received the job's secret file content, which is kept in memory only; submit the job again";

/// The secret contents of one job: (resource index, content), in resource order.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretContent(Vec<(usize, String)>);

impl std::fmt::Debug for SecretContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretContent({} file(s), redacted)", self.0.len())
    }
}

fn secret_files_mut(task: &mut TaskSpec) -> impl Iterator<Item = (usize, &mut FileResource)> {
    let resources = match task.kind.as_mut() {
        Some(task_spec::Kind::Config(config)) => config.resources.as_mut_slice(),
        _ => &mut [],
    };
    resources
        .iter_mut()
        .enumerate()
        .filter_map(|(i, r)| match r.kind.as_mut() {
            // Content from a SOPS file is ciphertext: stored and sent like any other field.
            Some(resource::Kind::File(f)) if f.secret && f.content_from.is_none() => Some((i, f)),
            _ => None,
        })
}

/// Whether `spec` has a `secret: true` file resource.
pub fn has_secrets(spec: &JobSpec) -> bool {
    match spec.task.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(task_spec::Kind::Config(config)) => config
            .resources
            .iter()
            .any(|r| {
                matches!(&r.kind, Some(resource::Kind::File(f)) if f.secret && f.content_from.is_none())
            }),
        _ => false,
    }
}

/// Moves the content of every secret file out of `spec`; `None` when it has none.
pub fn take(spec: &mut JobSpec) -> Option<SecretContent> {
    let task = spec.task.as_mut()?;
    let taken: Vec<(usize, String)> = secret_files_mut(task)
        .map(|(i, f)| (i, std::mem::take(&mut f.content)))
        .collect();
    (!taken.is_empty()).then_some(SecretContent(taken))
}

/// Empties the content of every secret file of `spec` (for API responses: a record written
/// before secrets were kept out of the store must not show its content either).
pub fn redact(spec: &mut JobSpec) {
    drop(take(spec));
}

/// Puts the content taken by [`take`] back into a task spec that is about to be sent.
pub fn restore(task: &mut TaskSpec, content: &SecretContent) {
    let mut by_index: HashMap<usize, &String> = content.0.iter().map(|(i, c)| (*i, c)).collect();
    for (i, f) in secret_files_mut(task) {
        if let Some(c) = by_index.remove(&i) {
            f.content = c.clone();
        }
    }
}

/// Refuses a schedule's job with secret content: a schedule is stored until it fires.
pub fn refuse_in_schedule(job: &JobSpec) -> Result<(), String> {
    if has_secrets(job) {
        return Err("a file resource with secret: true cannot be scheduled: the coordinator keeps secret content in memory only until it is delivered, never in its store; apply it as a Job, or keep the secret on the node and reference its path".into());
    }
    Ok(())
}

/// What the engine knows about a job's secret content.
#[derive(Debug, Clone)]
pub enum Held {
    /// The job has no secret file.
    None,
    /// The content, to restore into each `Assign`.
    Content(Arc<SecretContent>),
    /// The job has secret files, but their content is gone (a coordinator restart).
    Lost,
}

struct Entry {
    content: Arc<SecretContent>,
    /// Tasks whose agent has not confirmed the task yet.
    waiting: HashSet<String>,
}

/// Secret contents of submitted jobs, in memory only, each until every task of its job was
/// confirmed by its agent or the job is done.
#[derive(Default)]
pub struct Secrets {
    jobs: Mutex<HashMap<String, Entry>>,
}

impl Secrets {
    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `content` of `job_id` until each of `task_ids` is delivered.
    pub fn hold(&self, job_id: &str, content: Arc<SecretContent>, task_ids: &[String]) {
        let entry = Entry {
            content,
            waiting: task_ids.iter().cloned().collect(),
        };
        self.jobs().insert(job_id.to_owned(), entry);
    }

    /// What is known about the secret content of the job with `spec`.
    pub fn held(&self, job_id: &str, spec: Option<&JobSpec>) -> Held {
        if !spec.is_some_and(has_secrets) {
            return Held::None;
        }
        match self.jobs().get(job_id) {
            Some(e) => Held::Content(e.content.clone()),
            None => Held::Lost,
        }
    }

    /// The agent confirmed `task_id`: it no longer needs the content; the last one drops it.
    pub fn delivered(&self, job_id: &str, task_id: &str) {
        let mut jobs = self.jobs();
        if let Some(e) = jobs.get_mut(job_id) {
            e.waiting.remove(task_id);
            if e.waiting.is_empty() {
                jobs.remove(job_id);
            }
        }
    }

    /// Drops the content of `job_id` (the job is done, or was not stored).
    pub fn forget(&self, job_id: &str) {
        self.jobs().remove(job_id);
    }

    /// How many jobs hold secret content.
    pub fn len(&self) -> usize {
        self.jobs().len()
    }

    /// Whether no job holds secret content.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{ConfigTask, Resource};

    fn file(content: &str, secret: bool) -> Resource {
        Resource {
            kind: Some(resource::Kind::File(FileResource {
                path: "/etc/x".into(),
                content: content.into(),
                secret,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn spec(resources: Vec<Resource>) -> JobSpec {
        JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Config(ConfigTask {
                    resources,
                    check: false,
                })),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn take_leaves_no_secret_and_restore_puts_it_back() {
        let original = spec(vec![
            file("public", false),
            file("s3cret-1", true),
            file("s3cret-2", true),
        ]);
        let mut stored = original.clone();
        let content = take(&mut stored).unwrap();
        let text = format!("{stored:?} {content:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("public"), "{text}");
        assert!(has_secrets(&stored));
        let mut task = stored.task.clone().unwrap();
        restore(&mut task, &content);
        assert_eq!(Some(task), original.task);
    }

    #[test]
    fn jobs_without_secret_files_are_untouched() {
        let mut s = spec(vec![file("public", false)]);
        assert!(take(&mut s).is_none());
        assert!(!has_secrets(&s));
        assert!(refuse_in_schedule(&s).is_ok());
        assert!(refuse_in_schedule(&spec(vec![file("x", true)])).is_err());
    }

    #[test]
    fn content_is_kept_until_every_task_is_delivered() {
        let secrets = Secrets::default();
        let mut s = spec(vec![file("s3cret", true)]);
        let content = take(&mut s).unwrap();
        let tasks = ["j-0000".to_owned(), "j-0001".to_owned()];
        assert!(matches!(secrets.held("j", Some(&s)), Held::Lost));
        secrets.hold("j", Arc::new(content), &tasks);
        assert!(matches!(secrets.held("j", Some(&s)), Held::Content(_)));
        secrets.delivered("j", "j-0000");
        secrets.delivered("j", "j-0000");
        assert_eq!(secrets.len(), 1);
        secrets.delivered("j", "j-0001");
        assert!(secrets.is_empty());
        assert!(matches!(secrets.held("j", Some(&s)), Held::Lost));
        assert!(matches!(
            secrets.held("other", Some(&spec(vec![]))),
            Held::None
        ));
    }
}
