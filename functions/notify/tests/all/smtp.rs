//! notify with `MAILER=smtp` over real HTTP, against a real SMTP server (aiosmtpd, started by
//! each test; skipped with a message without the test virtualenv, see
//! `todo_events_testkit::require`) and a fresh SQLite file and PostgreSQL database. The messages are parsed as a
//! mail client would (mail-parser) and checked part by part.

mod server;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use notify::config::SmtpSettings;
use notify::mail::smtp_url::SmtpUrl;
use notify::{Notify, NotifyConfig};
use serde_json::Value;
use server::{self_signed_certificate, Options, SmtpServer};
use std::path::Path;
use std::sync::Mutex;
use todo_events_store::seed::{NewTask, NewUser};
use todo_events_store::Store;
use todo_events_testkit::{self as kit, ReminderFixture, TestApp};

const REMINDER: &str = "dev.todo.reminder.due";
const USER: &str = "relay-user";
/// The relay password, and as it is written in SMTP_URL. Neither may show up anywhere.
const PASSWORD: &str = "s3cr3t P@ss:w/rd";
const PASSWORD_IN_URL: &str = "s3cr3t%20P%40ss%3Aw%2Frd";

// ---- logs: everything any test here logs, at debug level, is kept and searched ----

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
            .with_ansi(false)
            .try_init()
            .expect("the log capture is the only subscriber");
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// The password in every form it could leak in: as is, as written in the URL, and inside
/// the base64 of an `AUTH PLAIN` / `AUTH LOGIN` exchange.
fn password_forms() -> Vec<String> {
    use std::fmt::Write;
    fn base64(bytes: &[u8]) -> String {
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    let _ = write!(out, "{}", ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
    vec![
        PASSWORD.to_owned(),
        PASSWORD_IN_URL.to_owned(),
        base64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
        base64(PASSWORD.as_bytes()),
    ]
}

/// No password in the logs so far, nor in `texts`.
fn assert_no_password(texts: &[&str]) {
    let logs = logs();
    for form in password_forms() {
        assert!(
            !logs.contains(&form),
            "the password ({form}) is in the logs:\n{logs}"
        );
        for text in texts {
            assert!(!text.contains(&form), "the password ({form}) is in: {text}");
        }
    }
}

// ---- fixtures ----

fn settings(url: &str, ca_file: Option<&Path>, max_sessions: usize) -> NotifyConfig {
    let mut smtp = SmtpSettings::new(url).expect("valid SMTP_URL");
    smtp.ca_file = ca_file.map(Path::to_owned);
    smtp.timeout = std::time::Duration::from_secs(10);
    smtp.max_sessions = max_sessions;
    let mut cfg = NotifyConfig::smtp(smtp);
    cfg.mail_from = "Todo Reminders <reminders@todo.example.com>".into();
    cfg.app_url = "https://todo.example.com/app/".into();
    cfg.validate().expect("valid settings");
    cfg
}

/// A relay on loopback without TLS (as a sidecar would be).
fn plain_url(server: &SmtpServer) -> String {
    format!("smtp://127.0.0.1:{}?tls=none", server.port)
}

async fn app(cfg: NotifyConfig, store: &Store) -> TestApp {
    capture_logs();
    kit::spawn(Notify::new(store.clone(), cfg).expect("notify starts")).await
}

struct Person<'a> {
    email: &'a str,
    name: &'a str,
    timezone: &'a str,
}

const ADA: Person<'static> = Person {
    email: "ada@example.test",
    name: "Ada Lovelace",
    timezone: "Europe/Berlin",
};

