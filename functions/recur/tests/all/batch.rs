//! The consumer mode's batches: one call, many events, the same answers and effects as one
//! event at a time, on SQLite and PostgreSQL.

use recur::Recur;
use todo_events_domain::{RecurringTaskDue, UserId};
use todo_events_host::{Function, Outcome};
use todo_events_testkit::{self as kit, at};

fn due(fx: &kit::RecurringFixture, user: UserId, occurrence: &str) -> (String, RecurringTaskDue) {
    let d = RecurringTaskDue {
        recurring_task_id: fx.id,
        user_id: user,
        occurrence_at: at(occurrence),
    };
    (d.event_id(), d)
}

#[tokio::test]
async fn a_batch_creates_each_instance_once_and_advances_in_order() {
    for db in kit::backends().await {
        let recur = Recur::new(db.store.clone());
        let daily = |next: &'static str| {
            let store = db.store.clone();
            async move {
                kit::recurring(
                    &store,
                    "FREQ=DAILY",
                    "2026-03-01T09:00:00",
                    "Europe/Berlin",
                    at(next),
                    "latest",
                    &[900],
                )
                .await
            }
        };
        let a = daily("2026-03-10T08:00:00Z").await;
        let b = daily("2026-03-10T08:00:00Z").await;
        let c = daily("2026-03-10T08:00:00Z").await;
        let batch = vec![
            due(&a, a.user_id, "2026-03-10T08:00:00Z"),
            due(&b, b.user_id, "2026-03-10T08:00:00Z"),
            // Redelivered within the batch.
            due(&a, a.user_id, "2026-03-10T08:00:00Z"),
            // a's next occurrence, after the first one in the same batch.
            due(&a, a.user_id, "2026-03-11T08:00:00Z"),
            // Names the wrong user.
            due(&c, a.user_id, "2026-03-10T08:00:00Z"),
            // Not an occurrence of the rule.
            due(&c, c.user_id, "2026-03-10T08:30:00Z"),
            // Stale: b has moved on.
            due(&b, b.user_id, "2026-03-09T08:00:00Z"),
        ];
        let answers = recur.handle_batch(batch).await;
        let outcomes: Vec<Outcome> = answers
            .iter()
            .map(|a| a.as_ref().expect("handled").outcome)
            .collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Done("created"),
                Outcome::Done("created"),
                Outcome::Duplicate,
                Outcome::Done("created"),
                Outcome::Skipped,
                Outcome::Skipped,
                Outcome::Skipped,
            ],
            "{}: {answers:?}",
            db.backend
        );
        assert_eq!(
            db.store.instances_of(a.id).await.unwrap().len(),
            2,
            "{}",
            db.backend
        );
        assert_eq!(
            db.store.instances_of(b.id).await.unwrap().len(),
            1,
            "{}",
            db.backend
        );
        assert!(
            db.store.instances_of(c.id).await.unwrap().is_empty(),
            "{}",
            db.backend
        );
        let next = |id| {
            let store = db.store.clone();
            async move {
                store
                    .recurring_task(id)
                    .await
                    .unwrap()
                    .unwrap()
                    .next_occurrence
                    .unwrap()
            }
        };
        assert_eq!(next(a.id).await, at("2026-03-12T08:00:00Z"), "{}", db.backend);
        assert_eq!(next(b.id).await, at("2026-03-11T08:00:00Z"), "{}", db.backend);
        // One reminder per created instance (15 minutes before).
        let counts = db.store.table_counts().await.unwrap();
        assert!(counts.contains(&("reminders", 3)), "{}: {counts:?}", db.backend);

        // The whole batch again (a consumer redelivering after a crash): nothing new.
        let again = recur
            .handle_batch(vec![
                due(&a, a.user_id, "2026-03-10T08:00:00Z"),
                due(&a, a.user_id, "2026-03-11T08:00:00Z"),
                due(&b, b.user_id, "2026-03-10T08:00:00Z"),
            ])
            .await;
        for answer in &again {
            assert_eq!(
                answer.as_ref().unwrap().outcome,
                Outcome::Duplicate,
                "{}: {again:?}",
                db.backend
            );
        }
        assert_eq!(db.store.table_counts().await.unwrap(), counts, "{}", db.backend);
    }
}

