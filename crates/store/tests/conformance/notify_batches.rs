//! notify's batch statements, each called with several rows at once on both backends,
//! among them rows the statement must leave alone; and the helpers through which the other
//! tests claim, release, settle and deactivate one row at a time (the store has no
//! single-row statements for these: notify sends a batch's rows together).

use chrono::{DateTime, Duration, SubsecRound, Utc};
use todo_events_domain::{EndpointId, ReminderId};
use todo_events_store::notify::{Claim, Finished, Held, NewClaim, Release, Route};
use todo_events_store::{DeliveryStatus, Store};
use todo_events_testkit::{self as kit, ReminderFixture};

/// One delivery claimed as notify claims it: a new claim (attempt 1), else the one claimed
/// before taken over or reported as found.
pub async fn claim_delivery(s: &Store, c: &NewClaim<'_>, now: DateTime<Utc>, lease: Duration) -> Claim {
    if let [(_, delivery_id)] = s.claim_new_deliveries(&[*c], now, lease).await.unwrap()[..] {
        return Claim::Claimed {
            delivery_id,
            attempt: 1,
            since: now,
        };
    }
    let mut found = s.claim_deliveries(&[*c], now, lease).await.unwrap();
    assert_eq!(found.len(), 1, "one answer per claim");
    found.remove(0)
}

/// Gives one claim back: whether it was released.
pub async fn release_delivery(s: &Store, held: Held, reason: &str, until: DateTime<Utc>) -> bool {
    let release = Release { held, reason, until };
    let released = s.release_deliveries(&[release]).await.unwrap();
    released == [held.delivery_id]
}

/// Settles one occurrence: whether its reminder was moved on.
pub async fn settle_reminder(s: &Store, id: ReminderId, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    s.settle_reminders(&[(id, at)], now).await.unwrap() == [id]
}

/// Deactivates one endpoint.
pub async fn deactivate_endpoint(s: &Store, id: EndpointId, detail: &str, now: DateTime<Utc>) {
    s.deactivate_endpoints(&[(id, detail)], now).await.unwrap();
}

/// The claim of `r`'s delivery at `at` on `route`, by event "e".
pub fn claim_at(r: &ReminderFixture, at: DateTime<Utc>, route: Route) -> NewClaim<'static> {
    NewClaim {
        reminder_id: r.reminder_id,
        remind_at: at,
        route,
        event_id: "e",
    }
}

/// `c` claimed new at `now`: its claim.
pub async fn new_claim(s: &Store, c: NewClaim<'_>, now: DateTime<Utc>, lease: Duration) -> Held {
    match claim_delivery(s, &c, now, lease).await {
        Claim::Claimed {
            delivery_id,
            attempt: 1,
            ..
        } => Held {
            delivery_id,
            attempt: 1,
        },
        other => panic!("a new claim, got {other:?}"),
    }
}

/// Records `held` as `status` (sent or failed).
pub async fn finish(s: &Store, held: Held, status: DeliveryStatus, now: DateTime<Utc>) {
    let outcome = match status {
        DeliveryStatus::Sent => Finished::Sent {
            recipient: "a@b.c",
            message_id: "<m>",
        },
        _ => Finished::Failed {
            recipient: "a@b.c",
            detail: "550",
        },
    };
    let recorded = s.finish_deliveries(&[(held, outcome)], now).await.unwrap();
    assert_eq!(recorded, [held.delivery_id]);
}