async fn reminder(
    store: &Store,
    who: &Person<'_>,
    title: &str,
    description: &str,
    remind_at: DateTime<Utc>,
    due_at: Option<DateTime<Utc>>,
) -> ReminderFixture {
    let user_id = store
        .insert_user(&NewUser {
            email: who.email,
            display_name: who.name,
            timezone: who.timezone,
        })
        .await
        .expect("user inserted");
    let task_id = store
        .insert_task(&NewTask {
            user_id,
            title,
            description,
            due_at,
        })
        .await
        .expect("task inserted");
    let reminder_id = store
        .insert_reminder(task_id, user_id, remind_at)
        .await
        .expect("reminder inserted");
    ReminderFixture {
        user_id,
        task_id,
        reminder_id,
        remind_at,
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// Status, reply type, body (reply data or problem).
async fn post(app: &TestApp, r: &ReminderFixture) -> (u16, String, Value, bool) {
    let response = app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let ty = response
        .headers()
        .get("ce-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, ty, body, retry_after)
}

/// A parsed message and what the test needs of it.
struct Mail {
    subject: String,
    to: Vec<(Option<String>, String)>,
    text: String,
    html: String,
    message_id: String,
    headers: Vec<(String, String)>,
    content_type: String,
    part_types: Vec<String>,
}

fn parse(raw: &[u8]) -> Mail {
    let msg = MessageParser::default().parse(raw).expect("a parsable message");
    let ct = |ct: Option<&mail_parser::ContentType<'_>>| {
        ct.map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
            .unwrap_or_default()
    };
    Mail {
        subject: msg.subject().unwrap_or_default().to_owned(),
        to: msg
            .to()
            .and_then(|a| a.as_list())
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a.name().map(str::to_owned),
                    a.address().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
        message_id: msg.message_id().unwrap_or_default().to_owned(),
        headers: msg
            .headers_raw()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        content_type: ct(msg.root_part().content_type()),
        part_types: msg.parts.iter().skip(1).map(|p| ct(p.content_type())).collect(),
    }
}

// ---- the tests ----

#[tokio::test]
async fn a_reminder_arrives_once_with_both_parts_in_the_recipients_time_zone() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options::default());
        let app = app(settings(&plain_url(&smtp), None, 2), &db.store).await;
        // Due 90 minutes after the reminder, shown in Tokyo time.
        let remind_at = now() - Duration::seconds(1);
        let tokyo = Person {
            email: "kenji@example.test",
            name: "Kenji Sato",
            timezone: "Asia/Tokyo",
        };
        let due = remind_at + Duration::minutes(90);
        let r = reminder(
            &db.store,
            &tokyo,
            "File the tax return",
            "Forms are in the drawer.",
            remind_at,
            Some(due),
        )
        .await;

        let (status, ty, body, _) = post(&app, &r).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{}: {body}",
            db.backend
        );
        let (status, ty, _, _) = post(&app, &r).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.duplicate"),
            "{}",
            db.backend
        );

        let received = smtp.messages();
        assert_eq!(received.len(), 1, "{}: exactly one message", db.backend);
        let meta = &received[0].meta;
        assert_eq!(meta["rcpt_tos"], serde_json::json!(["kenji@example.test"]));
        assert_eq!(meta["mail_from"], "reminders@todo.example.com");
        let mail = parse(&received[0].raw);

        // Japan keeps +09:00 all year (no summer time).
        let japan = chrono::FixedOffset::east_opt(9 * 3600).unwrap();
        let local_due = due.with_timezone(&japan);
        // Kenji has no preferences: English with CLDR's American formats, whose narrow
        // no-break space before AM/PM is a plain space in the one-line subject.
        let hhmm = local_due.format("%-I:%M\u{202f}%p").to_string();
        let subject_hhmm = local_due.format("%-I:%M %p").to_string();
        let day = if local_due.date_naive() == remind_at.with_timezone(&japan).date_naive() {
            "today"
        } else {
            "tomorrow"
        };
        assert_eq!(
            mail.subject,
            format!("Reminder: File the tax return (due {day} at {subject_hhmm})")
        );
        assert_eq!(
            mail.to,
            vec![(Some("Kenji Sato".to_owned()), "kenji@example.test".to_owned())]
        );
        assert_eq!(mail.content_type, "multipart/alternative");
        assert_eq!(mail.part_types, ["text/plain", "text/html"], "both parts");
        let full = format!("{} at {hhmm} JST", local_due.format("%A, %B %-d, %Y"));
        assert!(
            mail.text.contains(&format!("Due: {full} ({day} at {hhmm})")),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("Forms are in the drawer."), "{}", mail.text);
        assert!(mail.text.contains(&format!(
            "Open the task: https://todo.example.com/app/tasks/{}",
            r.task_id
        )));
        assert!(
            mail.html.contains(&format!("<strong>{full}</strong>")),
            "{}",
            mail.html
        );
        assert!(mail.html.contains(&format!(
            r#"href="https://todo.example.com/app/tasks/{}""#,
            r.task_id
        )));
        assert!(mail.text.contains("Asia/Tokyo"));
        let expected_id = notify::mail::message_id(r.reminder_id, r.remind_at);
        assert_eq!(format!("<{}>", mail.message_id), expected_id);

        let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        let d = &deliveries[0];
        assert_eq!((d.status.as_str(), d.attempts), ("sent", 1), "{}", db.backend);
        assert_eq!(d.recipient.as_deref(), Some("kenji@example.test"));
        assert_eq!(d.message_id.as_deref(), Some(expected_id.as_str()));
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );
    }
}

