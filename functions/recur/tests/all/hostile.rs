//! The hostile-caller table's recur rows (`crates/testkit/data/hostile_events.json`): events a
//! caller other than the scheduler could send — an occurrence hours or 400 days ahead, a chain
//! that follows each reply's `next_occurrence`, another user's ids, the wrong time — over real
//! HTTP on SQLite and PostgreSQL. Each must be answered `skipped` with a reason that names what
//! was wrong in the request and shows nothing stored (not the rule, not the next occurrence),
//! create no instance and leave `next_occurrence` where it was.

use chrono::{Duration, SubsecRound, Utc};
use recur::Recur;
use serde_json::{json, Value};
use todo_events_domain::time::rfc3339;
use todo_events_testkit::hostile::{occurrence_rows, HostileOccurrence, HOSTILE_RECUR_ROWS};
use todo_events_testkit::{self as kit, metric, reply};

const DUE: &str = "dev.todo.recurring-task.due";

#[tokio::test]
async fn hostile_events_create_nothing_move_nothing_and_reveal_nothing() {
    for db in kit::backends().await {
        let app = kit::spawn(Recur::new(db.store.clone())).await;
        let now = Utc::now().trunc_subsecs(0);
        let other = kit::recurring(
            &db.store,
            "FREQ=WEEKLY",
            "2026-01-05T07:00:00",
            "UTC",
            now + Duration::days(2),
            "latest",
            &[],
        )
        .await;
        let (mut checked, mut early) = (0, 0);
        for row in occurrence_rows() {
            let next = row.next_in.from(now);
            let dtstart = HostileOccurrence::dtstart(next);
            let rt = kit::recurring(&db.store, "FREQ=DAILY", &dtstart, "UTC", next, "latest", &[]).await;
            let what = |body: &Value| format!("{} {:?}: {body}", db.backend, row.name);
            let mut sends = row.data(&rt, next, &other);
            let (mut expect_next, mut instances) = (next, 0);
            if row.chain > 0 {
                // The due occurrence first, acted on; then the occurrences after it, the first
                // of them the one its reply names as next.
                let first = sends.remove(0);
                let (status, ty, body) = reply(app.post_binary(DUE, "recurring-task/x", &first).await).await;
                assert_eq!(
                    (status, ty.as_str()),
                    (200, "dev.todo.task-instance.created"),
                    "{}",
                    what(&body)
                );
                expect_next = kit::at(
                    body["next_occurrence"]
                        .as_str()
                        .expect("the reply names the next occurrence"),
                );
                assert_eq!(
                    sends[0]["occurrence_at"],
                    json!(rfc3339(expect_next)),
                    "{}",
                    what(&body)
                );
                instances = 1;
            }
            for data in sends {
                let (status, ty, body) = reply(app.post_binary(DUE, "recurring-task/x", &data).await).await;
                assert_eq!(status, 200, "{}", what(&body));
                assert_eq!(
                    ty,
                    format!("dev.todo.task-instance.{}", row.outcome),
                    "{}",
                    what(&body)
                );
                assert_eq!(body["reason"], row.reason, "{}", what(&body));
                // Nothing stored that the request did not carry: not the rule, not where the
                // task stands, not the other task's schedule.
                let text = body.to_string();
                let mut hidden = vec!["FREQ=".to_owned(), rfc3339(now + Duration::days(2))];
                if data["occurrence_at"] != json!(rfc3339(expect_next)) {
                    hidden.push(rfc3339(expect_next));
                }
                for stored in &hidden {
                    assert!(
                        !text.contains(stored.as_str()),
                        "{}: the answer shows {stored:?}",
                        what(&body)
                    );
                }
                early += usize::from(row.early);
            }
            // Nothing created, nothing moved (beyond the chain's one due occurrence).
            assert_eq!(
                db.store.instances_of(rt.id).await.unwrap().len(),
                instances,
                "{}: instances",
                db.backend
            );
            let stored = db.store.recurring_task(rt.id).await.unwrap().unwrap();
            assert_eq!(
                stored.next_occurrence,
                Some(expect_next),
                "{} {:?}: next_occurrence moved",
                db.backend,
                row.name
            );
            assert!(stored.active);
            checked += 1;
        }
        assert_eq!(checked, HOSTILE_RECUR_ROWS, "{}: rows checked", db.backend);
        assert!(db.store.instances_of(other.id).await.unwrap().is_empty());
        let counted = metric(
            &app.metrics().await,
            "todo_events_early_events_total",
            &["function=\"recur\""],
        );
        assert_eq!(counted as usize, early, "{}: early events counted", db.backend);
    }
}

/// The token rows (`crates/testkit/data/bad_tokens.json`) against recur configured as knative/
/// configures it: an occurrence due now, each row's `Authorization` header; each refused with
/// its status and detail, no instance created, `next_occurrence` where it was. Then the
/// source's own token and the shared token are accepted (one instance each).
#[tokio::test]
async fn callers_without_a_valid_identity_are_refused_and_change_nothing() {
    use todo_events_testkit::hostile::{token_rows, BAD_TOKEN_ROWS};
    use todo_events_testkit::oidc::{Issuer, SHARED_TOKEN};
    let issuer = Issuer::start();
    let pod_token = issuer.pod_token_file();
    for db in kit::backends().await {
        let opts = todo_events_host::HostOptions {
            workers: 2,
            auth: issuer.auth(pod_token.path()),
            ..Default::default()
        };
        let app = kit::spawn_with(Recur::new(db.store.clone()), opts).await;
        let now = Utc::now().trunc_subsecs(0);
        let due = now - Duration::seconds(1);
        let dtstart = HostileOccurrence::dtstart(due);
        let task = || kit::recurring(&db.store, "FREQ=DAILY", &dtstart, "UTC", due, "latest", &[]);
        let post = |data: Value, authorization: Option<String>| {
            let app = &app;
            async move {
                app.post_binary_as(DUE, "recurring-task/x", &data, authorization.as_deref())
                    .await
            }
        };
        let mut checked = 0;
        for row in token_rows() {
            let what = format!("{} {:?}", db.backend, row.name);
            let rt = task().await;
            let response = post(rt.data(due), row.authorization(&issuer)).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                (status, body["detail"].as_str()),
                (row.status, Some(row.detail.as_str())),
                "{what}: {body}"
            );
            assert!(
                db.store.instances_of(rt.id).await.unwrap().is_empty(),
                "{what}: an instance"
            );
            let stored = db.store.recurring_task(rt.id).await.unwrap().unwrap();
            assert_eq!(stored.next_occurrence, Some(due), "{what}: next_occurrence moved");
            checked += 1;
        }
        assert_eq!(checked, BAD_TOKEN_ROWS, "{}: rows checked", db.backend);
        for authorization in [
            format!("Bearer {}", issuer.token()),
            format!("Bearer {SHARED_TOKEN}"),
        ] {
            let rt = task().await;
            let (status, ty, body) = reply(post(rt.data(due), Some(authorization)).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.task-instance.created"),
                "{}: {body}",
                db.backend
            );
            assert_eq!(
                db.store.instances_of(rt.id).await.unwrap().len(),
                1,
                "{}",
                db.backend
            );
        }
    }
}
