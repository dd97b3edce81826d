//! One conformance suite, run against SQLite and PostgreSQL: the store must behave the same
//! on both.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use todo_events_domain::{ReminderId, TaskId, UserId};
use todo_events_store::notify::{Claim, Finished, Held, NewClaim, Route};
use todo_events_store::recur::Instantiate;
use todo_events_store::seed::NewEndpoint;
use todo_events_store::{Channel, DeliveryStatus, ReminderState, Store};
use todo_events_testkit::{self as kit, at};

/// The batch statements of notify, several rows per call; and one row at a time through
/// them, as the tests here ask.
#[path = "conformance/agenda.rs"]
mod agenda;
#[path = "conformance/history.rs"]
mod history;
#[path = "conformance/notify_batches.rs"]
mod notify_batches;
#[path = "conformance/notify_writes.rs"]
mod notify_writes;
use notify_batches::{claim_delivery, deactivate_endpoint, release_delivery, settle_reminder};

#[tokio::test]
async fn instants_round_trip_exactly() {
    for db in kit::backends().await {
        for t in [
            "2026-03-08T07:30:00Z",
            "2026-03-08T07:30:00.5Z",
            "2026-03-08T07:30:00.123456Z",
            "1999-12-31T23:59:59Z",
        ] {
            let r = kit::reminder(&db.store, "t", at(t)).await;
            let ctx = db.store.reminder_context(r.reminder_id).await.unwrap().unwrap();
            assert_eq!(ctx.remind_at, at(t), "{}: {t}", db.backend);
        }
    }
}