#[tokio::test]
async fn auth_over_starttls_and_smtps_with_a_certificate_trusted_by_configuration() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed_certificate(certs.path());
        let auth = Some((USER.to_owned(), PASSWORD.to_owned()));

        // STARTTLS (required is the default for smtp://), AUTH, two reminders on one session.
        let smtp = SmtpServer::start(&Options {
            starttls: Some((cert.clone(), key.clone())),
            auth: auth.clone(),
            ..Options::default()
        });
        let url = format!("smtp://{USER}:{PASSWORD_IN_URL}@localhost:{}", smtp.port);
        let app = app(settings(&url, Some(&cert), 2), &db.store).await;
        for title in ["Renew the passport", "Book the dentist"] {
            let r = reminder(&db.store, &ADA, title, "", now(), None).await;
            let (status, ty, body, _) = post(&app, &r).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.sent"),
                "{}: {body}",
                db.backend
            );
            assert_no_password(&[&body.to_string()]);
        }
        let received = smtp.messages();
        assert_eq!(received.len(), 2);
        for m in &received {
            assert_eq!(m.meta["tls"], true, "sent over TLS");
            assert_eq!(m.meta["auth_user"], USER, "logged in");
        }
        assert_eq!(smtp.stats()["sessions"], 1, "the session was reused");
        assert_eq!(parse(&received[1].raw).subject, "Reminder: Book the dentist");

        // Implicit TLS (smtps://).
        let smtps = SmtpServer::start(&Options {
            implicit_tls: Some((cert.clone(), key.clone())),
            auth: auth.clone(),
            ..Options::default()
        });
        let url = format!("smtps://{USER}:{PASSWORD_IN_URL}@localhost:{}", smtps.port);
        let app = crate::smtp::app(settings(&url, Some(&cert), 2), &db.store).await;
        let r = reminder(&db.store, &ADA, "Water the plants", "", now(), None).await;
        let (status, ty, body, _) = post(&app, &r).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{}: {body}",
            db.backend
        );
        let received = smtps.messages();
        assert_eq!(received.len(), 1);
        assert_eq!(
            (&received[0].meta["tls"], &received[0].meta["auth_user"]),
            (&Value::Bool(true), &Value::from(USER))
        );

        // Without the CA the certificate is not trusted: nothing is sent, 503, retried later.
        let app = crate::smtp::app(
            settings(
                &format!("smtp://{USER}:{PASSWORD_IN_URL}@localhost:{}", smtp.port),
                None,
                2,
            ),
            &db.store,
        )
        .await;
        let r = reminder(&db.store, &ADA, "Untrusted", "", now(), None).await;
        let (status, _, body, retry_after) = post(&app, &r).await;
        assert_eq!(status, 503, "{}: {body}", db.backend);
        assert!(retry_after);
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("STARTTLS") && detail.to_lowercase().contains("certificate"),
            "{detail}"
        );
        assert_eq!(
            db.store.deliveries_of(r.reminder_id).await.unwrap()[0]
                .status
                .as_str(),
            "sending"
        );
        assert_eq!(smtp.messages().len(), 2, "nothing more was sent");

        // A wrong password is the operator's to fix: 503, not a failed reminder.
        let wrong = format!("smtp://{USER}:not-the-password@localhost:{}", smtp.port);
        let app = crate::smtp::app(settings(&wrong, Some(&cert), 2), &db.store).await;
        let r = reminder(&db.store, &ADA, "Wrong password", "", now(), None).await;
        let (status, _, body, _) = post(&app, &r).await;
        assert_eq!(status, 503, "{}: {body}", db.backend);
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("refused the login") && detail.contains("535"),
            "{detail}"
        );
        assert!(!detail.contains("not-the-password"), "{detail}");
        assert!(smtp.stats()["auth_failures"].as_u64().unwrap() >= 1);
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("pending")
        );
        assert_no_password(&[detail]);
    }
}

