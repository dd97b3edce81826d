//! notify's batched writes after sending, each called with several rows at once on both
//! backends, among them rows it must leave alone: the releases (fenced by the claims'
//! tokens), the settling of reminders, the deactivation of endpoints.

use super::notify_batches::{claim_at, deactivate_endpoint, finish, new_claim, reminders};
use chrono::{Duration, SubsecRound, Utc};
use todo_events_domain::{EndpointId, UserId};
use todo_events_store::notify::{Claim, Release, Route};
use todo_events_store::seed::NewEndpoint;
use todo_events_store::{Channel, DeliveryStatus, ReminderState, Store};
use todo_events_testkit as kit;

/// Releases in one call: the claims still held are given back, each until its own time
/// with its own reason; a stale claim (taken over since) and a finished delivery are not,
/// and their rows stay as they were.
#[tokio::test]
async fn releases_give_back_only_the_claims_still_held() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let (lease, later) = (Duration::seconds(60), now + Duration::seconds(61));
        let r = reminders(s, now, 4).await;
        let c: Vec<_> = r.iter().map(|f| claim_at(f, now, Route::EMAIL)).collect();
        let mut held = Vec::new();
        for claim in &c {
            held.push(new_claim(s, *claim, now, lease).await);
        }
        // The third is taken over (its first claim now stale), the fourth finished.
        let taken_over = s.claim_deliveries(&c[2..3], later, lease).await.unwrap();
        assert!(
            matches!(taken_over[..], [Claim::Claimed { attempt: 2, .. }]),
            "{b}"
        );
        finish(s, held[3], DeliveryStatus::Sent, now).await;

        let (first, second) = (later + Duration::seconds(30), later + Duration::seconds(300));
        let releases = [
            Release {
                held: held[0],
                reason: "503",
                until: first,
            },
            Release {
                held: held[1],
                reason: "429",
                until: second,
            },
            Release {
                held: held[2],
                reason: "stale",
                until: first,
            },
            Release {
                held: held[3],
                reason: "late",
                until: first,
            },
        ];
        let mut released = s.release_deliveries(&releases).await.unwrap();
        released.sort();
        assert_eq!(released, [held[0].delivery_id, held[1].delivery_id], "{b}");

        // As the next delivery finds them.
        let found = s
            .claim_deliveries(&c, later + Duration::seconds(1), lease)
            .await
            .unwrap();
        let taken = |status, detail: Option<&str>, until| Claim::Taken {
            status,
            detail: detail.map(str::to_owned),
            lease_until: until,
        };
        let expected = [
            taken(DeliveryStatus::Sending, Some("503"), first),
            taken(DeliveryStatus::Sending, Some("429"), second),
            taken(DeliveryStatus::Sending, None, later + lease),
            taken(DeliveryStatus::Sent, None, now + lease),
        ];
        let mut checked = 0;
        for (got, want) in found.iter().zip(&expected) {
            assert_eq!(got, want, "{b}: row {checked}");
            checked += 1;
        }
        assert_eq!(checked, 4, "{b}: rows checked");
    }
}

