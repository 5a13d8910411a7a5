//! The coordinator's bounds against a compromised node and oversized input: a rogue agent with
//! a real node certificate sends what a well-behaved agent never would (fact documents grown by
//! patches, reports faster than any agent makes them, huge output chunks, endless progress,
//! huge results), a job too large to send is refused at submit, output over the per-task limit
//! is reported as dropped, and lists answer in pages however large the fleet's records grow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use lab_proto::facts::{digest, merge_patch};
use lab_proto::limits::MAX_FACTS_BYTES;
use lab_proto::v1::agent_message::Msg as AgentMsg;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{
    facts, job_event, task_result, task_spec, task_update, BackupResult, ExecTask, Facts,
    FactsPatch, GetJobRequest, GetNodeRequest, JobSpec, ListJobsRequest, ListNodesRequest,
    OutputStream, SubmitJobRequest, TaskChunk, TaskFinished, TaskProgress, TaskResult, TaskSpec,
    TaskStarted, TaskState, TaskUpdate, WatchJobRequest,
};
use lab_tests::rogue::RogueAgent;
use lab_tests::{stderr, Cluster};
use serde_json::{json, Value};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn acked(answers: &[CoordMsg], doc: &Value) -> bool {
    let want = digest(doc);
    answers
        .iter()
        .any(|m| matches!(m, CoordMsg::FactsAck(a) if a.digest == want))
}

fn full(doc: &Value) -> AgentMsg {
    AgentMsg::Facts(Facts {
        digest: digest(doc),
        body: Some(facts::Body::FullJson(doc.to_string())),
    })
}

async fn stored_facts(c: &Cluster) -> String {
    c.coord
        .admin_client()
        .await
        .get_node(GetNodeRequest { name: "n1".into() })
        .await
        .unwrap()
        .into_inner()
        .facts_json
}

fn coordinator_log(c: &Cluster) -> String {
    std::fs::read_to_string(c.tmp.path().join("coordinator.log")).unwrap_or_default()
}

#[test]
fn merge_patches_cannot_grow_the_facts_past_the_cap() {
    let mut c = Cluster::builder().agents(1).start();
    c.agents[0].stop(false);
    rt().block_on(async {
        let mut rogue = RogueAgent::connect(&c, &c.agents[0]).await;
        let mut doc = json!({"platform": {"hostname": "n1"}});
        rogue.send(full(&doc)).await;
        assert!(acked(&rogue.sync().await.unwrap(), &doc));
        // Each patch is under the cap; the document they build is not.
        for i in 0..3 {
            let patch = json!({ format!("blob{i}"): "x".repeat(700_000) });
            let mut next = doc.clone();
            merge_patch(&mut next, &patch);
            rogue
                .send(AgentMsg::Facts(Facts {
                    digest: digest(&next),
                    body: Some(facts::Body::Patch(FactsPatch {
                        base_digest: digest(&doc),
                        merge_patch_json: patch.to_string(),
                    })),
                }))
                .await;
            let answers = rogue.sync().await.expect("the session goes on");
            if i == 0 {
                assert!(acked(&answers, &next), "the first patch fits");
                doc = next;
            } else {
                assert!(!acked(&answers, &next), "patch {i} must be refused");
            }
        }
        let stored = stored_facts(&c).await;
        assert!(stored.len() <= MAX_FACTS_BYTES, "{} bytes", stored.len());
        let stored: Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored, doc, "the previous facts stay");
    });
    assert!(
        coordinator_log(&c).contains("over the limit of 1048576"),
        "the refusal is logged with its reason:\n{}",
        c.logs()
    );
}

#[test]
fn fact_reports_faster_than_the_budget_are_refused() {
    let mut c = Cluster::builder().agents(1).start();
    c.agents[0].stop(false);
    rt().block_on(async {
        let mut rogue = RogueAgent::connect(&c, &c.agents[0]).await;
        let size = 900_000;
        let started = Instant::now();
        let mut accepted = 0u64;
        for i in 0..10 {
            let doc = json!({ "blob": format!("{i}{}", "x".repeat(size)) });
            rogue.send(full(&doc)).await;
            if acked(&rogue.sync().await.expect("the session goes on"), &doc) {
                accepted += 1;
            }
        }
        // 4 MiB at once, then 256 KiB a second (one document more for rounding).
        let allowed = 4 * 1024 * 1024 + 256 * 1024 * started.elapsed().as_secs_f64() as u64;
        assert!(
            accepted * size as u64 <= allowed + size as u64,
            "{accepted} documents of {size} bytes stored in {:?}",
            started.elapsed()
        );
    });
    assert!(coordinator_log(&c).contains("fact reports arrive faster than"));
}

fn exec_spec(selector: &str, env_bytes: usize) -> JobSpec {
    let mut exec = ExecTask {
        argv: vec!["true".into()],
        ..Default::default()
    };
    if env_bytes > 0 {
        exec.env.insert("BIG".into(), "x".repeat(env_bytes));
    }
    JobSpec {
        selector: selector.into(),
        task: Some(TaskSpec {
            kind: Some(task_spec::Kind::Exec(exec)),
        }),
        ..Default::default()
    }
}

fn update(task_id: &str, seq: u64, body: task_update::Body) -> AgentMsg {
    AgentMsg::TaskUpdate(TaskUpdate {
        task_id: task_id.into(),
        seq,
        body: Some(body),
    })
}