/// The one read of a batch: for each event, whether its reminder was moved and the event's
/// own time sent; a reminder not moved says no whatever was sent, another time's delivery
/// or one not sent does not count, and a reminder that does not exist is absent.
#[tokio::test]
async fn the_read_tells_per_event_whether_a_moved_reminders_own_time_was_sent() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        // Microseconds: the events' times compare with the stored ones exactly.
        let now = Utc::now().trunc_subsecs(6);
        let (earlier, other) = (now - Duration::minutes(61), now - Duration::hours(2));
        let lease = Duration::seconds(60);
        let mut reminders = Vec::new();
        for (title, delivered, status) in [
            ("not moved", now, Some(DeliveryStatus::Sent)),
            ("moved, sent", earlier, Some(DeliveryStatus::Sent)),
            ("moved, failed", earlier, Some(DeliveryStatus::Failed)),
            ("moved, sending", earlier, None),
            ("moved, another time sent", other, Some(DeliveryStatus::Sent)),
        ] {
            let r = kit::reminder(s, title, now).await;
            let held = new_claim(s, claim_at(&r, delivered, Route::EMAIL), now, lease).await;
            if let Some(status) = status {
                finish(s, held, status, now).await;
            }
            reminders.push(r);
        }
        let asked_at = [now, earlier, earlier, earlier, earlier];
        let mut events: Vec<_> = reminders.iter().map(|r| r.reminder_id).zip(asked_at).collect();
        events.push((ReminderId::new(999_999).unwrap(), earlier));
        let found = s.reminder_contexts(&events).await.unwrap();
        assert_eq!(found.len(), 5, "{b}: the missing reminder is absent");
        let mut checked = 0;
        for (r, sent) in reminders.iter().zip([false, true, false, false, false]) {
            let f = &found[&r.reminder_id];
            assert_eq!(f.sent_at_event_time, sent, "{b}: reminder {}", r.reminder_id);
            let ctx = f.context.as_ref().unwrap();
            assert_eq!((ctx.reminder_id, ctx.remind_at), (r.reminder_id, now), "{b}");
            checked += 1;
        }
        assert_eq!(checked, 5, "{b}: rows checked");
    }
}

/// The claims made before, in one call: expired leases and released claims whose time has
/// come are taken over (token incremented, first claim time kept, reason cleared); a live
/// claim, a claim released until later and a finished delivery are reported as found and
/// left alone; routes of one reminder are told apart.
#[tokio::test]
async fn the_claims_made_before_are_taken_over_or_reported_in_one_call() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let (lease, later) = (Duration::seconds(60), now + Duration::seconds(61));
        let hook = Route {
            channel: todo_events_store::Channel::Webhook,
            endpoint: EndpointId::new(7),
        };
        let r: Vec<ReminderFixture> = reminders(s, now, 5).await;
        let claims = [
            claim_at(&r[0], now, Route::EMAIL), // expired
            claim_at(&r[1], now, Route::EMAIL), // live (claimed 30 s later)
            claim_at(&r[1], now, hook),         // expired, the same reminder's webhook
            claim_at(&r[2], now, Route::EMAIL), // released until later
            claim_at(&r[3], now, Route::EMAIL), // sent
            claim_at(&r[4], now, Route::EMAIL), // released, its time come
        ];
        let mut held = Vec::new();
        for (i, c) in claims.iter().enumerate() {
            let at = if i == 1 { now + Duration::seconds(30) } else { now };
            held.push(new_claim(s, *c, at, lease).await);
        }
        assert!(release_delivery(s, held[3], "503", now + Duration::seconds(120)).await);
        finish(s, held[4], DeliveryStatus::Sent, now).await;
        assert!(release_delivery(s, held[5], "429", now + Duration::seconds(10)).await);

        let found = s.claim_deliveries(&claims, later, lease).await.unwrap();
        let taken = |status, detail: Option<&str>, until| Claim::Taken {
            status,
            detail: detail.map(str::to_owned),
            lease_until: until,
        };
        let again = |i: usize| Claim::Claimed {
            delivery_id: held[i].delivery_id,
            attempt: 2,
            since: now,
        };
        let expected = [
            again(0),
            taken(DeliveryStatus::Sending, None, now + Duration::seconds(90)),
            again(2),
            taken(DeliveryStatus::Sending, Some("503"), now + Duration::seconds(120)),
            taken(DeliveryStatus::Sent, None, now + Duration::seconds(60)),
            again(5),
        ];
        let mut checked = 0;
        for (got, want) in found.iter().zip(&expected) {
            assert_eq!(got, want, "{b}: claim {checked}");
            checked += 1;
        }
        assert_eq!(checked, 6, "{b}: one answer per claim, in order");
        // The rows: taken over ones at attempt 2 without a reason, the others as they were.
        let mut rows = Vec::new();
        for f in &r {
            rows.extend(s.deliveries_of(f.reminder_id).await.unwrap());
        }
        let seen: Vec<_> = rows.iter().map(|d| (d.attempts, d.detail.as_deref())).collect();
        assert_eq!(
            seen,
            [
                (2, None),
                (1, None),
                (2, None),
                (1, Some("503")),
                (1, None),
                (2, None)
            ],
            "{b}"
        );
    }
}

/// `n` e-mail reminders due at `at`.
pub async fn reminders(s: &Store, at: DateTime<Utc>, n: usize) -> Vec<ReminderFixture> {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        all.push(kit::reminder(s, &format!("reminder {i}"), at).await);
    }
    all
}
