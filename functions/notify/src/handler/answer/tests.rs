use super::*;
use crate::handler::tests::{due, row};
use todo_events_domain::EndpointId;

/// The answer rules, row by row.
mod table;

fn webhook(id: i64) -> Route {
    Route {
        channel: Channel::Webhook,
        endpoint: EndpointId::new(id),
    }
}

fn push(id: i64) -> Route {
    Route {
        channel: Channel::WebPush,
        endpoint: EndpointId::new(id),
    }
}

const EMAIL: Route = Route::EMAIL;

fn sent() -> Ended {
    Ended::Sent {
        message_id: "<reminder-1@todo.test>".into(),
        place: "outbox/1.eml".into(),
    }
}

fn failed(why: &str) -> Ended {
    Ended::Failed(why.into())
}

fn scheduled(why: &str) -> Ended {
    Ended::Scheduled(why.into())
}

fn before(status: DeliveryStatus, detail: Option<&str>) -> Ended {
    Ended::Duplicate {
        status,
        detail: detail.map(str::to_owned),
    }
}

/// Why webhook endpoint 6 waits for its own retry.
const WAITS: &str = "webhook endpoint 6: timed out (attempt 1 of 5; retried in 30s)";
/// Why the pushes wait.
const OFF: &str = "Web Push is off; the push deliveries wait for it";

#[test]
fn the_log_hears_what_was_delivered_and_how_the_event_was_answered() {
    let (due, ctx) = (due(), row());
    let logs = |ends: Vec<(Route, Ended)>| answer(&due, &ctx, &ends, None, &[]).logs;
    assert_eq!(
        logs(vec![(EMAIL, sent()), (webhook(5), sent())]),
        [
            Log::Sent("reminder mailed: \"Water the plants\" to user 3 (outbox/1.eml)".into()),
            Log::Sent(
                "reminder sent by webhook endpoint 5: \"Water the plants\" to user 3 (outbox/1.eml)".into()
            ),
        ]
    );
    assert_eq!(
        logs(vec![(webhook(6), scheduled(WAITS))]),
        [Log::Answered(format!(
            "nothing delivered now; retried on its own schedule: {WAITS}"
        ))]
    );
    assert_eq!(
        logs(vec![(EMAIL, failed("550 user unknown"))]),
        [Log::Undeliverable("550 user unknown".into())]
    );
    assert_eq!(
        logs(vec![(EMAIL, before(DeliveryStatus::Sent, None))]),
        [Log::Duplicate("already sent".into())]
    );
    let retry = Ended::Retry(Failure::unavailable("later"));
    assert!(
        logs(vec![(EMAIL, retry)]).is_empty(),
        "a retry is not logged as an answer"
    );
}

#[test]
fn the_details_list_each_delivery_and_the_answer_hides_what_is_stored() {
    let (due, ctx) = (due(), row());
    let ends = vec![(EMAIL, sent()), (webhook(5), failed("ada@example.test said no"))];
    let answered = hide_stored(&ctx, answer(&due, &ctx, &ends, None, &["a note".into()]).reply).unwrap();
    assert_eq!(
        answered.details,
        json!({
            "reminder_id": 1, "task_id": 2, "user_id": 3, "remind_at": "2026-11-30T09:00:00Z",
            "deliveries": [
                {"channel": "email", "endpoint_id": null, "outcome": "sent", "message_id": "<reminder-1@todo.test>"},
                {"channel": "webhook", "endpoint_id": 5, "outcome": "failed", "detail": "<recipient> said no"},
            ],
            "notes": ["a note"],
            "message_id": "<reminder-1@todo.test>",
        })
    );
    assert_eq!(
        answered.reason,
        "the reminder was sent by email; failed for good: webhook endpoint 5: <recipient> said no"
    );
    assert_eq!(answered.due, Some(ctx.remind_at));
}

#[test]
fn a_reminder_is_settled_only_when_every_delivery_was_finished_before() {
    let done = |status| (EMAIL, before(status, None));
    assert!(all_done_before(&[done(DeliveryStatus::Sent)], None));
    assert!(all_done_before(
        &[
            done(DeliveryStatus::Sent),
            (webhook(5), before(DeliveryStatus::Failed, None))
        ],
        None
    ));
    assert!(
        !all_done_before(&[done(DeliveryStatus::Sending)], None),
        "still sending elsewhere"
    );
    assert!(
        !all_done_before(&[done(DeliveryStatus::Sent)], Some(OFF)),
        "a push waits"
    );
    assert!(!all_done_before(
        &[done(DeliveryStatus::Sent), (webhook(5), sent())],
        None
    ));
    assert!(!all_done_before(&[], None));
}