#[tokio::test]
async fn starttls_is_required_unless_the_url_says_otherwise() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options::default());
        // smtp:// means STARTTLS required: a server without it gets nothing.
        let app = app(
            settings(&format!("smtp://localhost:{}", smtp.port), None, 2),
            &db.store,
        )
        .await;
        let r = reminder(&db.store, &ADA, "Not in clear text", "", now(), None).await;
        let (status, _, body, _) = post(&app, &r).await;
        assert_eq!(status, 503, "{}: {body}", db.backend);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("does not offer STARTTLS"),
            "{body}"
        );
        assert!(smtp.messages().is_empty());

        // ?tls=opportunistic sends in clear text when the server cannot do better.
        let url = format!("smtp://localhost:{}?tls=opportunistic", smtp.port);
        let app = crate::smtp::app(settings(&url, None, 2), &db.store).await;
        let (status, ty, body, _) = post(&app, &r).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{}: {body}",
            db.backend
        );
        let received = smtp.messages();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].meta["tls"], false);
    }
}

#[tokio::test]
async fn a_451_is_retried_and_then_delivered_exactly_once() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options {
            replies: vec!["rcpt:*:1=451 4.3.0 Mailbox busy, try again later".into()],
            ..Options::default()
        });
        let app = app(settings(&plain_url(&smtp), None, 2), &db.store).await;
        let r = reminder(&db.store, &ADA, "Pay the rent", "", now(), None).await;

        let (status, _, body, retry_after) = post(&app, &r).await;
        assert_eq!(status, 503, "{}: {body}", db.backend);
        assert!(retry_after, "Knative retries 503 after retry-after");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("451 4.3.0 Mailbox busy"),
            "{body}"
        );
        let d = &db.store.deliveries_of(r.reminder_id).await.unwrap()[0];
        assert_eq!(d.status.as_str(), "sending", "not marked sent");
        assert!(d.detail.as_deref().unwrap_or_default().contains("451"), "{d:?}");
        assert!(smtp.messages().is_empty());

        let (status, ty, body, _) = post(&app, &r).await;
        assert_eq!(
            (status, ty.as_str()),
            (200, "dev.todo.notification.sent"),
            "{}: {body}",
            db.backend
        );
        let (_, ty, _, _) = post(&app, &r).await;
        assert_eq!(ty, "dev.todo.notification.duplicate");
        assert_eq!(smtp.messages().len(), 1, "{}: exactly one message", db.backend);
        let d = &db.store.deliveries_of(r.reminder_id).await.unwrap()[0];
        assert_eq!((d.status.as_str(), d.attempts), ("sent", 2));
        assert_eq!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );

        // The same at the end of DATA.
        let smtp = SmtpServer::start(&Options {
            replies: vec!["data:*:1=452 4.3.1 Insufficient system storage".into()],
            ..Options::default()
        });
        let app = crate::smtp::app(settings(&plain_url(&smtp), None, 2), &db.store).await;
        let r = reminder(&db.store, &ADA, "Defrost the freezer", "", now(), None).await;
        assert_eq!(post(&app, &r).await.0, 503);
        assert_eq!(post(&app, &r).await.0, 200);
        assert_eq!(smtp.messages().len(), 1);
    }
}

#[tokio::test]
async fn a_550_is_recorded_as_failed_and_not_retried() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options {
            replies: vec![
                "rcpt:gone@example.test=550 5.1.1 <gone@example.test>: Recipient address rejected".into(),
                "data:spam@example.test=554 5.7.1 Message rejected as spam".into(),
            ],
            ..Options::default()
        });
        let app = app(settings(&plain_url(&smtp), None, 2), &db.store).await;
        for (email, answer) in [
            (
                "gone@example.test",
                "550 5.1.1 <gone@example.test>: Recipient address rejected",
            ),
            ("spam@example.test", "554 5.7.1 Message rejected as spam"),
        ] {
            let who = Person { email, ..ADA };
            let r = reminder(&db.store, &who, "Send the invoice", "", now(), None).await;
            let (status, ty, body, _) = post(&app, &r).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.failed"),
                "{}: {body}",
                db.backend
            );
            // The answer gives the server's refusal without the stored address (the caller
            // may not be the scheduler); the delivery row keeps it whole.
            let shown = answer.replace(email, "<recipient>");
            assert!(body["reason"].as_str().unwrap().contains(&shown), "{body}");
            assert!(!body.to_string().contains(email), "{body}");
            let d = &db.store.deliveries_of(r.reminder_id).await.unwrap()[0];
            assert_eq!(d.status.as_str(), "failed");
            assert!(d.detail.as_deref().unwrap_or_default().contains(answer), "{d:?}");
            assert_eq!(
                db.store
                    .reminder_state(r.reminder_id)
                    .await
                    .unwrap()
                    .map(|s| s.as_str()),
                Some("failed")
            );

            // Redelivered: acknowledged as a duplicate from the reminder's state (`failed`),
            // the server is not asked again.
            let sessions = smtp.stats()["sessions"].clone();
            let (status, ty, body, _) = post(&app, &r).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.duplicate"),
                "{body}"
            );
            assert_eq!(body["reason"], "already failed for good for this time", "{body}");
            assert!(!body.to_string().contains(email), "{body}");
            assert_eq!(smtp.stats()["sessions"], sessions);
            assert_eq!(
                db.store.deliveries_of(r.reminder_id).await.unwrap()[0].attempts,
                1
            );
        }
        assert!(smtp.messages().is_empty());

        // The session survives a refused recipient: the next reminder goes out on it.
        let r = reminder(&db.store, &ADA, "Still works", "", now(), None).await;
        assert_eq!(post(&app, &r).await.0, 200);
        assert_eq!(smtp.messages().len(), 1);
        assert_eq!(smtp.stats()["sessions"], 1);
    }
}