#[tokio::test]
async fn an_event_whose_write_is_refused_fails_alone() {
    for db in kit::backends().await {
        let recur = Recur::new(db.store.clone());
        let mut fixtures = Vec::new();
        for _ in 0..3 {
            fixtures.push(
                kit::recurring(
                    &db.store,
                    "FREQ=DAILY",
                    "2026-03-01T09:00:00",
                    "Europe/Berlin",
                    at("2026-03-10T08:00:00Z"),
                    "latest",
                    &[900],
                )
                .await,
            );
        }
        // The database refuses the middle task's instance: the batch's one write transaction
        // fails, and only that event may fail with it.
        db.refuse_instances_of(fixtures[1].id).await;
        let batch = fixtures
            .iter()
            .map(|f| due(f, f.user_id, "2026-03-10T08:00:00Z"))
            .collect();
        let answers = recur.handle_batch(batch).await;
        let summary: Vec<String> = answers
            .iter()
            .map(|a| match a {
                Ok(reply) => reply.outcome.word().to_owned(),
                Err(failure) => format!("{failure:?}")
                    .split('(')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        assert_eq!(
            summary,
            ["created", "Internal", "created"],
            "{}: {answers:?}",
            db.backend
        );
        for (f, instances) in fixtures.iter().zip([1, 0, 1]) {
            assert_eq!(
                db.store.instances_of(f.id).await.unwrap().len(),
                instances,
                "{}",
                db.backend
            );
        }
    }
}

#[tokio::test]
async fn a_count_rule_keeps_its_series_cursor_so_that_age_costs_nothing() {
    for db in kit::backends().await {
        let recur = Recur::new(db.store.clone());
        // Daily at 09:00 Berlin since 2016, 4 000 occurrences: 3 956 lie before 2026-11-01.
        let fx = kit::recurring(
            &db.store,
            "FREQ=DAILY;COUNT=4000",
            "2016-01-01T09:00:00",
            "Europe/Berlin",
            at("2026-11-01T08:00:00Z"),
            "latest",
            &[],
        )
        .await;
        let read = || async { db.store.recurring_task(fx.id).await.unwrap().unwrap() };
        assert_eq!(
            read().await.schedule.cursor(),
            None,
            "{}: none before the first advance",
            db.backend
        );
        for (occurrence, next) in [
            ("2026-11-01T08:00:00Z", "2026-11-02T08:00:00Z"),
            ("2026-11-02T08:00:00Z", "2026-11-03T08:00:00Z"),
        ] {
            let answers = recur.handle_batch(vec![due(&fx, fx.user_id, occurrence)]).await;
            assert_eq!(
                answers[0].as_ref().map(|r| r.outcome),
                Ok(Outcome::Done("created")),
                "{}: {answers:?}",
                db.backend
            );
            let rt = read().await;
            assert_eq!(rt.next_occurrence, Some(at(next)), "{}", db.backend);
            // The cursor kept with the task is where questions about the next occurrence start:
            // the period before it, with the instances before that counted.
            let cursor = rt.schedule.cursor().expect("a cursor is kept");
            assert_eq!(
                Some(cursor.clone()),
                rt.schedule.cursor_for(at(next)).unwrap(),
                "{}",
                db.backend
            );
            let stored: serde_json::Value = serde_json::from_str(&cursor).unwrap();
            let day_before = (at(next) - chrono::Duration::days(1)).date_naive();
            assert_eq!(
                stored["period"],
                format!("{day_before}T00:00:00"),
                "{}",
                db.backend
            );
            // 2016-01-01 up to the day before `day_before`: one instance a day.
            let days = (day_before - chrono::NaiveDate::from_ymd_opt(2016, 1, 1).unwrap()).num_days();
            assert_eq!(stored["before"], days, "{}: {cursor}", db.backend);
        }
    }
}
