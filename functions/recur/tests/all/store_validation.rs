//! The store refuses a recurring task whose rule, zone or DTSTART cannot describe a
//! recurrence, with the reason, and writes nothing (SQLite and PostgreSQL).

use todo_events_domain::RecurringTaskId;
use todo_events_store::seed::NewRecurringTask;
use todo_events_testkit::{self as kit, at};

#[tokio::test]
async fn a_recurring_task_with_a_bad_rule_zone_or_dtstart_is_refused() {
    for db in kit::backends().await {
        let user_id = kit::user(&db.store, "grace@example.test", "Europe/Berlin").await;
        let task = |rrule: &'static str, timezone: &'static str, dtstart: &'static str| NewRecurringTask {
            user_id,
            title: "Water the plants",
            description: "",
            rrule,
            timezone,
            dtstart,
            next_occurrence: at("2026-03-02T08:00:00Z"),
            catch_up: todo_events_domain::CatchUp::Latest,
            reminder_offsets: &[],
        };
        for (rrule, timezone, dtstart, reason) in [
            (
                "FREQ=FORTNIGHTLY",
                "Europe/Berlin",
                "2026-03-02T09:00:00",
                "unknown FREQ",
            ),
            (
                "FREQ=WEEKLY;BYMONTHDAY=2",
                "Europe/Berlin",
                "2026-03-02T09:00:00",
                "BYMONTHDAY",
            ),
            (
                "FREQ=DAILY;UNTIL=20260310",
                "Europe/Berlin",
                "2026-03-02T09:00:00",
                "UTC",
            ),
            (
                "FREQ=DAILY",
                "Europe/Berlyn",
                "2026-03-02T09:00:00",
                "unknown time zone",
            ),
            (
                "FREQ=DAILY",
                "Europe/Berlin",
                "2026-03-02 09:00",
                "invalid dtstart",
            ),
            (
                "FREQ=DAILY",
                "Europe/Berlin",
                "2026-03-02T09:00:00+01:00",
                "invalid dtstart",
            ),
            (
                "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31",
                "Europe/Berlin",
                "2026-03-02T09:00:00",
                "no occurrence",
            ),
        ] {
            let err = db
                .store
                .insert_recurring_task(&task(rrule, timezone, dtstart))
                .await
                .expect_err(rrule)
                .to_string();
            assert!(
                err.contains("recurring task refused") && err.contains(reason),
                "{}: {rrule} {timezone} {dtstart}: {err}",
                db.backend
            );
        }
        // Nothing was written.
        assert!(
            db.store
                .recurring_task(RecurringTaskId::new(1).unwrap())
                .await
                .unwrap()
                .is_none(),
            "{}",
            db.backend
        );
        let id = db
            .store
            .insert_recurring_task(&task(
                "FREQ=WEEKLY;BYDAY=MO",
                "Europe/Berlin",
                "2026-03-02T09:00:00",
            ))
            .await
            .expect("a valid recurring task is stored");
        assert_eq!(id.get(), 1, "{}", db.backend);
    }
}