#[test]
fn a_rogue_node_cannot_make_a_task_keep_more_than_its_bounds() {
    let mut c = Cluster::builder().agents(1).start();
    c.agents[0].stop(false);
    rt().block_on(async {
        let mut rogue = RogueAgent::connect(&c, &c.agents[0]).await;
        let mut admin = c.coord.admin_client().await;
        let job_id = admin
            .submit_job(SubmitJobRequest {
                spec: Some(exec_spec("node=n1", 0)),
            })
            .await
            .unwrap()
            .into_inner()
            .job_id;
        let task_id = loop {
            if let CoordMsg::Assign(a) = rogue.next().await.unwrap() {
                break a.task_id;
            }
        };
        rogue
            .send(update(
                &task_id,
                1,
                task_update::Body::Started(TaskStarted { unix_ms: 1 }),
            ))
            .await;
        // One chunk of 3 MB: over the 32 KiB an agent sends at once.
        let chunk = TaskChunk {
            stream: OutputStream::Stdout as i32,
            data: vec![b'o'; 3_000_000],
        };
        rogue
            .send(update(&task_id, 2, task_update::Body::Output(chunk)))
            .await;
        // 300 progress reports with long texts.
        for seq in 3..303 {
            let progress = TaskProgress {
                current: "/".repeat(100_000),
                ..Default::default()
            };
            rogue
                .send(update(&task_id, seq, task_update::Body::Progress(progress)))
                .await;
        }
        // A result of 2 MB.
        let finished = TaskFinished {
            state: TaskState::Succeeded as i32,
            result: Some(TaskResult {
                kind: Some(task_result::Kind::Backup(BackupResult {
                    name: "n".repeat(2_000_000),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        };
        rogue
            .send(update(&task_id, 303, task_update::Body::Finished(finished)))
            .await;
        rogue.sync().await.expect("the session goes on");

        let job = admin
            .get_job(GetJobRequest {
                job_id: job_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let task = &job.tasks[0];
        assert_eq!(task.output_bytes, 3_000_000);
        assert_eq!(task.output_dropped_bytes, 3_000_000 - 32 * 1024);
        assert!(task.result.is_none(), "the oversized result is dropped");
        assert!(
            task.error
                .contains("over the limit of 1048576, and was dropped"),
            "{}",
            task.error
        );
        let mut events = admin
            .watch_job(WatchJobRequest {
                job_id,
                stored_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let (mut output, mut progress) = (0, 0);
        while let Some(event) = events.message().await.unwrap() {
            match event.body {
                Some(job_event::Body::Output(o)) => output += o.data.len(),
                Some(job_event::Body::Progress(p)) => {
                    progress += 1;
                    let text = p.progress.unwrap().current;
                    assert!(text.len() <= 4096 + 64, "{} bytes", text.len());
                }
                _ => {}
            }
        }
        assert_eq!(output, 32 * 1024, "the chunk's tail is kept");
        assert_eq!(progress, 1, "only the latest progress is stored");
    });
}

#[test]
fn a_job_too_large_to_send_is_refused_at_submit_and_the_node_stays_usable() {
    let c = Cluster::builder().agents(1).start();
    rt().block_on(async {
        let mut admin = c.coord.admin_client().await;
        // The request fits the 4 MiB limit; the Assign it would become does not.
        let err = admin
            .submit_job(SubmitJobRequest {
                spec: Some(exec_spec("", lab_proto::limits::MAX_MESSAGE_BYTES - 200)),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("over the message limit"),
            "{}",
            err.message()
        );
    });
    let out = c.labctl(&["run", "--", "echo", "still here"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("still here"));
    assert!(c.online("n1"));
}

#[test]
fn output_over_the_task_limit_is_reported_as_dropped() {
    let c = Cluster::builder().agents(1).start();
    let out = c.labctl(&[
        "run",
        "--",
        "sh",
        "-c",
        "head -c 3000000 /dev/zero | tr '\\0' x; echo",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("n1: 1.9MiB of 2.9MiB output dropped (only the last"),
        "{}",
        stderr(&out)
    );
    let jobs = c.labctl(&["jobs", "-o", "json"]);
    let jobs: Value = serde_json::from_slice(&jobs.stdout).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    let show = c.labctl(&["job", "show", &id]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("n1: 1.9MiB of 2.9MiB output dropped"),
        "{text}"
    );
    assert!(coordinator_log(&c).contains("task output dropped"));
}

#[test]
fn lists_answer_in_pages_and_labctl_reads_them_all() {
    let c = Cluster::builder().agents(2).start();
    rt().block_on(async {
        let mut admin = c.coord.admin_client().await;
        let first = admin
            .list_nodes(ListNodesRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.nodes.len(), 1);
        assert_eq!(first.next_page_token, "n2");
        let second = admin
            .list_nodes(ListNodesRequest {
                page_size: 1,
                page_token: first.next_page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.nodes[0].name, "n2");
        assert!(second.next_page_token.is_empty());

        let job_id = admin
            .submit_job(SubmitJobRequest {
                spec: Some(exec_spec("", 0)),
            })
            .await
            .unwrap()
            .into_inner()
            .job_id;
        let page = admin
            .get_job(GetJobRequest {
                job_id: job_id.clone(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.tasks.len(), 1);
        assert_eq!(page.next_page_token, "1");
        let whole = lab_proto::pages::whole_job(&mut admin, &job_id)
            .await
            .unwrap();
        assert_eq!(whole.tasks.len(), 2);

        // Jobs of nearly 4 MiB each: all of them together are over the 64 MiB an answer
        // may have, so only pages can list them.
        for _ in 0..17 {
            admin
                .submit_job(SubmitJobRequest {
                    spec: Some(exec_spec("node=nobody", 3_900_000)),
                })
                .await
                .unwrap();
        }
        let page = admin
            .list_jobs(ListJobsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(page.jobs.len() < 18, "{} jobs in one page", page.jobs.len());
        assert!(!page.next_page_token.is_empty());
    });
    let out = c.labctl(&["jobs", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.len(), 18);
    let out = c.labctl(&["nodes", "-o", "json"]);
    let nodes: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nodes.len(), 2);
}