#[tokio::test]
async fn reminder_claims_take_due_rows_once_and_respect_leases_and_owners() {
    for db in kit::backends().await {
        let s = &db.store;
        let now = Utc::now().trunc_subsecs(0);
        let due1 = kit::reminder(s, "due 1", now - Duration::minutes(2)).await;
        let due2 = kit::reminder(s, "due 2", now - Duration::minutes(1)).await;
        let later = kit::reminder(s, "later", now + Duration::hours(1)).await;
        let cancelled = kit::reminder(s, "cancelled", now - Duration::minutes(3)).await;
        s.set_reminder_state(cancelled.reminder_id, ReminderState::Cancelled)
            .await
            .unwrap();

        let lease = Duration::seconds(30);
        let first = s.claim_reminders("a", now, lease, 1, None).await.unwrap();
        assert_eq!(
            first.iter().map(|r| r.id).collect::<Vec<_>>(),
            [due1.reminder_id],
            "{}: oldest first, limit",
            db.backend
        );
        let second = s.claim_reminders("b", now, lease, 10, None).await.unwrap();
        assert_eq!(
            second.iter().map(|r| r.id).collect::<Vec<_>>(),
            [due2.reminder_id],
            "{}: claimed rows are not claimed again",
            db.backend
        );
        assert!(s
            .claim_reminders("c", now, lease, 10, None)
            .await
            .unwrap()
            .is_empty());

        // Only the owner marks; a lease that ran out lets another claimer take the row.
        assert_eq!(
            s.mark_reminders_published("b", &[due1.reminder_id], now)
                .await
                .unwrap(),
            0
        );
        let after_lease = now + Duration::seconds(31);
        let retaken = s
            .claim_reminders("c", after_lease, lease, 10, None)
            .await
            .unwrap();
        assert_eq!(retaken.len(), 2, "{}: both leases ran out", db.backend);
        assert_eq!(
            s.mark_reminders_published("a", &[due1.reminder_id], now)
                .await
                .unwrap(),
            0,
            "a lost its claim"
        );
        assert_eq!(
            s.mark_reminders_published("c", &[due1.reminder_id, due2.reminder_id], now)
                .await
                .unwrap(),
            2
        );
        assert!(s
            .claim_reminders("d", now + Duration::hours(2), lease, 10, None)
            .await
            .unwrap()
            .iter()
            .all(|r| r.id == later.reminder_id));
        assert_eq!(
            s.reminder_state(due1.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("published")
        );
        assert_eq!(
            s.reminder_state(cancelled.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("cancelled")
        );
    }
}

#[tokio::test]
async fn occurrence_claims_publish_each_occurrence_once() {
    for db in kit::backends().await {
        let s = &db.store;
        let now = Utc::now().trunc_subsecs(0);
        let occ = now - Duration::minutes(1);
        let rt = kit::recurring(s, "FREQ=DAILY", "2026-01-01T00:00:00", "UTC", occ, "latest", &[]).await;
        let lease = Duration::seconds(30);
        let claimed = s.claim_occurrences("a", now, lease, 10, None).await.unwrap();
        assert_eq!(claimed.len(), 1, "{}", db.backend);
        assert_eq!(claimed[0].as_ref().unwrap().next_occurrence, occ);
        assert!(s
            .claim_occurrences("b", now, lease, 10, None)
            .await
            .unwrap()
            .is_empty());
        assert!(
            !s.fast_forward("b", rt.id, occ, occ + Duration::days(1), now)
                .await
                .unwrap(),
            "not b's claim"
        );
        assert_eq!(
            s.mark_occurrences_published("a", &[(rt.id, occ)], now)
                .await
                .unwrap(),
            1
        );
        assert!(
            s.claim_occurrences("b", now + Duration::minutes(5), lease, 10, None)
                .await
                .unwrap()
                .is_empty(),
            "{}: published",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_batch_of_occurrences_is_marked_in_one_call_and_only_where_the_owner_holds_the_claim() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(30);
        let after = Some(Duration::minutes(10));
        let daily = |next| kit::recurring(s, "FREQ=DAILY", "2026-01-01T00:00:00", "UTC", next, "all", &[]);
        // The oldest is taken over by b once a's lease ran out.
        let taken = daily(now - Duration::minutes(3)).await;
        let one = daily(now - Duration::minutes(2)).await;
        let two = daily(now - Duration::minutes(1)).await;
        assert_eq!(
            s.claim_occurrences("a", now, lease, 10, after)
                .await
                .unwrap()
                .len(),
            3,
            "{b}"
        );
        let later = now + Duration::seconds(31);
        let by_b = s.claim_occurrences("b", later, lease, 1, after).await.unwrap();
        assert_eq!(by_b[0].as_ref().unwrap().id, taken.id, "{b}");

        let batch = [
            (taken.id, now - Duration::minutes(3)),
            (one.id, now - Duration::minutes(2)),
            (two.id, now - Duration::minutes(1)),
        ];
        assert_eq!(
            s.mark_occurrences_published("a", &batch, later).await.unwrap(),
            2,
            "{b}"
        );
        assert_eq!(
            marks(s, taken.id).await,
            (None, None, 0, Some("b".into())),
            "{b}: b's claim"
        );
        for (id, occ) in &batch[1..] {
            assert_eq!(
                marks(s, *id).await,
                (Some(*occ), Some(later), 1, None),
                "{b}: marked"
            );
        }

        // Claimed again after the delay: the same occurrence counts up, a new one starts at 1.
        let t = later + Duration::minutes(11);
        assert_eq!(
            s.claim_occurrences("c", t, lease, 10, after).await.unwrap().len(),
            3,
            "{b}"
        );
        let next_of_two = now - Duration::minutes(1) + Duration::days(1);
        let again = [(one.id, batch[1].1), (two.id, next_of_two)];
        assert_eq!(
            s.mark_occurrences_published("c", &again, t).await.unwrap(),
            2,
            "{b}"
        );
        assert_eq!(
            marks(s, one.id).await,
            (Some(batch[1].1), Some(t), 2, None),
            "{b}"
        );
        assert_eq!(
            marks(s, two.id).await,
            (Some(next_of_two), Some(t), 1, None),
            "{b}"
        );
        assert_eq!(
            s.mark_occurrences_published("c", &[], t).await.unwrap(),
            0,
            "{b}: nothing"
        );
    }
}

/// A recurring task's publish marks: (published occurrence, published at, publish count,
/// claim owner).
type Marks = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, i32, Option<String>);

async fn marks(s: &Store, id: todo_events_domain::RecurringTaskId) -> Marks {
    const SQL: &str = "SELECT published_occurrence, published_at, publish_count, lease_owner \
         FROM recurring_tasks WHERE id = $1";
    let row = match s {
        Store::Postgres(pool) => sqlx::query_as(SQL).bind(id.get()).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_as(SQL).bind(id.get()).fetch_one(pool).await,
    };
    row.unwrap_or_else(|e| panic!("recurring task {id}: {e}"))
}

#[tokio::test]
async fn delivery_claims_are_exclusive_until_finished_released_or_expired() {
    for db in kit::backends().await {
        let s = &db.store;
        let now = Utc::now().trunc_subsecs(0);
        let r = kit::reminder(s, "claim", now).await;
        let lease = Duration::seconds(60);
        let Claim::Claimed {
            delivery_id,
            attempt: 1,
            ..
        } = claim_delivery(s, &claim(&r, now), now, lease).await
        else {
            panic!("{}: first claim wins", db.backend)
        };
        assert!(
            matches!(claim_delivery(s, &claim(&r, now), now, lease).await, Claim::Taken { status, .. } if status == DeliveryStatus::Sending)
        );
        // The holder vanished: after the lease another delivery takes over.
        let later = now + Duration::seconds(61);
        let Claim::Claimed {
            delivery_id: again,
            attempt: 2,
            since,
        } = claim_delivery(s, &claim(&r, now), later, lease).await
        else {
            panic!("{}: takeover after the lease", db.backend)
        };
        assert_eq!(again, delivery_id);
        assert_eq!(
            since, now,
            "{}: a take-over keeps the first claim's time",
            db.backend
        );
        let held = |attempt| Held { delivery_id, attempt };
        assert!(release_delivery(s, held(2), "451 try later", later).await);
        assert!(matches!(
            claim_delivery(s, &claim(&r, now), later, lease).await,
            Claim::Claimed { attempt: 3, .. }
        ));
        let recorded = s
            .finish_deliveries(
                &[(
                    held(3),
                    Finished::Sent {
                        recipient: "a@b.c",
                        message_id: "<m>",
                    },
                )],
                later,
            )
            .await
            .unwrap();
        assert_eq!(recorded, [delivery_id], "{}", db.backend);
        let far = later + Duration::days(1);
        assert!(
            matches!(claim_delivery(s, &claim(&r, now), far, lease).await, Claim::Taken { status, .. } if status == DeliveryStatus::Sent)
        );
        assert_eq!(
            s.reminder_state(r.reminder_id).await.unwrap().map(|s| s.as_str()),
            Some("sent")
        );
        let d = &s.deliveries_of(r.reminder_id).await.unwrap()[0];
        assert_eq!(
            (d.message_id.as_deref(), d.recipient.as_deref()),
            (Some("<m>"), Some("a@b.c"))
        );
    }
}

/// A claimer whose lease ran out (A) while another took the delivery over (B): A's release
/// and A's finish change nothing (and say so), B's outcome is the one kept, and a third
/// delivery cannot take B's live claim.
#[tokio::test]
async fn a_stale_claim_can_neither_release_nor_finish_the_claim_that_took_over() {
    let mut checked = 0;
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(60);
        for stale_finishes in [false, true] {
            let r = kit::reminder(s, "fenced", now).await;
            let Claim::Claimed {
                delivery_id,
                attempt: a,
                ..
            } = claim_delivery(s, &claim(&r, now), now, lease).await
            else {
                panic!("{b}: A claims")
            };
            let later = now + Duration::seconds(61);
            let Claim::Claimed { attempt: b_token, .. } =
                claim_delivery(s, &claim(&r, now), later, lease).await
            else {
                panic!("{b}: B takes the expired claim over")
            };
            assert_eq!((a, b_token), (1, 2), "{b}: the take-over moved the token");
            let stale = Held {
                delivery_id,
                attempt: a,
            };
            if stale_finishes {
                let recorded = s
                    .finish_deliveries(
                        &[(
                            stale,
                            Finished::Failed {
                                recipient: "a@b.c",
                                detail: "550 from A",
                            },
                        )],
                        later,
                    )
                    .await
                    .unwrap();
                assert!(recorded.is_empty(), "{b}: A's finish records nothing");
            } else {
                assert!(
                    !release_delivery(s, stale, "451 from A", later).await,
                    "{b}: A's release changes nothing"
                );
            }
            // B's claim is still live: a third delivery does not get it.
            assert!(
                matches!(
                    claim_delivery(s, &claim(&r, now), later, lease).await,
                    Claim::Taken {
                        status: DeliveryStatus::Sending,
                        detail: None,
                        ..
                    }
                ),
                "{b}: B still holds the claim"
            );
            let d = &s.deliveries_of(r.reminder_id).await.unwrap()[0];
            assert_eq!(
                (d.status, d.attempts, d.detail.as_deref()),
                (DeliveryStatus::Sending, 2, None),
                "{b}"
            );
            let recorded = s
                .finish_deliveries(
                    &[(
                        Held {
                            delivery_id,
                            attempt: b_token,
                        },
                        Finished::Sent {
                            recipient: "a@b.c",
                            message_id: "<b>",
                        },
                    )],
                    later,
                )
                .await
                .unwrap();
            assert_eq!(recorded, [delivery_id], "{b}: B's outcome is recorded");
            let d = &s.deliveries_of(r.reminder_id).await.unwrap()[0];
            assert_eq!(
                (d.status, d.message_id.as_deref()),
                (DeliveryStatus::Sent, Some("<b>")),
                "{b}"
            );
            assert_eq!(
                s.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Sent),
                "{b}"
            );
            // And once finished, the stale claim still changes nothing.
            assert!(!release_delivery(s, stale, "late", later).await, "{b}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "both cases on at least one backend, got {checked}");
}

/// The scheduler's retry set: a published reminder whose delivery waits for its retry time
/// is claimed once that time has come (not before, not counted as republished), by one
/// scheduler only, and not again until the delivery is given back with a later time.
#[tokio::test]
async fn a_delivery_waiting_for_its_retry_brings_its_reminder_back_once_its_time_has_come() {
    let mut checked = 0;
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(60);
        let r = kit::reminder(s, "retried", now).await;
        let claimed = s.claim_reminders("a", now, lease, 10, None).await.unwrap();
        assert_eq!(claimed.len(), 1, "{b}");
        s.mark_reminders_published("a", &[r.reminder_id], now)
            .await
            .unwrap();
        let webhook = Route {
            channel: Channel::Webhook,
            endpoint: todo_events_domain::EndpointId::new(7),
        };
        let c = NewClaim {
            route: webhook,
            ..claim(&r, now)
        };
        let Claim::Claimed {
            delivery_id, attempt, ..
        } = claim_delivery(s, &c, now, lease).await
        else {
            panic!("{b}")
        };
        let retry_at = now + Duration::seconds(30);
        assert!(release_delivery(s, Held { delivery_id, attempt }, "503", retry_at).await);
        let pass = |owner: &'static str, at| async move {
            let got = s.claim_reminders(owner, at, lease, 10, None).await.unwrap();
            got.iter().map(|c| (c.id, c.again)).collect::<Vec<_>>()
        };
        assert!(
            pass("a", now + Duration::seconds(29)).await.is_empty(),
            "{b}: not before its time"
        );
        let at = retry_at + Duration::seconds(1);
        assert_eq!(
            pass("a", at).await,
            [(r.reminder_id, false)],
            "{b}: claimed, not a republish"
        );
        assert!(
            pass("b", at).await.is_empty(),
            "{b}: another scheduler does not get it"
        );
        s.mark_reminders_published("a", &[r.reminder_id], at)
            .await
            .unwrap();
        assert!(
            pass("b", at + Duration::seconds(5)).await.is_empty(),
            "{b}: published since its retry time"
        );
        // notify takes it over, it fails again: back at its next time.
        let Claim::Claimed { attempt, .. } = claim_delivery(s, &c, at, lease).await else {
            panic!("{b}: takeable at its time")
        };
        assert_eq!(attempt, 2, "{b}");
        let next = at + Duration::seconds(60);
        assert!(release_delivery(s, Held { delivery_id, attempt }, "503", next).await);
        assert!(pass("b", next - Duration::seconds(1)).await.is_empty(), "{b}");
        assert_eq!(pass("b", next).await, [(r.reminder_id, false)], "{b}");
        checked += 1;
    }
    assert!(checked >= 1);
}

/// An e-mail's released claim is for the event's own redelivery (the relay is everyone's):
/// the retry set never publishes its reminder again, however long the claim stays released.
/// (It did, once per scheduler pass: a poison reminder whose mailbox answers 451 reached the
/// dead-letter topic 50 times in one rehearsal.)
#[tokio::test]
async fn a_released_email_claim_never_brings_its_reminder_back_through_the_retry_set() {
    let mut checked = 0;
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(60);
        let r = kit::reminder(s, "mailbox says 451", now).await;
        assert_eq!(
            s.claim_reminders("a", now, lease, 10, None).await.unwrap().len(),
            1,
            "{b}"
        );
        s.mark_reminders_published("a", &[r.reminder_id], now)
            .await
            .unwrap();
        let Claim::Claimed {
            delivery_id, attempt, ..
        } = claim_delivery(s, &claim(&r, now), now, lease).await
        else {
            panic!("{b}")
        };
        assert!(
            release_delivery(
                s,
                Held { delivery_id, attempt },
                "451",
                now + Duration::seconds(1)
            )
            .await
        );
        let later = now + Duration::seconds(120);
        let again = s.claim_reminders("b", later, lease, 10, None).await.unwrap();
        assert!(again.is_empty(), "{b}: claimed {again:?}");
        checked += 1;
    }
    assert!(checked >= 1);
}

