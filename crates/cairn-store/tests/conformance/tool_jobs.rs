//! Tool jobs: one submission per call even when a resumed run submits
//! again, one lease per attempt, late results fenced off, a lost worker's
//! idempotent job ready again and a side-effecting one `unknown`, expired
//! leases and deadlines, cancelled jobs final and their worker named.

use cairn_core::ToolOutput;
use cairn_core::cluster::{Labels, NewToolJob, ToolJobStatus};
use cairn_core::now_ms;
use cairn_store::{JobLease, ToolJobStore};

use crate::{Harness, both};

both!(
    a_tool_job_is_leased_once_and_late_results_are_fenced,
    lost_and_expired_tool_jobs,
    a_cancelled_tool_job_is_final_and_names_its_worker,
    a_job_submitted_leased_goes_only_where_the_dispatcher_would_send_it
);

fn job(id: &str, idempotent: bool) -> NewToolJob {
    NewToolJob {
        id: id.into(),
        run_id: "run_1".into(),
        tool: "exec".into(),
        input: serde_json::json!({"command": "echo hi"}),
        requires: Labels::parse("region=eu").unwrap(),
        workspace: Some("docs".into()),
        sandbox: cairn_core::SandboxProfile::Offline,
        idempotent,
        deadline_ms: now_ms() + 60_000,
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

async fn a_tool_job_is_leased_once_and_late_results_are_fenced<H: Harness>(h: H) {
    let (a, b) = (h.open().await, h.open().await);
    let first = a.submit_tool_job(&job("run_1/4", true)).await.unwrap();
    assert_eq!(first.status, ToolJobStatus::Ready);
    assert_eq!(
        first.job,
        job("run_1/4", true).clone_with_deadline(first.job.deadline_ms)
    );
    let again = b.submit_tool_job(&job("run_1/4", true)).await.unwrap();
    assert_eq!(
        again.created_at, first.created_at,
        "a resumed run finds its call"
    );
    assert_eq!(a.ready_tool_jobs(10).await.unwrap().len(), 1);

    let until = now_ms() + 30_000;
    let (la, lb) = tokio::join!(
        a.lease_tool_job("run_1/4", "node_a", "coord-a", until),
        b.lease_tool_job("run_1/4", "node_b", "coord-b", until),
    );
    let attempts: Vec<i64> = [la.unwrap(), lb.unwrap()].into_iter().flatten().collect();
    assert_eq!(attempts, vec![1], "one lease");
    assert!(a.ready_tool_jobs(10).await.unwrap().is_empty());
    // The worker vanished: idempotent, so ready again; attempt 2 goes out.
    assert_eq!(
        a.lose_tool_job("run_1/4", 1, "worker lost").await.unwrap(),
        Some(ToolJobStatus::Ready)
    );
    assert_eq!(
        b.lease_tool_job("run_1/4", "node_b", "coord-b", until)
            .await
            .unwrap(),
        Some(2)
    );
    let held = cairn_core::cluster::JobRef {
        job: "run_1/4".into(),
        attempt: 2,
    };
    let stale = cairn_core::cluster::JobRef {
        job: "run_1/4".into(),
        attempt: 1,
    };
    assert_eq!(
        b.renew_tool_leases(
            &[held.clone(), stale.clone()],
            "node_b",
            "coord-b",
            until + 1
        )
        .await
        .unwrap(),
        vec![stale],
        "the attempt that lost the job is named, for its worker to stop"
    );
    // Another worker cannot renew, nor answer for, a job leased to node_b,
    // even naming its current attempt.
    assert_eq!(
        a.renew_tool_leases(std::slice::from_ref(&held), "node_a", "coord-a", until + 1)
            .await
            .unwrap(),
        vec![held.clone()]
    );
    let forged = ToolOutput::ok("forged");
    assert!(
        !a.finish_tool_job("run_1/4", "node_a", 2, &forged)
            .await
            .unwrap()
    );
    // The first worker's late result is refused; the second's lands once.
    let late = ToolOutput::ok("late");
    assert!(
        !a.finish_tool_job("run_1/4", "node_a", 1, &late)
            .await
            .unwrap()
    );
    assert!(
        b.finish_tool_job("run_1/4", "node_b", 2, &ToolOutput::ok("hi"))
            .await
            .unwrap()
    );
    assert!(
        !b.finish_tool_job("run_1/4", "node_b", 2, &late)
            .await
            .unwrap()
    );
    let done = a.tool_job("run_1/4").await.unwrap().unwrap();
    assert_eq!(done.status, ToolJobStatus::Done);
    assert_eq!(done.output, Some(ToolOutput::ok("hi")));
    assert_eq!(done.node.as_deref(), Some("node_b"));
    assert!(done.finished_at.is_some());
    assert_eq!(
        a.lose_tool_job("run_1/4", 2, "too late").await.unwrap(),
        None,
        "a final job stays final"
    );
    assert_eq!(a.list_tool_jobs(10).await.unwrap().len(), 1);

    // The run's next call in the same workspace names where it lives.
    a.submit_tool_job(&job("run_1/5", false)).await.unwrap();
    let other_run = NewToolJob {
        run_id: "run_2".into(),
        ..job("run_2/1", false)
    };
    a.submit_tool_job(&other_run).await.unwrap();
    let no_workspace = NewToolJob {
        workspace: None,
        ..job("run_1/6", false)
    };
    a.submit_tool_job(&no_workspace).await.unwrap();
    let mut ready: Vec<(String, Option<String>)> = b
        .ready_tool_jobs(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.job.job.id, r.affinity))
        .collect();
    ready.sort();
    assert_eq!(
        ready,
        vec![
            ("run_1/5".to_string(), Some("node_b".to_string())),
            ("run_1/6".to_string(), None),
            ("run_2/1".to_string(), None),
        ]
    );
}

async fn a_job_submitted_leased_goes_only_where_the_dispatcher_would_send_it<H: Harness>(h: H) {
    let s = h.open().await;
    let until = now_ms() + 30_000;
    let lease = |node: &'static str| JobLease {
        node,
        owner: "coord-a",
        until,
    };
    // The workspace's first call: any node.
    let first = s
        .submit_leased_tool_job(&job("run_1/1", false), &lease("node_a"))
        .await
        .unwrap()
        .expect("inserted");
    assert_eq!(first.status, ToolJobStatus::Leased);
    assert_eq!(first.attempt, 1);
    assert_eq!(first.node.as_deref(), Some("node_a"));
    assert!(
        s.ready_tool_jobs(10).await.unwrap().is_empty(),
        "never offered to a dispatcher"
    );
    assert_eq!(
        s.renew_tool_leases(
            &[cairn_core::cluster::JobRef {
                job: "run_1/1".into(),
                attempt: 1,
            }],
            "node_a",
            "coord-a",
            until + 1,
        )
        .await
        .unwrap(),
        vec![],
        "the lease is held like a dispatched one"
    );
    // The same id again (a resumed run): nothing written.
    assert!(
        s.submit_leased_tool_job(&job("run_1/1", false), &lease("node_b"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.tool_job("run_1/1")
            .await
            .unwrap()
            .unwrap()
            .node
            .as_deref(),
        Some("node_a")
    );
    // The run's workspace lives on node_a: not to node_b, to node_a yes.
    assert!(
        s.submit_leased_tool_job(&job("run_1/2", false), &lease("node_b"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.tool_job("run_1/2").await.unwrap().is_none());
    let second = s
        .submit_leased_tool_job(&job("run_1/2", false), &lease("node_a"))
        .await
        .unwrap()
        .expect("to the workspace's node");
    assert_eq!(second.node.as_deref(), Some("node_a"));
    // No named workspace: any node.
    let free = NewToolJob {
        workspace: None,
        ..job("run_1/3", false)
    };
    assert!(
        s.submit_leased_tool_job(&free, &lease("node_b"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.finish_tool_job("run_1/3", "node_b", 1, &ToolOutput::ok("done"))
            .await
            .unwrap(),
        "its result lands under attempt 1"
    );
}

trait WithDeadline {
    fn clone_with_deadline(&self, at: i64) -> NewToolJob;
}

impl WithDeadline for NewToolJob {
    fn clone_with_deadline(&self, at: i64) -> NewToolJob {
        NewToolJob {
            deadline_ms: at,
            ..self.clone()
        }
    }
}

async fn lost_and_expired_tool_jobs<H: Harness>(h: H) {
    let s = h.open().await;
    s.submit_tool_job(&job("side", false)).await.unwrap();
    s.lease_tool_job("side", "n", "c", now_ms() + 30_000)
        .await
        .unwrap();
    assert_eq!(
        s.lose_tool_job("side", 1, "worker n was lost")
            .await
            .unwrap(),
        Some(ToolJobStatus::Unknown),
        "a side-effecting call is never run twice"
    );
    let unknown = s.tool_job("side").await.unwrap().unwrap();
    let out = unknown.output.unwrap();
    assert!(
        out.is_error && out.content.contains("outcome unknown"),
        "{out:?}"
    );
    assert!(s.ready_tool_jobs(10).await.unwrap().is_empty());

    // A coordinator died holding leases: they run out and are lost alike.
    s.submit_tool_job(&job("held-idem", true)).await.unwrap();
    s.submit_tool_job(&job("held-side", false)).await.unwrap();
    let past = now_ms() - 1;
    s.lease_tool_job("held-idem", "n", "dead", past)
        .await
        .unwrap();
    s.lease_tool_job("held-side", "n", "dead", past)
        .await
        .unwrap();
    // Nobody takes this one in time.
    let mut stale = job("nobody", true);
    stale.deadline_ms = now_ms() - 1;
    s.submit_tool_job(&stale).await.unwrap();
    assert_eq!(s.expire_tool_jobs(now_ms()).await.unwrap(), 3);
    let status = |id: &'static str| {
        let s = s.clone();
        async move { s.tool_job(id).await.unwrap().unwrap().status }
    };
    assert_eq!(status("held-idem").await, ToolJobStatus::Ready);
    assert_eq!(status("held-side").await, ToolJobStatus::Unknown);
    assert_eq!(status("nobody").await, ToolJobStatus::Expired);
    let listed = s.list_tool_jobs(10).await.unwrap();
    assert_eq!(listed[0].status, ToolJobStatus::Ready, "live jobs first");
}

async fn a_cancelled_tool_job_is_final_and_names_its_worker<H: Harness>(h: H) {
    let s = h.open().await;
    s.submit_tool_job(&job("waiting", false)).await.unwrap();
    assert_eq!(
        s.cancel_tool_job("waiting").await.unwrap(),
        None,
        "no worker had it"
    );
    assert!(
        s.ready_tool_jobs(10).await.unwrap().is_empty(),
        "never sent"
    );
    let until = now_ms() + 30_000;
    assert_eq!(
        s.lease_tool_job("waiting", "n", "c", until).await.unwrap(),
        None
    );

    s.submit_tool_job(&job("running", false)).await.unwrap();
    s.lease_tool_job("running", "node_a", "c", until)
        .await
        .unwrap();
    assert_eq!(
        s.cancel_tool_job("running").await.unwrap(),
        Some(("node_a".to_string(), 1)),
        "the worker running it, to be told to stop"
    );
    assert_eq!(s.cancel_tool_job("running").await.unwrap(), None, "once");
    let job_ref = cairn_core::cluster::JobRef {
        job: "running".into(),
        attempt: 1,
    };
    assert_eq!(
        s.renew_tool_leases(std::slice::from_ref(&job_ref), "node_a", "c", until)
            .await
            .unwrap(),
        vec![job_ref],
        "its heartbeat hears it again"
    );
    assert!(
        !s.finish_tool_job("running", "node_a", 1, &ToolOutput::ok("late"))
            .await
            .unwrap(),
        "its result is refused"
    );
    let cancelled = s.tool_job("running").await.unwrap().unwrap();
    assert_eq!(cancelled.status, ToolJobStatus::Cancelled);
    assert!(cancelled.status.is_final());
    let out = cancelled.output.unwrap();
    assert!(out.is_error && out.content.contains("cancelled"), "{out:?}");

    // A finished job stays finished.
    s.submit_tool_job(&job("finished", false)).await.unwrap();
    s.lease_tool_job("finished", "n", "c", until).await.unwrap();
    s.finish_tool_job("finished", "n", 1, &ToolOutput::ok("hi"))
        .await
        .unwrap();
    assert_eq!(s.cancel_tool_job("finished").await.unwrap(), None);
    assert_eq!(
        s.tool_job("finished").await.unwrap().unwrap().status,
        ToolJobStatus::Done
    );
}
