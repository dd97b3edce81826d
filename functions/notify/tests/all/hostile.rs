//! The hostile-caller table's notify rows (`crates/testkit/data/hostile_events.json`): events a
//! caller other than the scheduler could send — early, for another time, with another owner's
//! ids — over real HTTP on SQLite and PostgreSQL. Each must be answered `skipped` with a reason
//! that names what was wrong in the request and shows nothing stored, send nothing (no mail in
//! the outbox, no delivery row) and leave the reminder as it was (state and time), so that the
//! scheduler still sends it at its time.

use chrono::{SubsecRound, Utc};
use notify::{Notify, NotifyConfig};
use todo_events_domain::time::rfc3339;
use todo_events_store::ReminderState;
use todo_events_testkit::hostile::{reminder_rows, HOSTILE_NOTIFY_ROWS};
use todo_events_testkit::{self as kit, metric, reply};

const REMINDER: &str = "dev.todo.reminder.due";

/// No delivery of `r`, and `r` still pending.
async fn nothing_sent_or_written(db: &kit::TestDb, r: &kit::ReminderFixture, what: &str) {
    assert!(
        db.store.deliveries_of(r.reminder_id).await.unwrap().is_empty(),
        "{what}: a delivery"
    );
    assert_eq!(
        db.store.reminder_state(r.reminder_id).await.unwrap(),
        Some(ReminderState::Pending),
        "{what}: the reminder's state changed"
    );
}

#[tokio::test]
async fn hostile_events_send_nothing_write_nothing_and_reveal_nothing() {
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let app =
            kit::spawn(Notify::new(db.store.clone(), NotifyConfig::local(outbox.path().into())).unwrap())
                .await;
        let now = Utc::now().trunc_subsecs(0);
        // Another user's reminder, whose ids the forged events borrow.
        let other = kit::reminder(&db.store, "Someone else's", now + chrono::Duration::days(3)).await;
        let (mut checked, mut early) = (0, 0);
        for row in reminder_rows() {
            let r = kit::reminder(&db.store, "Water the plants", row.due_in.from(now)).await;
            let data = row.data(&r, &other);
            let edit = &row.event;
            let id = format!(
                "reminder/{}/{}",
                data["reminder_id"],
                data["remind_at"].as_str().unwrap()
            );
            let (status, ty, body) = reply(app.post_binary(REMINDER, &id, &data).await).await;
            let what = format!("{} {:?}: {body}", db.backend, row.name);
            assert_eq!(status, 200, "{what}");
            assert_eq!(ty, format!("dev.todo.notification.{}", row.outcome), "{what}");
            assert_eq!(body["reason"], row.reason, "{what}");
            // Nothing stored that the request did not carry: not the reminder's own time when
            // the event named another, not the address, not the task.
            let text = body.to_string();
            let mut hidden = vec![
                "ada@example.test".to_owned(),
                "Water the plants".to_owned(),
                "Someone else".to_owned(),
            ];
            if edit.remind_at.is_some() {
                hidden.push(rfc3339(r.remind_at));
            }
            for stored in &hidden {
                assert!(
                    !text.contains(stored.as_str()),
                    "{what}: the answer shows {stored:?}"
                );
            }
            // Nothing sent, nothing written.
            nothing_sent_or_written(&db, &r, &what).await;
            let ctx = db.store.reminder_context(r.reminder_id).await.unwrap().unwrap();
            assert_eq!(ctx.remind_at, r.remind_at, "{what}: the reminder's time changed");
            checked += 1;
            early += usize::from(row.early);
        }
        assert_eq!(checked, HOSTILE_NOTIFY_ROWS, "{}: rows checked", db.backend);
        assert_eq!(
            std::fs::read_dir(outbox.path()).map(|d| d.count()).unwrap_or(0),
            0,
            "{}: mail sent",
            db.backend
        );
        assert!(db
            .store
            .deliveries_of(other.reminder_id)
            .await
            .unwrap()
            .is_empty());
        let counted = metric(
            &app.metrics().await,
            "todo_events_early_events_total",
            &["function=\"notify\"", "type=\"dev.todo.reminder.due\""],
        );
        assert_eq!(counted as usize, early, "{}: early events counted", db.backend);
    }
}