#[tokio::test]
async fn a_server_that_is_down_gives_503_and_nothing_is_marked_sent() {
    for db in kit::backends().await {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("smtp://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{port}");
        let app = app(settings(&url, None, 2), &db.store).await;
        let r = reminder(&db.store, &ADA, "Nobody home", "", now(), None).await;
        for _ in 0..2 {
            let response = app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
            assert_eq!(response.status().as_u16(), 503, "{}", db.backend);
            assert_eq!(response.headers()["content-type"], "application/problem+json");
            assert!(response.headers().contains_key("retry-after"));
            let body = response.text().await.unwrap();
            assert!(body.contains(&format!("127.0.0.1:{port}")), "{body}");
            assert_no_password(&[&body]);
        }
        let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(
            (deliveries[0].status.as_str(), deliveries[0].attempts),
            ("sending", 2)
        );
        assert_ne!(
            db.store
                .reminder_state(r.reminder_id)
                .await
                .unwrap()
                .map(|s| s.as_str()),
            Some("sent")
        );
        assert_no_password(&[deliveries[0].detail.as_deref().unwrap_or_default()]);
    }
}

#[tokio::test]
async fn titles_cannot_add_headers_or_script_and_any_script_arrives_intact() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options::default());
        let app = app(settings(&plain_url(&smtp), None, 2), &db.store).await;
        let cases = [
            (
                "Pay rent\r\nBcc: evil@example.com\r\nX-Injected: yes",
                "Pay rent Bcc: evil@example.com X-Injected: yes",
            ),
            (
                "Rent\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<evil@example.com>",
                "Rent . MAIL FROM:<evil@example.com> RCPT TO:<evil@example.com>",
            ),
            (
                "<script>alert('pwned')</script> & <b>bold</b>",
                "<script>alert('pwned')</script> & <b>bold</b>",
            ),
            (
                "🎉 Geburtstag – 生日快乐 – יום הולדת שמח – عيد ميلاد سعيد",
                "🎉 Geburtstag – 生日快乐 – יום הולדת שמח – عيد ميلاد سعيد",
            ),
        ];
        let zoe = Person {
            email: "zoe@example.test",
            name: "Zoë 李 \"Q\" <admin@example.com>",
            timezone: "America/Sao_Paulo",
        };
        for (i, (title, shown)) in cases.iter().enumerate() {
            let r = reminder(
                &db.store,
                &zoe,
                title,
                "Zeile 1\r\nΓραμμή 2 — 第三行",
                now(),
                None,
            )
            .await;
            let (status, ty, body, _) = post(&app, &r).await;
            assert_eq!(
                (status, ty.as_str()),
                (200, "dev.todo.notification.sent"),
                "{}: {body}",
                db.backend
            );
            let received = smtp.messages();
            assert_eq!(
                received.len(),
                i + 1,
                "{title:?}: one message, no smuggled second one"
            );
            let m = &received[i];
            assert_eq!(
                m.meta["rcpt_tos"],
                serde_json::json!(["zoe@example.test"]),
                "{title:?}"
            );
            assert_eq!(m.meta["mail_from"], "reminders@todo.example.com");
            let mail = parse(&m.raw);
            assert_eq!(mail.subject, format!("Reminder: {shown}"), "{title:?}");
            assert_eq!(
                mail.to,
                vec![(
                    Some("Zoë 李 \"Q\" <admin@example.com>".to_owned()),
                    "zoe@example.test".to_owned()
                )],
                "{title:?}"
            );
            for (name, _) in &mail.headers {
                assert!(
                    !["bcc", "x-injected", "cc"].contains(&name.to_lowercase().as_str()),
                    "{title:?} added a header {name}"
                );
            }
            assert_eq!(
                mail.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("to"))
                    .count(),
                1
            );
            assert!(
                mail.text.contains(&format!("    {shown}\n"))
                    || mail.text.contains(&format!("    {shown}\r\n")),
                "{title:?}: {}",
                mail.text
            );
            assert!(mail.text.contains("Γραμμή 2 — 第三行"), "{}", mail.text);
            assert!(mail.html.contains("Γραμμή 2 — 第三行"), "{}", mail.html);
        }
        let html = parse(&smtp.messages()[2].raw).html;
        assert!(!html.contains("<script>") && !html.contains("<b>bold"), "{html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
            ),
            "{html}"
        );
        let html = parse(&smtp.messages()[3].raw).html;
        assert!(
            html.contains(r#"<h1 dir="auto""#) && html.contains("生日快乐 – יום הולדת שמח"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn a_burst_of_reminders_uses_at_most_smtp_max_sessions() {
    if !kit::require::smtp() {
        return;
    }
    for db in kit::backends().await {
        let smtp = SmtpServer::start(&Options {
            data_delay: Some(0.3),
            ..Options::default()
        });
        let app = app(settings(&plain_url(&smtp), None, 2), &db.store).await;
        let emails: Vec<String> = (0..6).map(|i| format!("user{i}@example.test")).collect();
        let mut reminders = vec![];
        for (i, email) in emails.iter().enumerate() {
            let person = Person { email, ..ADA };
            reminders.push(reminder(&db.store, &person, &format!("Task {i}"), "", now(), None).await);
        }
        let answers = futures::future::join_all(reminders.iter().map(|r| post(&app, r))).await;
        for (status, ty, body, _) in &answers {
            assert_eq!(
                (*status, ty.as_str()),
                (200, "dev.todo.notification.sent"),
                "{}: {body}",
                db.backend
            );
        }
        assert_eq!(smtp.messages().len(), 6);
        let stats = smtp.stats();
        assert!(
            stats["max_open"].as_u64().unwrap() <= 2,
            "{}: {stats}",
            db.backend
        );
        assert!(
            stats["sessions"].as_u64().unwrap() <= 2,
            "sessions are reused: {stats}"
        );
    }
}

#[tokio::test]
async fn passwords_never_appear_in_config_debug_errors_or_logs() {
    capture_logs();
    let url = format!("smtp://{USER}:{PASSWORD_IN_URL}@127.0.0.1:9");
    let cfg = settings(&url, None, 2);
    let debug = format!("{cfg:?} {:?}", SmtpUrl::parse(&url).unwrap());
    assert!(
        debug.contains(&format!("smtp://{USER}:***@127.0.0.1:9")),
        "{debug}"
    );
    let bad = format!("smtp://{USER}:{PASSWORD_IN_URL}@127.0.0.1:9?tls=sometimes");
    let err = SmtpUrl::parse(&bad).unwrap_err();
    assert!(err.contains(":***@"), "{err}");
    assert_no_password(&[&debug, &err]);

    // A real failure with the password configured: connection refused.
    let db = kit::sqlite().await;
    let app = app(cfg, &db.store).await;
    let r = reminder(&db.store, &ADA, "Leak check", "", now(), None).await;
    let response = app.post_binary(REMINDER, &r.event_id(), &r.data()).await;
    assert_eq!(response.status().as_u16(), 503);
    let body = response.text().await.unwrap();
    let detail = db.store.deliveries_of(r.reminder_id).await.unwrap()[0]
        .detail
        .clone()
        .unwrap_or_default();
    assert!(detail.contains("127.0.0.1:9"), "{detail}");
    // The failure was logged (so the capture works) …
    assert!(
        logs().contains("could not talk to the SMTP server 127.0.0.1:9"),
        "{}",
        logs()
    );
    // … and nowhere is the password.
    assert_no_password(&[&body, &detail]);
}
