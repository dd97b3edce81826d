//! recur over real HTTP, against a fresh SQLite file and a fresh PostgreSQL database.

use recur::Recur;
use todo_events_domain::RecurringTaskId;
use todo_events_testkit::{self as kit, at, reply, TestDb};

const DUE: &str = "dev.todo.recurring-task.due";

async fn next_occurrence(db: &TestDb, id: RecurringTaskId) -> (Option<String>, bool) {
    let rt = db.store.recurring_task(id).await.unwrap().unwrap();
    (
        rt.next_occurrence.map(todo_events_domain::time::rfc3339),
        rt.active,
    )
}

#[tokio::test]
async fn an_occurrence_creates_one_instance_and_advances_the_task() {
    for db in kit::backends().await {
        let app = kit::spawn(Recur::new(db.store.clone())).await;
        // Daily 09:00 Berlin with a reminder 15 minutes before each instance.
        let occ = at("2026-03-28T08:00:00Z");
        let rt = kit::recurring(
            &db.store,
            "FREQ=DAILY",
            "2026-03-01T09:00:00",
            "Europe/Berlin",
            occ,
            "latest",
            &[900],
        )
        .await;

        let (status, ty, body) = reply(app.post_binary(DUE, "recurring-task/x", &rt.data(occ)).await).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.task-instance.created"),
            "{}: {body}",
            db.backend
        );
        // Across the spring-forward night 09:00 local moves from 08:00Z to 07:00Z.
        assert_eq!(body["next_occurrence"], "2026-03-29T07:00:00Z");
        assert_eq!(
            next_occurrence(&db, rt.id).await,
            (Some("2026-03-29T07:00:00Z".into()), true)
        );

        for _ in 0..2 {
            let (status, ty, body) =
                reply(app.post_structured(DUE, "recurring-task/x", &rt.data(occ)).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.task-instance.duplicate"),
                "{}: {body}",
                db.backend
            );
        }
        let instances = db.store.instances_of(rt.id).await.unwrap();
        assert_eq!(instances.len(), 1, "{}", db.backend);
        assert_eq!(instances[0].1, occ);
        let counts = db.store.table_counts().await.unwrap();
        assert_eq!(
            counts.iter().find(|(t, _)| *t == "reminders").unwrap().1,
            1,
            "one reminder per instance"
        );
        assert_eq!(
            next_occurrence(&db, rt.id).await.0.as_deref(),
            Some("2026-03-29T07:00:00Z"),
            "not advanced twice"
        );
    }
}

#[tokio::test]
async fn five_concurrent_deliveries_create_one_instance() {
    for db in kit::backends().await {
        let app = kit::spawn(Recur::new(db.store.clone())).await;
        let occ = at("2026-01-05T14:00:00Z");
        let rt = kit::recurring(
            &db.store,
            "FREQ=WEEKLY",
            "2026-01-05T09:00:00",
            "America/New_York",
            occ,
            "latest",
            &[],
        )
        .await;
        let data = rt.data(occ);
        let answers = futures::future::join_all((0..5).map(|_| {
            let (app, data) = (&app, data.clone());
            async move { reply(app.post_binary(DUE, "recurring-task/y", &data).await).await }
        }))
        .await;
        let created = answers
            .iter()
            .filter(|(_, t, _)| t == "dev.todo.task-instance.created")
            .count();
        let dup = answers
            .iter()
            .filter(|(_, t, _)| t == "dev.todo.task-instance.duplicate")
            .count();
        assert!(
            answers.iter().all(|(s, _, _)| *s == 200),
            "{}: {answers:?}",
            db.backend
        );
        assert_eq!((created, dup), (1, 4), "{}: {answers:?}", db.backend);
        assert_eq!(db.store.instances_of(rt.id).await.unwrap().len(), 1);
        assert_eq!(
            next_occurrence(&db, rt.id).await.0.as_deref(),
            Some("2026-01-12T14:00:00Z")
        );
    }
}