/// The token rows (`crates/testkit/data/bad_tokens.json`): notify configured as knative/
/// configures it (OIDC sender identity against the issuer stand-in, a shared token beside it)
/// gets a well-formed event for a reminder due now with each row's `Authorization` header.
/// Each is refused with its status and detail before its body is read: no mail, no delivery,
/// the reminder still pending. Then the source's own token and the shared token are accepted
/// (the reminder is sent once), and the issuer's keys were fetched once for all of it.
#[tokio::test]
async fn callers_without_a_valid_identity_are_refused_and_change_nothing() {
    use todo_events_testkit::hostile::{token_rows, BAD_TOKEN_ROWS};
    use todo_events_testkit::oidc::{Issuer, SHARED_TOKEN};
    let issuer = Issuer::start();
    let pod_token = issuer.pod_token_file();
    for db in kit::backends().await {
        let outbox = tempfile::tempdir().unwrap();
        let function = Notify::new(db.store.clone(), NotifyConfig::local(outbox.path().into())).unwrap();
        let opts = todo_events_host::HostOptions {
            workers: 2,
            auth: issuer.auth(pod_token.path()),
            ..Default::default()
        };
        let app = kit::spawn_with(function, opts).await;
        let now = Utc::now().trunc_subsecs(0);
        let post = |r: &kit::ReminderFixture, authorization: Option<String>| {
            let (id, data) = (
                format!("reminder/{}/{}", r.reminder_id, rfc3339(r.remind_at)),
                r.data(),
            );
            let app = &app;
            async move {
                app.post_binary_as(REMINDER, &id, &data, authorization.as_deref())
                    .await
            }
        };
        let mut checked = 0;
        for row in token_rows() {
            let what = format!("{} {:?}", db.backend, row.name);
            let r = kit::reminder(&db.store, "Water the plants", now - chrono::Duration::seconds(1)).await;
            let response = post(&r, row.authorization(&issuer)).await;
            let status = response.status().as_u16();
            let challenge = response.headers().get("www-authenticate").cloned();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                (status, body["detail"].as_str()),
                (row.status, Some(row.detail.as_str())),
                "{what}: {body}"
            );
            if status == 401 {
                let challenge = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
                assert!(challenge.to_str().unwrap().starts_with("Bearer "), "{what}");
            }
            for configured in [todo_events_testkit::oidc::AUDIENCE, SHARED_TOKEN, &issuer.url] {
                assert!(
                    !body.to_string().contains(configured),
                    "{what}: the answer shows {configured:?}"
                );
            }
            nothing_sent_or_written(&db, &r, &what).await;
            checked += 1;
        }
        assert_eq!(checked, BAD_TOKEN_ROWS, "{}: rows checked", db.backend);
        assert_eq!(
            std::fs::read_dir(outbox.path()).unwrap().count(),
            0,
            "{}: mail sent",
            db.backend
        );
        // The senders that may: the source's service account, and the shared token's holder.
        for authorization in [
            format!("Bearer {}", issuer.token()),
            format!("Bearer {SHARED_TOKEN}"),
        ] {
            let r = kit::reminder(&db.store, "Water the plants", now - chrono::Duration::seconds(1)).await;
            let (status, ty, body) = reply(post(&r, Some(authorization)).await).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.sent"),
                "{}: {body}",
                db.backend
            );
            assert_eq!(
                db.store.reminder_state(r.reminder_id).await.unwrap(),
                Some(ReminderState::Sent),
                "{}",
                db.backend
            );
        }
        assert_eq!(
            std::fs::read_dir(outbox.path()).unwrap().count(),
            2,
            "{}: mail sent",
            db.backend
        );
        let refused = metric(
            &app.metrics().await,
            "todo_events_events_total",
            &["outcome=\"unauthenticated\""],
        );
        assert!(refused >= 1.0, "{}: refusals counted", db.backend);
    }
    // Unknown key ids refetch at most once per REFETCH_MIN: the whole table on both backends
    // fetched the keys at most twice per backend.
    assert!(
        issuer.key_fetches() <= 4,
        "keys fetched {} times",
        issuer.key_fetches()
    );
}