#[tokio::test]
async fn the_instance_transaction_is_idempotent_and_advances_only_from_its_occurrence() {
    for db in kit::backends().await {
        let s = &db.store;
        let occ = at("2026-01-02T09:00:00Z");
        let fx = kit::recurring(
            s,
            "FREQ=DAILY",
            "2026-01-01T09:00:00",
            "UTC",
            occ,
            "all",
            &[600, 60],
        )
        .await;
        let rt = s.recurring_task(fx.id).await.unwrap().unwrap();
        let job = Instantiate {
            recurring: &rt,
            occurrence: occ,
            reminders: vec![occ - Duration::minutes(10), occ - Duration::minutes(1)],
            next: Some(occ + Duration::days(1)),
            cursor: None,
            now: Utc::now(),
        };
        let first = s.instantiate(&job).await.unwrap();
        assert!(
            first.created_task_id.is_some() && first.advanced,
            "{}",
            db.backend
        );
        assert_eq!(first.reminders_created, 2);
        let second = s.instantiate(&job).await.unwrap();
        assert_eq!(
            (second.created_task_id, second.advanced),
            (None, false),
            "{}",
            db.backend
        );
        assert_eq!(second.existing_task_id, first.created_task_id);
        // An out-of-order later occurrence gets its instance without moving the schedule.
        let ahead = Instantiate {
            occurrence: occ + Duration::days(3),
            next: Some(occ + Duration::days(4)),
            reminders: vec![],
            ..job.clone()
        };
        let third = s.instantiate(&ahead).await.unwrap();
        assert!(
            third.created_task_id.is_some() && !third.advanced,
            "{}",
            db.backend
        );
        assert_eq!(
            s.recurring_task(fx.id).await.unwrap().unwrap().next_occurrence,
            Some(occ + Duration::days(1))
        );
        // The end of the rule deactivates.
        let last = Instantiate {
            occurrence: occ + Duration::days(1),
            next: None,
            reminders: vec![],
            ..job.clone()
        };
        assert!(s.instantiate(&last).await.unwrap().advanced);
        assert!(
            !s.recurring_task(fx.id).await.unwrap().unwrap().active,
            "{}",
            db.backend
        );
        let counts = s.table_counts().await.unwrap();
        assert_eq!(counts.iter().find(|(t, _)| *t == "tasks").unwrap().1, 3);
        assert_eq!(counts.iter().find(|(t, _)| *t == "reminders").unwrap().1, 2);
    }
}