#[tokio::test]
async fn the_last_occurrence_deactivates_the_task() {
    for db in kit::backends().await {
        let app = kit::spawn(Recur::new(db.store.clone())).await;
        let first = at("2026-01-31T09:00:00Z");
        let rt = kit::recurring(
            &db.store,
            "FREQ=MONTHLY;COUNT=2",
            "2026-01-31T09:00:00",
            "UTC",
            first,
            "latest",
            &[],
        )
        .await;
        let (_, ty, body) = reply(app.post_binary(DUE, "a", &rt.data(first)).await).await;
        assert_eq!(ty, "dev.todo.task-instance.created", "{body}");
        // February has no 31st: the second (last) occurrence is March 31st.
        let last = at("2026-03-31T09:00:00Z");
        assert_eq!(
            next_occurrence(&db, rt.id).await,
            (Some("2026-03-31T09:00:00Z".into()), true)
        );
        let (_, ty, body) = reply(app.post_binary(DUE, "b", &rt.data(last)).await).await;
        assert_eq!(ty, "dev.todo.task-instance.created", "{body}");
        assert!(
            !next_occurrence(&db, rt.id).await.1,
            "{}: deactivated",
            db.backend
        );
        // Redelivery after the end: the instance exists, nothing else happens.
        let (_, ty, _) = reply(app.post_binary(DUE, "b", &rt.data(last)).await).await;
        assert_eq!(ty, "dev.todo.task-instance.duplicate");
        assert_eq!(db.store.instances_of(rt.id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn stale_foreign_and_impossible_occurrences_are_skipped() {
    for db in kit::backends().await {
        let app = kit::spawn(Recur::new(db.store.clone())).await;
        let next = at("2026-01-10T09:00:00Z");
        let rt = kit::recurring(
            &db.store,
            "FREQ=DAILY",
            "2026-01-01T09:00:00",
            "UTC",
            next,
            "latest",
            &[],
        )
        .await;
        let mut wrong_user = rt.data(next);
        wrong_user["user_id"] = 424_242.into();
        let mut missing = rt.data(next);
        missing["recurring_task_id"] = 999_999.into();
        for (what, data) in [
            ("passed over", rt.data(at("2026-01-05T09:00:00Z"))),
            ("not an occurrence", rt.data(at("2026-01-10T09:30:00Z"))),
            ("wrong user", wrong_user),
            ("missing task", missing),
        ] {
            let (status, ty, body) = reply(app.post_binary(DUE, "z", &data).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.task-instance.skipped"),
                "{} {what}: {body}",
                db.backend
            );
        }
        assert!(db.store.instances_of(rt.id).await.unwrap().is_empty());
        assert_eq!(
            next_occurrence(&db, rt.id).await.0.as_deref(),
            Some("2026-01-10T09:00:00Z")
        );
    }
}

#[tokio::test]
async fn bad_input_gets_a_problem_and_changes_nothing() {
    for db in kit::backends().await {
        let app = kit::spawn(Recur::new(db.store.clone())).await;
        let next = at("2026-01-10T09:00:00Z");
        let rt = kit::recurring(
            &db.store,
            "FREQ=DAILY",
            "2026-01-01T09:00:00",
            "UTC",
            next,
            "latest",
            &[],
        )
        .await;
        let before = db.store.table_counts().await.unwrap();
        let cases = kit::bad_cases(DUE, "dev.todo.reminder.due", &rt.data(next), 64 * 1024);
        kit::assert_bad_cases_rejected(&app, cases).await;
        assert_eq!(db.store.table_counts().await.unwrap(), before, "{}", db.backend);
        assert_eq!(
            next_occurrence(&db, rt.id).await.0.as_deref(),
            Some("2026-01-10T09:00:00Z")
        );
    }
}

#[tokio::test]
async fn a_database_outage_is_503_and_not_ready() {
    let app = kit::spawn(Recur::new(kit::unreachable_store())).await;
    let data =
        serde_json::json!({"recurring_task_id": 1, "user_id": 1, "occurrence_at": "2026-11-27T09:00:00Z"});
    let response = app.post_binary(DUE, "x", &data).await;
    kit::assert_unavailable(response, "the database", kit::UNREACHABLE_STORE_TEXT).await;
    let ready = app
        .client
        .get(format!("{}/health/readiness", app.url))
        .send()
        .await
        .unwrap();
    kit::assert_unavailable(ready, "the database", kit::UNREACHABLE_STORE_TEXT).await;
}

#[tokio::test]
async fn seed_system_dapr_envelopes_are_accepted() {
    let db = kit::sqlite().await;
    let app = kit::spawn(Recur::new(db.store.clone())).await;
    let occ = at("2026-02-13T10:00:00Z");
    let rt = kit::recurring(
        &db.store,
        "FREQ=DAILY",
        "2026-02-01T10:00:00",
        "UTC",
        occ,
        "latest",
        &[],
    )
    .await;
    let envelope = serde_json::json!({
        "specversion": "1.0", "id": "dapr-uuid", "source": "backend", "type": "com.dapr.event.sent",
        "topic": "task-events", "pubsubname": "kafka-pubsub", "datacontenttype": "application/json",
        "data": {
            "event_id": "recurring-task-1-1770976800.1", "event_type": "recurring_task.due",
            "timestamp": "2026-02-13T10:00:00.5", "user_id": rt.user_id, "recurring_task_id": rt.id,
            "data": {"recurring_task_id": rt.id, "title": "x", "recurrence_pattern": "daily",
                     "recurrence_interval": 1, "next_occurrence": "2026-02-13T10:00:00", "is_active": true}
        }
    });
    let response = app
        .client
        .post(format!("{}/", app.url))
        .header("content-type", "application/cloudevents+json")
        .body(envelope.to_string())
        .send()
        .await
        .unwrap();
    let (status, ty, body) = reply(response).await;
    assert_eq!(
        (status, ty.as_str()),
        (200, "dev.todo.task-instance.created"),
        "{body}"
    );
    assert_eq!(
        body["event_id"],
        format!("recurring-task/{}/2026-02-13T10:00:00Z", rt.id)
    );
    assert_eq!(db.store.instances_of(rt.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_requests_are_written_together_and_each_answered_on_its_own() {
    use todo_events_host::{GroupCommit, HostOptions};
    for db in kit::backends().await {
        // One lane: every request that arrives while a batch is written waits for the next one.
        let opts = HostOptions {
            workers: 2,
            group_commit: GroupCommit {
                max_events: 200,
                lanes: 1,
            },
            ..HostOptions::default()
        };
        let app = kit::spawn_with(Recur::new(db.store.clone()), opts).await;
        let occ = at("2026-03-10T08:00:00Z");
        let mut fixtures = Vec::new();
        for _ in 0..40 {
            let rt = kit::recurring(
                &db.store,
                "FREQ=DAILY",
                "2026-03-01T09:00:00",
                "Europe/Berlin",
                occ,
                "latest",
                &[900],
            )
            .await;
            fixtures.push(rt);
        }
        // The database refuses one task's instance (as a broken constraint would).
        let refused = fixtures[7].id;
        db.refuse_instances_of(refused).await;
        let mut requests: Vec<(String, serde_json::Value)> = fixtures
            .iter()
            .map(|rt| (format!("recurring-task/{}", rt.id), rt.data(occ)))
            .collect();
        // Wrong on its own: answered 400 before any batch.
        let mut bad = fixtures[0].data(occ);
        bad["occurrence_at"] = "yesterday".into();
        requests.push(("bad".into(), bad));

        let answers = futures::future::join_all(
            requests
                .iter()
                .map(|(id, data)| async { reply(app.post_binary(DUE, id, data).await).await }),
        )
        .await;

        for ((id, data), (status, ty, body)) in requests.iter().zip(&answers) {
            let expected = if id == "bad" {
                (400, "")
            } else if data["recurring_task_id"] == refused.get() {
                (500, "")
            } else {
                (200, "dev.todo.task-instance.created")
            };
            assert_eq!((*status, ty.as_str()), expected, "{}: {id}: {body}", db.backend);
            if *status == 200 {
                // Its own answer, not a neighbour's.
                assert_eq!(body["event_id"], id.as_str(), "{}", db.backend);
                assert_eq!(
                    body["recurring_task_id"], data["recurring_task_id"],
                    "{}",
                    db.backend
                );
            }
        }
        for rt in &fixtures {
            let instances = db.store.instances_of(rt.id).await.unwrap().len();
            assert_eq!(
                instances,
                usize::from(rt.id != refused),
                "{}: {}",
                db.backend,
                rt.id
            );
        }
        // The 40 parsed events went through fewer batches than events: requests were
        // written together.
        let metrics = app.metrics().await;
        let batches = kit::metric(
            &metrics,
            "todo_events_batch_events_count",
            &[r#"transport="http""#],
        );
        let events = kit::metric(&metrics, "todo_events_batch_events_sum", &[r#"transport="http""#]);
        assert_eq!(events, 40.0, "{}: {metrics}", db.backend);
        assert!(
            batches < events,
            "{}: {batches} batches for {events} events",
            db.backend
        );
    }
}

#[test]
fn bad_group_commit_settings_stop_the_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("GROUP_COMMIT_LANES", "0"),
        ("GROUP_COMMIT_LANES", "four"),
        ("GROUP_COMMIT_MAX_EVENTS", "0"),
        ("GROUP_COMMIT_MAX_EVENTS", "-1"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recur"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("t.db").display()),
            )
            .env("PORT", "0")
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}={value}: {stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}