/// Settling in one call: an occurrence with every delivery finished moves to `sent` (some
/// sent) or `failed`; one with a delivery still sending, a cancelled one, one without any
/// delivery, and one asked for at another time than the reminder's (though that time's
/// delivery was sent) are left alone.
#[tokio::test]
async fn settling_moves_only_the_occurrences_with_nothing_left_sending() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let lease = Duration::seconds(60);
        let r = reminders(s, now, 6).await;
        let hook = Route {
            channel: Channel::Webhook,
            endpoint: EndpointId::new(7),
        };
        for (i, status) in [
            (0, DeliveryStatus::Sent),
            (1, DeliveryStatus::Failed),
            (3, DeliveryStatus::Sent),
        ] {
            let held = new_claim(s, claim_at(&r[i], now, Route::EMAIL), now, lease).await;
            finish(s, held, status, now).await;
        }
        // The third's e-mail was sent and its webhook is still sending.
        let held = new_claim(s, claim_at(&r[2], now, Route::EMAIL), now, lease).await;
        new_claim(s, claim_at(&r[2], now, hook), now, lease).await;
        finish(s, held, DeliveryStatus::Sent, now).await;
        // The sixth's delivery was for another time.
        let old = now - Duration::hours(1);
        let held = new_claim(s, claim_at(&r[5], old, Route::EMAIL), now, lease).await;
        finish(s, held, DeliveryStatus::Sent, now).await;
        // Finished, but left `published` (two finishes crossing), or cancelled.
        for i in [0, 1, 2, 4, 5] {
            s.set_reminder_state(r[i].reminder_id, ReminderState::Published)
                .await
                .unwrap();
        }
        s.set_reminder_state(r[3].reminder_id, ReminderState::Cancelled)
            .await
            .unwrap();

        let mut asked: Vec<_> = r.iter().map(|f| (f.reminder_id, now)).collect();
        asked[5].1 = old;
        let mut settled = s.settle_reminders(&asked, now).await.unwrap();
        settled.sort();
        assert_eq!(settled, [r[0].reminder_id, r[1].reminder_id], "{b}");
        let expected = [
            ReminderState::Sent,
            ReminderState::Failed,
            ReminderState::Published,
            ReminderState::Cancelled,
            ReminderState::Published,
            ReminderState::Published,
        ];
        let mut checked = 0;
        for (f, want) in r.iter().zip(expected) {
            let state = s.reminder_state(f.reminder_id).await.unwrap();
            assert_eq!(state, Some(want), "{b}: reminder {checked}");
            checked += 1;
        }
        assert_eq!(checked, 6, "{b}: rows checked");
    }
}

/// Deactivations in one call: each named active endpoint is deactivated with its reason (the
/// first of an endpoint named twice); one inactive already keeps its own, one not named
/// stays active.
#[tokio::test]
async fn deactivations_deactivate_each_named_active_endpoint_once() {
    for db in kit::backends().await {
        let (s, b) = (&db.store, db.backend);
        let now = Utc::now().trunc_subsecs(0);
        let r = kit::reminder(s, "endpoints", now).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(insert_webhook(s, r.user_id, i).await);
        }
        deactivate_endpoint(s, ids[2], "earlier", now).await;
        let gone = [
            (ids[0], "410 Gone"),
            (ids[1], "404 Not Found"),
            (ids[0], "410 again"),
            (ids[2], "later"),
        ];
        s.deactivate_endpoints(&gone, now + Duration::seconds(1))
            .await
            .unwrap();
        let expected = [
            (false, Some("410 Gone")),
            (false, Some("404 Not Found")),
            (false, Some("earlier")),
            (true, None),
        ];
        let mut checked = 0;
        for (id, (active, detail)) in ids.iter().zip(expected) {
            let got = (
                s.endpoint_active(*id).await.unwrap(),
                endpoint_detail(s, *id).await,
            );
            assert_eq!(
                got,
                (Some(active), detail.map(str::to_owned)),
                "{b}: endpoint {checked}"
            );
            checked += 1;
        }
        assert_eq!(checked, 4, "{b}: rows checked");
    }
}

/// A webhook endpoint of `user` (the `n`th).
async fn insert_webhook(s: &Store, user: UserId, n: usize) -> EndpointId {
    let target = format!("https://hooks.example.com/{n}");
    let endpoint = NewEndpoint {
        user_id: user,
        channel: Channel::Webhook,
        target: &target,
        format: "standard",
        secret: None,
        p256dh: None,
        auth: None,
    };
    s.insert_endpoint(&endpoint).await.unwrap()
}

/// `channel_endpoints.detail` of `id`.
async fn endpoint_detail(s: &Store, id: EndpointId) -> Option<String> {
    const SQL: &str = "SELECT detail FROM channel_endpoints WHERE id = $1";
    match s {
        Store::Postgres(pool) => sqlx::query_scalar(SQL).bind(id.get()).fetch_one(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(SQL).bind(id.get()).fetch_one(pool).await,
    }
    .unwrap()
}