/// A Web Push subscription's keys (RFC 8291's example) and a webhook, for `user`.
fn endpoint(user: UserId, channel: Channel, target: &'static str) -> NewEndpoint<'static> {
    let push = channel == Channel::WebPush;
    NewEndpoint {
        user_id: user,
        channel,
        target,
        format: "standard",
        secret: (!push).then_some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        p256dh: push.then_some(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        ),
        auth: push.then_some("BTBZMqHH6r4Tts7J_aSIgg"),
    }
}

#[tokio::test]
async fn each_route_is_claimed_once_and_the_reminder_moves_on_when_none_is_left_sending() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(60);
        let r = kit::reminder(s, "routes", now).await;
        let hook = s
            .insert_endpoint(&endpoint(
                r.user_id,
                Channel::Webhook,
                "https://hooks.example.com/a",
            ))
            .await
            .unwrap();
        let push = s
            .insert_endpoint(&endpoint(
                r.user_id,
                Channel::WebPush,
                "https://push.example.net/s/1",
            ))
            .await
            .unwrap();
        let old = s
            .insert_endpoint(&endpoint(
                r.user_id,
                Channel::Webhook,
                "https://hooks.example.com/old",
            ))
            .await
            .unwrap();
        deactivate_endpoint(s, old, "gone", now).await;
        let other = kit::reminder(s, "someone else's", now).await;
        s.insert_endpoint(&endpoint(other.user_id, Channel::Webhook, "https://x.example/"))
            .await
            .unwrap();

        // E-mail only: the endpoints are not read at all.
        let ctx = s.reminder_context(r.reminder_id).await.unwrap().unwrap();
        assert_eq!(
            (ctx.channels.known.as_slice(), ctx.endpoints.len()),
            (&[Channel::Email][..], 0),
            "{b}"
        );
        s.set_reminder_channels(r.reminder_id, "webpush, Email,sms,webhook")
            .await
            .unwrap();
        let ctx = s.reminder_context(r.reminder_id).await.unwrap().unwrap();
        assert_eq!(
            ctx.channels.known,
            [Channel::Email, Channel::Webhook, Channel::WebPush],
            "{b}"
        );
        assert_eq!(ctx.channels.unknown, ["sms"], "{b}");
        let active: Vec<_> = ctx.endpoints.iter().map(|e| (e.id, e.channel)).collect();
        assert_eq!(
            active,
            [(hook, Channel::Webhook), (push, Channel::WebPush)],
            "{b}: the user's active ones"
        );
        assert_eq!(
            ctx.endpoints[0].secret.as_deref(),
            Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        );
        assert!(ctx.endpoints[1].p256dh.is_some() && ctx.endpoints[1].auth.is_some());
        let shown = format!("{:?}", ctx.endpoints);
        assert!(
            !shown.contains("whsec_") && !shown.contains("BTBZ"),
            "{b}: {shown}"
        );

        let routes = [
            Route::EMAIL,
            Route {
                channel: Channel::Webhook,
                endpoint: Some(hook),
            },
            Route {
                channel: Channel::WebPush,
                endpoint: Some(push),
            },
        ];
        let claims: Vec<NewClaim> = routes
            .iter()
            .map(|&route| NewClaim {
                route,
                ..claim(&r, now)
            })
            .collect();
        let mut claimed = s.claim_new_deliveries(&claims, now, lease).await.unwrap();
        claimed.sort();
        let keys: Vec<_> = claimed.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            routes.map(|route| (r.reminder_id, route)),
            "{b}: one claim per route"
        );
        assert!(
            s.claim_new_deliveries(&claims, now, lease)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        let id_of = |i: usize| claimed[i].1;

        // E-mail sent, the webhook failed for good, the push still sending: not done yet.
        let state = |id| async move { s.reminder_state(id).await.unwrap().unwrap() };
        let before = state(r.reminder_id).await;
        let new = |i: usize| Held {
            delivery_id: id_of(i),
            attempt: 1,
        };
        s.finish_deliveries(
            &[
                (
                    new(0),
                    Finished::Sent {
                        recipient: "a@b.c",
                        message_id: "<m>",
                    },
                ),
                (
                    new(1),
                    Finished::Failed {
                        recipient: "https://hooks.example.com",
                        detail: "400",
                    },
                ),
            ],
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            state(r.reminder_id).await,
            before,
            "{b}: a delivery is still sending"
        );

        // The push service said 429, Retry-After 30 s: held until then, with why.
        assert!(release_delivery(s, new(2), "429 Too Many Requests", now + Duration::seconds(30)).await);
        let push_claim = claims[2];
        match claim_delivery(s, &push_claim, now + Duration::seconds(10), lease).await {
            Claim::Taken {
                status: DeliveryStatus::Sending,
                detail,
                lease_until,
            } => {
                assert_eq!(detail.as_deref(), Some("429 Too Many Requests"), "{b}");
                assert_eq!(lease_until, now + Duration::seconds(30), "{b}");
            }
            other => panic!("{b}: held until Retry-After, got {other:?}"),
        }
        let Claim::Claimed {
            delivery_id,
            attempt: 2,
            ..
        } = claim_delivery(s, &push_claim, now + Duration::seconds(31), lease).await
        else {
            panic!("{b}: takeable after Retry-After")
        };
        assert_eq!(delivery_id, id_of(2));
        s.finish_deliveries(
            &[(
                Held {
                    delivery_id,
                    attempt: 2,
                },
                Finished::Failed {
                    recipient: "https://push.example.net",
                    detail: "410 Gone",
                },
            )],
            now,
        )
        .await
        .unwrap();
        assert_eq!(
            state(r.reminder_id).await,
            ReminderState::Sent,
            "{b}: e-mail was sent"
        );
        deactivate_endpoint(s, push, "410 Gone", now).await;
        assert_eq!(s.endpoint_active(push).await.unwrap(), Some(false), "{b}");
        assert_eq!(s.endpoint_active(hook).await.unwrap(), Some(true), "{b}");

        let rows = s.deliveries_of(r.reminder_id).await.unwrap();
        let seen: Vec<_> = rows
            .iter()
            .map(|d| (d.channel, d.endpoint_id, d.status))
            .collect();
        assert_eq!(
            seen,
            [
                (Channel::Email, None, DeliveryStatus::Sent),
                (Channel::Webhook, Some(hook), DeliveryStatus::Failed),
                (Channel::WebPush, Some(push), DeliveryStatus::Failed),
            ],
            "{b}"
        );

        // Every route failed for good: the reminder failed. Finished but left `published`
        // (two finishes crossing): settling repairs it.
        let f = kit::reminder(s, "all fail", now).await;
        let Claim::Claimed {
            delivery_id, attempt, ..
        } = claim_delivery(s, &claim(&f, now), now, lease).await
        else {
            panic!("{b}")
        };
        s.finish_deliveries(
            &[(
                Held { delivery_id, attempt },
                Finished::Failed {
                    recipient: "x@y.z",
                    detail: "550",
                },
            )],
            now,
        )
        .await
        .unwrap();
        assert_eq!(state(f.reminder_id).await, ReminderState::Failed, "{b}");
        s.set_reminder_state(f.reminder_id, ReminderState::Published)
            .await
            .unwrap();
        assert!(settle_reminder(s, f.reminder_id, now, now).await, "{b}");
        assert_eq!(state(f.reminder_id).await, ReminderState::Failed, "{b}");
        let open = kit::reminder(s, "never claimed", now).await;
        assert!(
            !settle_reminder(s, open.reminder_id, now, now).await,
            "{b}: no delivery"
        );
    }
}

