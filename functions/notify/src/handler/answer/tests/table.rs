use super::*;

/// What the caller hears, as the table writes it: the outcome's word (a failure's status
/// code) and the reason (a failure's text).
fn said(answer: &Answer) -> (String, String) {
    match &answer.reply {
        Ok(reply) => (reply.outcome.word().to_owned(), reply.reason.clone()),
        Err(failure @ Failure::Unavailable { .. }) => ("503".to_owned(), failure.to_string()),
        Err(failure @ Failure::InProgress(_)) => ("409".to_owned(), failure.to_string()),
        Err(other) => panic!("no rule answers {other:?}"),
    }
}

/// One row: an event's ends (sorted by route, as the step hands them over), what waits, and
/// the outcome and reason it is answered with.
struct Case {
    ends: Vec<(Route, Ended)>,
    held: Option<&'static str>,
    outcome: &'static str,
    reason: String,
}

fn case(ends: Vec<(Route, Ended)>, outcome: &'static str, reason: impl Into<String>) -> Case {
    Case {
        ends,
        held: None,
        outcome,
        reason: reason.into(),
    }
}

impl Case {
    fn held(self, why: &'static str) -> Self {
        Self {
            held: Some(why),
            ..self
        }
    }
}

const TAKEN: &str =
    "the webhook endpoint 5 was taken over by another delivery; its outcome is recorded by that one";

fn refused() -> Ended {
    failed("550 user unknown")
}

fn answered_400() -> Ended {
    failed("answered 400")
}

fn gone() -> Ended {
    Ended::Gone("answered 410 (the endpoint was deactivated)".into())
}

/// Rows: a delivery still to be made (a retry, one held back) makes the event come again.
fn comes_again() -> Vec<Case> {
    let relay_later = Ended::Retry(Failure::unavailable("the relay said 421: try again later"));
    let taken = Ended::Retry(Failure::InProgress(TAKEN.into()));
    vec![
        case(
            vec![(EMAIL, relay_later)],
            "503",
            "unavailable: the relay said 421: try again later",
        ),
        case(
            vec![(EMAIL, sent()), (webhook(5), taken)],
            "409",
            format!("in progress: {TAKEN}"),
        ),
        case(vec![(EMAIL, sent())], "503", format!("unavailable: {OFF}")).held(OFF),
        case(vec![], "503", format!("unavailable: {OFF}")).held(OFF),
    ]
}

/// Rows: a delivery made now answers `sent`, whatever else happened.
fn sent_now() -> Vec<Case> {
    vec![
        case(vec![(EMAIL, sent())], "sent", "the reminder e-mail was sent"),
        case(
            vec![(EMAIL, sent()), (webhook(5), sent())],
            "sent",
            "the reminder was sent by email, webhook endpoint 5",
        ),
        case(
            vec![(EMAIL, sent()), (webhook(5), answered_400())],
            "sent",
            "the reminder was sent by email; failed for good: webhook endpoint 5: answered 400",
        ),
        case(
            vec![(EMAIL, sent()), (webhook(6), scheduled(WAITS))],
            "sent",
            format!("the reminder was sent by email; retried on its own schedule: {WAITS}"),
        ),
        case(
            vec![
                (EMAIL, refused()),
                (webhook(5), sent()),
                (webhook(6), scheduled(WAITS)),
                (push(7), gone()),
            ],
            "sent",
            format!(
                "the reminder was sent by webhook endpoint 5; failed for good: email: 550 user unknown; \
                 webpush endpoint 7: answered 410 (the endpoint was deactivated); retried on its own \
                 schedule: {WAITS}"
            ),
        ),
        case(
            vec![(EMAIL, before(DeliveryStatus::Sent, None)), (webhook(5), sent())],
            "sent",
            "the reminder was sent by webhook endpoint 5",
        ),
    ]
}

/// Rows: nothing made now and a webhook or push retried on its own schedule answers
/// `skipped` (the event need not come again).
fn nothing_now() -> Vec<Case> {
    vec![
        case(
            vec![(webhook(6), scheduled(WAITS))],
            "skipped",
            format!("nothing delivered now; retried on its own schedule: {WAITS}"),
        ),
        case(
            vec![(webhook(5), answered_400()), (webhook(6), scheduled(WAITS))],
            "skipped",
            format!(
                "nothing delivered now; failed for good: webhook endpoint 5: answered 400; retried on its \
                 own schedule: {WAITS}"
            ),
        ),
        case(
            vec![
                (EMAIL, before(DeliveryStatus::Sent, None)),
                (webhook(6), scheduled(WAITS)),
            ],
            "skipped",
            format!("nothing delivered now; retried on its own schedule: {WAITS}"),
        ),
        case(
            vec![(webhook(6), Ended::Sending(SLOW.into()))],
            "skipped",
            format!("nothing delivered now; still sending: {SLOW}"),
        ),
        case(
            vec![(EMAIL, sent()), (webhook(6), Ended::Sending(SLOW.into()))],
            "sent",
            format!("the reminder was sent by email; still sending: {SLOW}"),
        ),
    ]
}

/// A webhook slower than the batch's patience, going on alone.
const SLOW: &str = "webhook endpoint 6: no answer within 2s; its outcome is recorded when it comes";

/// Rows: nothing made now and a delivery failed for good answers `failed`; a reminder's one
/// e-mail in the relay's words.
fn failed_now() -> Vec<Case> {
    vec![
        case(vec![(EMAIL, refused())], "failed", "550 user unknown"),
        case(
            vec![(webhook(5), answered_400())],
            "failed",
            "failed for good: webhook endpoint 5: answered 400",
        ),
        case(
            vec![(EMAIL, refused()), (webhook(5), answered_400())],
            "failed",
            "failed for good: email: 550 user unknown; webhook endpoint 5: answered 400",
        ),
        case(
            vec![(push(7), gone())],
            "failed",
            "failed for good: webpush endpoint 7: answered 410 (the endpoint was deactivated)",
        ),
        case(
            vec![
                (EMAIL, before(DeliveryStatus::Sent, None)),
                (webhook(5), answered_400()),
            ],
            "failed",
            "failed for good: webhook endpoint 5: answered 400",
        ),
    ]
}

/// Rows: everything done before (or being done by another delivery) answers `duplicate`.
fn done_before() -> Vec<Case> {
    use DeliveryStatus::{Failed, Sending, Sent};
    vec![
        case(vec![(EMAIL, before(Sent, None))], "duplicate", "already sent"),
        case(
            vec![(EMAIL, before(Failed, Some("550 user unknown")))],
            "duplicate",
            "already failed for good: 550 user unknown",
        ),
        case(vec![(EMAIL, before(Failed, None))], "duplicate", "already failed"),
        case(
            vec![(EMAIL, before(Sending, None))],
            "duplicate",
            "already sending",
        ),
        case(
            vec![
                (EMAIL, before(Sent, None)),
                (webhook(5), before(Failed, Some("answered 400"))),
            ],
            "duplicate",
            "already done: email sent, webhook endpoint 5 failed",
        ),
    ]
}

#[test]
fn every_combination_of_ends_is_answered_by_its_rule() {
    let (due, ctx) = (due(), row());
    let table = [
        comes_again(),
        sent_now(),
        nothing_now(),
        failed_now(),
        done_before(),
    ];
    let mut checked = 0;
    for Case {
        ends,
        held,
        outcome,
        reason,
    } in table.into_iter().flatten()
    {
        let answered = answer(&due, &ctx, &ends, held, &[]);
        assert_eq!(said(&answered), (outcome.to_owned(), reason), "{ends:?}");
        checked += 1;
    }
    assert_eq!(checked, 25);
}