/// The migrations before channels, then `0004_channels` over a delivery made before it: the
/// delivery keeps its row (endpoint 0, e-mail), and the new uniqueness holds.
#[tokio::test]
async fn the_channels_migration_keeps_the_deliveries_made_before_it() {
    let pg = [
        include_str!("../migrations/postgres/0001_schema.sql"),
        include_str!("../migrations/postgres/0002_republish.sql"),
        include_str!("../migrations/postgres/0003_series_cursor.sql"),
        include_str!("../migrations/postgres/0004_channels.sql"),
    ];
    let lite = [
        include_str!("../migrations/sqlite/0001_schema.sql"),
        include_str!("../migrations/sqlite/0002_republish.sql"),
        include_str!("../migrations/sqlite/0003_series_cursor.sql"),
        include_str!("../migrations/sqlite/0004_channels.sql"),
    ];
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let steps = if b == "sqlite" { lite } else { pg };
        // An empty database of the same backend.
        let reset = if b == "sqlite" {
            "DROP TABLE deliveries; DROP TABLE channel_endpoints; DROP TABLE reminders;              DROP TABLE tasks; DROP TABLE recurring_tasks; DROP TABLE users; DROP TABLE _sqlx_migrations"
        } else {
            "DROP SCHEMA public CASCADE; CREATE SCHEMA public"
        };
        raw(s, reset).await;
        for step in &steps[..3] {
            raw(s, step).await;
        }
        raw(
            s,
            "INSERT INTO users (id, email) VALUES (1, 'a@b.c');              INSERT INTO tasks (id, user_id, title) VALUES (1, 1, 't');              INSERT INTO reminders (id, task_id, user_id, remind_at)                VALUES (1, 1, 1, '2026-01-01T09:00:00Z');              INSERT INTO deliveries (id, reminder_id, remind_at, event_id, status, recipient,                message_id, claimed_at, lease_until)                VALUES (7, 1, '2026-01-01T09:00:00Z', 'e', 'sent', 'a@b.c', '<m>',                '2026-01-01T09:00:01Z', '2026-01-01T09:02:01Z')",
        )
        .await;
        raw(s, steps[3]).await;
        let rows = s.deliveries_of(ReminderId::new(1).unwrap()).await.unwrap();
        let seen: Vec<_> = rows
            .iter()
            .map(|d| {
                (
                    d.id.get(),
                    d.channel,
                    d.endpoint_id,
                    d.status,
                    d.message_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [(7, Channel::Email, None, DeliveryStatus::Sent, Some("<m>"))],
            "{b}"
        );
        let twice = write_directly(
            s,
            "INSERT INTO deliveries (reminder_id, remind_at, channel, endpoint_id, event_id,              status, claimed_at, lease_until) VALUES (1, '2026-01-01T09:00:00Z', 'email', 0, 'f',              'sending', '2026-01-01T09:00:01Z', '2026-01-01T09:02:01Z')",
        )
        .await;
        assert!(
            twice.is_err(),
            "{b}: one delivery per reminder occurrence, channel and endpoint"
        );
        write_directly(
            s,
            "INSERT INTO deliveries (reminder_id, remind_at, channel, endpoint_id, event_id,              status, claimed_at, lease_until) VALUES (1, '2026-01-01T09:00:00Z', 'webhook', 3, 'f',              'sending', '2026-01-01T09:00:01Z', '2026-01-01T09:02:01Z')",
        )
        .await
        .unwrap_or_else(|e| panic!("{b}: another endpoint is another delivery: {e}"));
    }
}

/// Runs a script of several statements.
async fn raw(s: &Store, sql: &str) {
    let done = match s {
        Store::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
    };
    done.unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// The delivery claim of a reminder fixture's occurrence, asked for by event "e".
fn claim(r: &kit::ReminderFixture, remind_at: chrono::DateTime<Utc>) -> NewClaim<'static> {
    NewClaim {
        reminder_id: r.reminder_id,
        remind_at,
        route: Route::EMAIL,
        event_id: "e",
    }
}

/// A statement as another writer (the todo app, an operator) would send it.
async fn write_directly(s: &Store, sql: &str) -> Result<(), sqlx::Error> {
    match s {
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
}

#[tokio::test]
async fn constraints_are_enforced_on_both_backends() {
    for db in kit::backends().await {
        let s = &db.store;
        let now = Utc::now();
        let (no_task, no_user) = (TaskId::new(999_999).unwrap(), UserId::new(999_999).unwrap());
        assert!(
            s.insert_reminder(no_task, no_user, now).await.is_err(),
            "{}: foreign keys",
            db.backend
        );
        let r = kit::reminder(s, "c", now).await;
        let state = format!(
            "UPDATE reminders SET state = 'teleported' WHERE id = {}",
            r.reminder_id
        );
        assert!(
            write_directly(s, &state).await.is_err(),
            "{}: state check",
            db.backend
        );
        let status = format!("UPDATE tasks SET status = 'maybe' WHERE id = {}", r.task_id);
        assert!(
            write_directly(s, &status).await.is_err(),
            "{}: status check",
            db.backend
        );
        // Endpoints: a known channel, a known format, a subscription with its keys.
        let refused = [
            (Channel::Webhook, "teams", None, "format check"),
            (
                Channel::WebPush,
                "standard",
                None,
                "a subscription needs p256dh and auth",
            ),
        ];
        for (channel, format, p256dh, why) in refused {
            let e = NewEndpoint {
                user_id: r.user_id,
                channel,
                target: "https://x.example/",
                format,
                secret: None,
                p256dh,
                auth: None,
            };
            assert!(s.insert_endpoint(&e).await.is_err(), "{}: {why}", db.backend);
        }
        let sms = format!(
            "INSERT INTO channel_endpoints (user_id, channel, target) VALUES ({}, 'sms', 'x')",
            r.user_id
        );
        assert!(
            write_directly(s, &sms).await.is_err(),
            "{}: channel check",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_malformed_stored_value_is_an_error_naming_its_row_never_a_default() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let occ = Utc::now().trunc_subsecs(0) - Duration::minutes(1);
        let good = kit::recurring(s, "FREQ=DAILY", "2026-01-01T00:00:00", "UTC", occ, "all", &[60]).await;
        let offsets = kit::recurring(s, "FREQ=DAILY", "2026-01-01T00:00:00", "UTC", occ, "all", &[60]).await;
        let rule = kit::recurring(s, "FREQ=DAILY", "2026-01-01T00:00:00", "UTC", occ, "all", &[]).await;
        let sql = format!(
            "UPDATE recurring_tasks SET reminder_offsets = '[\"15m\"]' WHERE id = {}",
            offsets.id
        );
        write_directly(s, &sql).await.unwrap();
        let sql = format!(
            "UPDATE recurring_tasks SET rrule = 'FREQ=SOMETIMES' WHERE id = {}",
            rule.id
        );
        write_directly(s, &sql).await.unwrap();

        let err = s.recurring_task(offsets.id).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("recurring_tasks row {}: reminder_offsets", offsets.id)),
            "{b}: {err}"
        );
        // A batch read keeps each row's own verdict: the good row is usable.
        let mut session = s.session().await.unwrap();
        let state = session
            .recurring_state(&[(good.id, occ), (offsets.id, occ), (rule.id, occ)])
            .await
            .unwrap();
        assert!(state.tasks[&good.id].is_ok(), "{b}");
        assert_eq!(
            state.tasks[&offsets.id].as_ref().unwrap_err().id,
            offsets.id.get(),
            "{b}"
        );
        let bad_rule = state.tasks[&rule.id].as_ref().unwrap_err();
        assert!(
            bad_rule
                .to_string()
                .starts_with(&format!("recurring_tasks row {}: the stored rule", rule.id)),
            "{b}: {bad_rule}"
        );
        // The scheduler's claim gives the same verdicts, row by row.
        let claimed = s
            .claim_occurrences("a", Utc::now(), Duration::seconds(30), 10, None)
            .await
            .unwrap();
        let verdicts: Vec<(i64, bool)> = claimed
            .iter()
            .map(|c| match c {
                Ok(c) => (c.id.get(), true),
                Err(m) => (m.id, false),
            })
            .collect();
        assert_eq!(verdicts.len(), 3, "{b}");
        assert!(verdicts.contains(&(good.id.get(), true)), "{b}: {verdicts:?}");
        assert!(verdicts.contains(&(rule.id.get(), false)), "{b}: {verdicts:?}");

        let r = kit::reminder(s, "state", occ).await;
        let sql = format!("UPDATE tasks SET status = 'todo' WHERE id = {}", r.task_id);
        write_directly(s, &sql).await.unwrap();
        assert!(s.reminder_context(r.reminder_id).await.unwrap().is_some(), "{b}");
    }
}

#[tokio::test]
async fn text_is_stored_and_read_back_verbatim_through_bound_parameters() {
    // Values travel as bound parameters, never as SQL text: quotes, comment markers and
    // placeholders in user data are stored and read back as written.
    let hostile = "Robert'); DROP TABLE users; -- \" $1 ? \\ %";
    for db in kit::backends().await {
        let s = &db.store;
        let user = s
            .insert_user(&todo_events_store::seed::NewUser {
                email: "o'brien@example.test",
                display_name: hostile,
                timezone: "UTC",
            })
            .await
            .unwrap();
        let task = s
            .insert_task(&todo_events_store::seed::NewTask {
                user_id: user,
                title: hostile,
                description: "'; --",
                due_at: None,
            })
            .await
            .unwrap();
        let reminder = s.insert_reminder(task, user, Utc::now()).await.unwrap();
        let ctx = s.reminder_context(reminder).await.unwrap().unwrap();
        let b = db.backend;
        assert_eq!(ctx.email, "o'brien@example.test", "{b}");
        assert_eq!(
            (ctx.display_name.as_str(), ctx.task_title.as_str()),
            (hostile, hostile),
            "{b}"
        );
        assert_eq!(ctx.task_description, "'; --", "{b}");
        let counts = s.table_counts().await.unwrap();
        assert_eq!(counts[0], ("users", 1), "{b}: the users table is still there");
    }
}

#[tokio::test]
async fn published_items_without_effect_are_claimed_again_after_the_delay_a_bounded_number_of_times() {
    use todo_events_store::scheduler::PUBLISH_LIMIT;
    for db in kit::backends().await {
        let s = &db.store;
        let b = db.backend;
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(30);
        let after = Some(Duration::minutes(10));
        let lost = kit::reminder(s, "lost by the broker", now - Duration::minutes(1)).await;
        let mailed = kit::reminder(s, "mailed", now - Duration::minutes(1)).await;
        let first = s.claim_reminders("a", now, lease, 10, after).await.unwrap();
        assert_eq!(first.len(), 2, "{b}");
        assert!(
            first.iter().all(|r| !r.again),
            "{b}: a first publish is not a republish"
        );
        let ids = [lost.reminder_id, mailed.reminder_id];
        assert_eq!(s.mark_reminders_published("a", &ids, now).await.unwrap(), 2);
        s.set_reminder_state(mailed.reminder_id, ReminderState::Sent)
            .await
            .unwrap();

        let soon = now + Duration::minutes(9);
        assert!(
            s.claim_reminders("b", soon, lease, 10, after)
                .await
                .unwrap()
                .is_empty(),
            "{b}: within the delay"
        );
        let mut t = now;
        for publish in 2..=PUBLISH_LIMIT {
            t += Duration::minutes(11);
            assert!(
                s.claim_reminders("b", t, lease, 10, None)
                    .await
                    .unwrap()
                    .is_empty(),
                "{b}: republishing off"
            );
            let again = s.claim_reminders("b", t, lease, 10, after).await.unwrap();
            assert_eq!(again.len(), 1, "{b}: publish {publish}");
            assert_eq!((again[0].id, again[0].again), (lost.reminder_id, true), "{b}");
            assert_eq!(
                s.mark_reminders_published("b", &[lost.reminder_id], t)
                    .await
                    .unwrap(),
                1
            );
        }
        assert!(
            s.claim_reminders("c", t + Duration::days(1), lease, 10, after)
                .await
                .unwrap()
                .is_empty(),
            "{b}: at most {PUBLISH_LIMIT} publishes"
        );

        // The app moves the reminder: pending again, a fresh count.
        s.set_reminder_state(lost.reminder_id, ReminderState::Pending)
            .await
            .unwrap();
        let moved = s
            .claim_reminders("d", t + Duration::days(1), lease, 10, after)
            .await
            .unwrap();
        assert_eq!((moved.len(), moved[0].again), (1, false), "{b}");

        // An occurrence published and not instantiated is published again, once the delay passed.
        let occ = now - Duration::minutes(1);
        let rt = kit::recurring(s, "FREQ=DAILY", "2026-01-01T00:00:00", "UTC", occ, "all", &[]).await;
        let claimed = s.claim_occurrences("a", now, lease, 10, after).await.unwrap();
        assert_eq!(
            (claimed.len(), claimed[0].as_ref().unwrap().again),
            (1, false),
            "{b}"
        );
        assert_eq!(
            s.mark_occurrences_published("a", &[(rt.id, occ)], now)
                .await
                .unwrap(),
            1,
            "{b}"
        );
        assert!(
            s.claim_occurrences("b", soon, lease, 10, after)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        let later = now + Duration::minutes(11);
        assert!(
            s.claim_occurrences("b", later, lease, 10, None)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        let again = s.claim_occurrences("b", later, lease, 10, after).await.unwrap();
        assert_eq!(
            (
                again.len(),
                again[0].as_ref().unwrap().again,
                again[0].as_ref().unwrap().next_occurrence
            ),
            (1, true, occ),
            "{b}"
        );
    }
}

#[tokio::test]
async fn generic_plans_are_set_on_every_postgres_connection_and_only_when_asked() {
    let Some(db) = kit::postgres().await else { return };
    for (generic, expected) in [(true, "force_generic_plan"), (false, "auto")] {
        let mut opts = todo_events_store::StoreOptions::new(db.url.clone());
        opts.generic_plans = generic;
        let todo_events_store::Store::Postgres(pool) = todo_events_store::Store::open(&opts).unwrap() else {
            unreachable!("a postgres:// URL opens PostgreSQL")
        };
        // Two connections at once: the setting comes with each new connection.
        let (mut a, mut b) = (pool.acquire().await.unwrap(), pool.acquire().await.unwrap());
        for conn in [&mut a, &mut b] {
            let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(mode, expected, "generic_plans = {generic}");
        }
    }
}
