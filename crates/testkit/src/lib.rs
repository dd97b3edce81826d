//! Test support shared by the integration tests of every crate: a fresh database on each
//! backend, a function served on a random port, fixtures and CloudEvents requests.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test gets a database of its own. When PostgreSQL is unreachable the PostgreSQL half
//! of a test is skipped with a message, except under `CI=true`, where it fails.

pub mod kafka;
pub mod smtp;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::net::TcpListener;
use std::sync::Arc;
use todo_events_domain::{RecurringTaskId, ReminderDue, ReminderId, TaskId, UserId};
use todo_events_host::{serve, Function, HostOptions, Shutdown};
use todo_events_store::seed::{NewRecurringTask, NewTask, NewUser};
use todo_events_store::{Store, StoreOptions};

/// A fresh, migrated database.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh SQLite file in a temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::open(&StoreOptions::new(url.clone())).expect("sqlite opens");
    store.migrate().await.expect("sqlite migrates");
    TestDb {
        store,
        url,
        backend: "sqlite",
        _dir: Some(dir),
    }
}

/// A fresh PostgreSQL database, or `None` (with a message) when PostgreSQL is unreachable
/// outside CI.
pub async fn postgres() -> Option<TestDb> {
    use sqlx::Connection;
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) if !in_ci() => {
            eprintln!("SKIPPING the PostgreSQL half of this test: {admin} unreachable ({e})");
            return None;
        }
        Err(e) => panic!("PostgreSQL is required under CI=true but {admin} is unreachable: {e}"),
    };
    let name = format!("te_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("TEST_DATABASE_URL must end with /<database>"),
    };
    let mut opts = StoreOptions::new(url.clone());
    opts.max_connections = 20;
    // As the functions open it (crates/kafka/src/cli.rs).
    opts.generic_plans = true;
    let store = Store::open(&opts).expect("postgres opens");
    store.migrate().await.expect("postgres migrates");
    Some(TestDb {
        store,
        url,
        backend: "postgres",
        _dir: None,
    })
}

/// Every backend available: SQLite always, PostgreSQL when reachable (always under CI).
pub async fn backends() -> Vec<TestDb> {
    let mut all = vec![sqlite().await];
    all.extend(postgres().await);
    all
}

/// A store whose database cannot be reached (for 503 / readiness tests).
pub fn unreachable_store() -> Store {
    let mut opts = StoreOptions::new("postgres://postgres@127.0.0.1:9/nothing");
    opts.acquire_timeout = std::time::Duration::from_millis(500);
    Store::open(&opts).expect("lazy pool opens")
}

/// A function served on a random loopback port; stopped when dropped.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    shutdown: Shutdown,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn spawn<F: Function>(function: F) -> TestApp {
    spawn_with(
        function,
        HostOptions {
            workers: 2,
            ..HostOptions::default()
        },
    )
    .await
}

pub async fn spawn_with<F: Function>(function: F, opts: HostOptions) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = Shutdown::new();
    tokio::spawn(serve(Arc::new(function), listener, opts, shutdown.clone()));
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{url}/health/liveness")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    TestApp {
        url,
        client,
        shutdown,
    }
}

impl TestApp {
    /// POSTs an event in binary mode.
    pub async fn post_binary(&self, ty: &str, id: &str, data: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/", self.url))
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/todo/scheduler-cron")
            .header("ce-type", ty)
            .header("content-type", "application/json")
            .body(data.to_string())
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs an event in structured mode.
    pub async fn post_structured(&self, ty: &str, id: &str, data: &Value) -> reqwest::Response {
        let body = serde_json::json!({
            "specversion": "1.0", "id": id, "source": "/todo/scheduler-cron", "type": ty,
            "datacontenttype": "application/json", "data": data,
        });
        self.client
            .post(format!("{}/", self.url))
            .header("content-type", "application/cloudevents+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }
}

/// A user with one task and one pending reminder due at `remind_at`.
pub struct ReminderFixture {
    pub user_id: UserId,
    pub task_id: TaskId,
    pub reminder_id: ReminderId,
    pub remind_at: DateTime<Utc>,
}

impl ReminderFixture {
    /// The event for this reminder, as notify receives it: its id and data.
    pub fn due(&self) -> (String, ReminderDue) {
        let due = ReminderDue {
            reminder_id: self.reminder_id,
            task_id: self.task_id,
            user_id: self.user_id,
            remind_at: self.remind_at,
        };
        (due.event_id(), due)
    }

    /// The `dev.todo.reminder.due` data for this reminder.
    pub fn data(&self) -> Value {
        serde_json::json!({
            "reminder_id": self.reminder_id, "task_id": self.task_id, "user_id": self.user_id,
            "remind_at": todo_events_domain::time::rfc3339(self.remind_at),
        })
    }
    pub fn event_id(&self) -> String {
        format!(
            "reminder/{}/{}",
            self.reminder_id,
            todo_events_domain::time::rfc3339(self.remind_at)
        )
    }
}

pub async fn user(store: &Store, email: &str, timezone: &str) -> UserId {
    store
        .insert_user(&NewUser {
            email,
            display_name: "Test User",
            timezone,
        })
        .await
        .expect("user inserted")
}

pub async fn reminder(store: &Store, title: &str, remind_at: DateTime<Utc>) -> ReminderFixture {
    let user_id = user(store, "ada@example.test", "Europe/Berlin").await;
    let task_id = store
        .insert_task(&NewTask {
            user_id,
            title,
            description: "",
            due_at: Some(remind_at + Duration::minutes(15)),
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

/// A recurring task with `rule` from local `dtstart` in `tz`; `next` is its next occurrence.
pub struct RecurringFixture {
    pub user_id: UserId,
    pub id: RecurringTaskId,
}

impl RecurringFixture {
    pub fn data(&self, occurrence: DateTime<Utc>) -> Value {
        serde_json::json!({
            "recurring_task_id": self.id, "user_id": self.user_id,
            "occurrence_at": todo_events_domain::time::rfc3339(occurrence),
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn recurring(
    store: &Store,
    rule: &str,
    dtstart: &str,
    tz: &str,
    next: DateTime<Utc>,
    catch_up: &str,
    reminder_offsets: &[i64],
) -> RecurringFixture {
    let user_id = user(store, "grace@example.test", tz).await;
    let id = store
        .insert_recurring_task(&NewRecurringTask {
            user_id,
            title: "Recurring chore",
            description: "",
            rrule: rule,
            timezone: tz,
            dtstart,
            next_occurrence: next,
            catch_up: catch_up.parse().expect("catch-up policy latest or all"),
            reminder_offsets,
        })
        .await
        .expect("recurring task inserted");
    RecurringFixture { user_id, id }
}

/// Parses an RFC 3339 instant (test shorthand).
pub fn at(s: &str) -> DateTime<Utc> {
    todo_events_domain::time::parse_instant(s).expect("valid instant")
}

/// One malformed request and the answer it must get.
pub struct BadCase {
    pub name: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// The `field` the problem must name (when the status is 400).
    pub field: Option<&'static str>,
}

/// The bad-input classes of DESIGN.md for a function accepting `ty`, built around a valid
/// `data` object for it. `other_type` is a known type the function does not accept.
pub fn bad_cases(ty: &'static str, other_type: &'static str, data: &Value, max_body: usize) -> Vec<BadCase> {
    let binary = |ty: &str| -> Vec<(&'static str, String)> {
        vec![
            ("ce-specversion", "1.0".into()),
            ("ce-id", "bad-1".into()),
            ("ce-source", "/tests".into()),
            ("ce-type", ty.into()),
            ("content-type", "application/json".into()),
        ]
    };
    let without = |name: &str| {
        binary(ty)
            .into_iter()
            .filter(|(k, _)| *k != name)
            .collect::<Vec<_>>()
    };
    let with_data = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut d = data.as_object().cloned().expect("data is an object");
        f(&mut d);
        Value::Object(d).to_string().into_bytes()
    };
    let first_key = data
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("_id"))
        .expect("data has an id")
        .clone();
    let time_key = data
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("_at"))
        .expect("data has a time")
        .clone();
    let structured = |v: Value| -> (Vec<(&'static str, String)>, Vec<u8>) {
        (
            vec![("content-type", "application/cloudevents+json".into())],
            v.to_string().into_bytes(),
        )
    };
    let good = data.to_string().into_bytes();
    let mut cases = vec![
        BadCase {
            name: "plain JSON, not a CloudEvent",
            headers: vec![("content-type", "application/json".into())],
            body: good.clone(),
            status: 400,
            field: Some("specversion"),
        },
        BadCase {
            name: "missing ce-id",
            headers: without("ce-id"),
            body: good.clone(),
            status: 400,
            field: Some("id"),
        },
        BadCase {
            name: "ce-id twice, the second empty",
            headers: [binary(ty), vec![("ce-id", String::new())]].concat(),
            body: good.clone(),
            status: 400,
            field: Some("id"),
        },
        BadCase {
            name: "ce-type twice",
            headers: [binary(ty), vec![("ce-type", other_type.into())]].concat(),
            body: good.clone(),
            status: 400,
            field: Some("type"),
        },
        BadCase {
            name: "missing ce-source",
            headers: without("ce-source"),
            body: good.clone(),
            status: 400,
            field: Some("source"),
        },
        BadCase {
            name: "missing ce-type",
            headers: without("ce-type"),
            body: good.clone(),
            status: 400,
            field: Some("type"),
        },
        BadCase {
            name: "specversion 0.3",
            headers: binary(ty)
                .into_iter()
                .map(|(k, v)| {
                    if k == "ce-specversion" {
                        (k, "0.3".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            body: good.clone(),
            status: 400,
            field: Some("specversion"),
        },
        BadCase {
            name: "unknown type",
            headers: binary("com.example.unknown"),
            body: good.clone(),
            status: 400,
            field: Some("type"),
        },
        BadCase {
            name: "the other function's type",
            headers: binary(other_type),
            body: good.clone(),
            status: 400,
            field: Some("type"),
        },
        BadCase {
            name: "truncated JSON data",
            headers: binary(ty),
            body: good[..good.len() / 2].to_vec(),
            status: 400,
            field: Some("data"),
        },
        BadCase {
            name: "no data",
            headers: binary(ty),
            body: vec![],
            status: 400,
            field: Some("data"),
        },
        BadCase {
            name: "data is an array",
            headers: binary(ty),
            body: b"[1,2]".to_vec(),
            status: 400,
            field: Some("data"),
        },
        BadCase {
            name: "missing id field",
            headers: binary(ty),
            body: with_data(&|d| {
                d.remove(&first_key);
            }),
            status: 400,
            field: None,
        },
        BadCase {
            name: "id is a string",
            headers: binary(ty),
            body: with_data(&|d| {
                d.insert(first_key.clone(), "12".into());
            }),
            status: 400,
            field: None,
        },
        BadCase {
            name: "negative id",
            headers: binary(ty),
            body: with_data(&|d| {
                d.insert(first_key.clone(), (-5).into());
            }),
            status: 400,
            field: None,
        },
        BadCase {
            name: "id beyond 64 bits",
            headers: binary(ty),
            body: with_data(&|d| {
                d.insert(
                    first_key.clone(),
                    serde_json::from_str("99999999999999999999").unwrap(),
                );
            })
            .to_vec(),
            status: 400,
            field: None,
        },
        BadCase {
            name: "time without offset",
            headers: binary(ty),
            body: with_data(&|d| {
                d.insert(time_key.clone(), "2026-11-27T10:00:00".into());
            }),
            status: 400,
            field: None,
        },
        BadCase {
            name: "time out of range",
            headers: binary(ty),
            body: with_data(&|d| {
                d.insert(time_key.clone(), "2026-13-45T99:00:00Z".into());
            }),
            status: 400,
            field: None,
        },
        BadCase {
            name: "invalid UTF-8 data",
            headers: binary(ty),
            body: vec![b'{', 0xff, 0xfe, b'}'],
            status: 400,
            field: Some("data"),
        },
        BadCase {
            name: "text/plain data",
            headers: binary(ty)
                .into_iter()
                .map(|(k, v)| {
                    if k == "content-type" {
                        (k, "text/plain".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            body: good.clone(),
            status: 415,
            field: Some("content-type"),
        },
        BadCase {
            name: "batch mode",
            headers: vec![("content-type", "application/cloudevents-batch+json".into())],
            body: b"[]".to_vec(),
            status: 415,
            field: Some("content-type"),
        },
        BadCase {
            name: "XML without CloudEvents headers",
            headers: vec![("content-type", "application/xml".into())],
            body: b"<x/>".to_vec(),
            status: 415,
            field: Some("content-type"),
        },
        BadCase {
            name: "oversized body",
            headers: binary(ty),
            body: vec![b' '; max_body + 1],
            status: 413,
            field: None,
        },
    ];
    let (h, b) =
        structured(serde_json::json!({"specversion": "1.0", "source": "/tests", "type": ty, "data": data}));
    cases.push(BadCase {
        name: "structured without id",
        headers: h,
        body: b,
        status: 400,
        field: Some("id"),
    });
    let (h, b) = structured(
        serde_json::json!({"specversion": "1.0", "id": 7, "source": "/tests", "type": ty, "data": data}),
    );
    cases.push(BadCase {
        name: "structured id not a string",
        headers: h,
        body: b,
        status: 400,
        field: Some("id"),
    });
    let (h, b) = structured(
        serde_json::json!({"specversion": "1.0", "id": "x", "source": "/tests", "type": ty, "time": "not a time", "data": data}),
    );
    cases.push(BadCase {
        name: "structured bad time attribute",
        headers: h,
        body: b,
        status: 400,
        field: Some("time"),
    });
    cases.push(BadCase {
        name: "structured invalid JSON",
        headers: vec![("content-type", "application/cloudevents+json".into())],
        body: b"{\"specversion\": ".to_vec(),
        status: 400,
        field: Some("body"),
    });
    more_bad_cases(
        &mut cases,
        ty,
        data,
        &binary,
        &with_data,
        &first_key,
        &time_key,
        &structured,
    );
    cases
}

/// A change to a copy of the valid event data.
type DataEdit<'a> = &'a dyn Fn(&mut serde_json::Map<String, Value>);

/// The rest of the table: attribute values, data values and media types at their edges.
#[allow(clippy::too_many_arguments)]
fn more_bad_cases(
    cases: &mut Vec<BadCase>,
    ty: &'static str,
    data: &Value,
    binary: &dyn Fn(&str) -> Vec<(&'static str, String)>,
    with_data: &dyn Fn(DataEdit<'_>) -> Vec<u8>,
    first_key: &str,
    time_key: &str,
    structured: &dyn Fn(Value) -> (Vec<(&'static str, String)>, Vec<u8>),
) {
    let good = data.to_string().into_bytes();
    let header = |name: &'static str, value: &str| -> Vec<(&'static str, String)> {
        binary(ty)
            .into_iter()
            .map(|(k, v)| if k == name { (k, value.to_owned()) } else { (k, v) })
            .collect()
    };
    let mut add = |name: &'static str, headers, body, status, field| {
        cases.push(BadCase {
            name,
            headers,
            body,
            status,
            field,
        });
    };
    add(
        "empty ce-specversion",
        header("ce-specversion", ""),
        good.clone(),
        400,
        Some("specversion"),
    );
    add(
        "specversion 2.0",
        header("ce-specversion", "2.0"),
        good.clone(),
        400,
        Some("specversion"),
    );
    add("empty ce-id", header("ce-id", " "), good.clone(), 400, Some("id"));
    add(
        "type in the wrong case",
        binary(&ty.to_uppercase()),
        good.clone(),
        400,
        Some("type"),
    );
    add(
        "ce-time not a time",
        {
            let mut h = binary(ty);
            h.push(("ce-time", "yesterday".into()));
            h
        },
        good.clone(),
        400,
        Some("time"),
    );
    add("data is null", binary(ty), b"null".to_vec(), 400, Some("data"));
    add("data is a number", binary(ty), b"42".to_vec(), 400, Some("data"));
    add(
        "data is a string of garbage",
        binary(ty),
        b"\"{nope\"".to_vec(),
        400,
        Some("data"),
    );
    let key = first_key.to_owned();
    add(
        "id zero",
        binary(ty),
        with_data(&|d| {
            d.insert(key.clone(), 0.into());
        }),
        400,
        None,
    );
    add(
        "id fractional",
        binary(ty),
        with_data(&|d| {
            d.insert(key.clone(), serde_json::json!(1.5));
        }),
        400,
        None,
    );
    add(
        "id boolean",
        binary(ty),
        with_data(&|d| {
            d.insert(key.clone(), true.into());
        }),
        400,
        None,
    );
    add(
        "id an object",
        binary(ty),
        with_data(&|d| {
            d.insert(key.clone(), serde_json::json!({"id": 1}));
        }),
        400,
        None,
    );
    add(
        "id hugely negative",
        binary(ty),
        with_data(&|d| {
            d.insert(key.clone(), i64::MIN.into());
        }),
        400,
        None,
    );
    add(
        "user_id a string",
        binary(ty),
        with_data(&|d| {
            d.insert("user_id".into(), "alice".into());
        }),
        400,
        Some("data.user_id"),
    );
    add(
        "user_id missing",
        binary(ty),
        with_data(&|d| {
            d.remove("user_id");
        }),
        400,
        Some("data.user_id"),
    );
    let tk = time_key.to_owned();
    add(
        "time in year 10000",
        binary(ty),
        with_data(&|d| {
            d.insert(tk.clone(), "+10000-01-01T00:00:00Z".into());
        }),
        400,
        None,
    );
    add(
        "time with offset +25:00",
        binary(ty),
        with_data(&|d| {
            d.insert(tk.clone(), "2026-11-27T10:00:00+25:00".into());
        }),
        400,
        None,
    );
    add(
        "time as a number",
        binary(ty),
        with_data(&|d| {
            d.insert(tk.clone(), 1_795_790_088.into());
        }),
        400,
        None,
    );
    add(
        "time null",
        binary(ty),
        with_data(&|d| {
            d.insert(tk.clone(), Value::Null);
        }),
        400,
        None,
    );
    add(
        "data is XML",
        header("content-type", "application/xml"),
        b"<x/>".to_vec(),
        415,
        Some("content-type"),
    );
    add(
        "structured XML",
        vec![("content-type", "application/cloudevents+xml".into())],
        b"<x/>".to_vec(),
        415,
        Some("content-type"),
    );
    let (h, b) = structured(
        serde_json::json!({"specversion": "0.3", "id": "x", "source": "/t", "type": ty, "data": data}),
    );
    add("structured specversion 0.3", h, b, 400, Some("specversion"));
    let (h, b) = structured(
        serde_json::json!({"specversion": "1.0", "id": "x", "source": "/t", "type": 7, "data": data}),
    );
    add("structured type a number", h, b, 400, Some("type"));
    let (h, b) =
        structured(serde_json::json!([{"specversion": "1.0", "id": "x", "source": "/t", "type": ty}]));
    add("structured body is an array", h, b, 400, Some("body"));
    let (h, b) = structured(
        serde_json::json!({"specversion": "1.0", "id": "x", "source": "/t", "type": ty, "data_base64": "!!!"}),
    );
    add(
        "structured data_base64 not base64",
        h,
        b,
        400,
        Some("data_base64"),
    );
    let (h, b) = structured(
        serde_json::json!({"specversion": "1.0", "id": "x", "source": "/t", "type": ty, "datacontenttype": "text/plain", "data": "hello"}),
    );
    add("structured text data", h, b, 415, Some("content-type"));
}

/// Sends every bad case to `app` and checks status, problem+json body and field.
pub async fn assert_bad_cases_rejected(app: &TestApp, cases: Vec<BadCase>) {
    for case in cases {
        let mut request = app.client.post(format!("{}/", app.url)).body(case.body.clone());
        for (k, v) in &case.headers {
            request = request.header(*k, v);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, case.status, "{}: status; body {body}", case.name);
        assert_eq!(
            content_type, "application/problem+json",
            "{}: content type",
            case.name
        );
        assert_eq!(body["status"], case.status, "{}: problem status", case.name);
        assert!(
            body["title"].is_string() && body["detail"].is_string(),
            "{}: {body}",
            case.name
        );
        if case.status == 400 {
            let field = body["field"].as_str().unwrap_or_default();
            match case.field {
                Some(expected) => assert_eq!(field, expected, "{}: field; body {body}", case.name),
                None => assert!(
                    field.starts_with("data."),
                    "{}: field should be a data field; body {body}",
                    case.name
                ),
            }
        }
    }
}

/// The Python interpreter of the test virtualenv (`target/test-python`), created on first use
/// with `.ci/python-requirements.txt`. Tests use it to run independent peers (an SMTP server,
/// a reference recurrence implementation). Panics with the reason when it cannot be made.
pub fn python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join("target/test-python");
    let python = venv.join("bin/python");
    let requirements = std::fs::read(root.join(".ci/python-requirements.txt")).expect("requirements file");
    // The marker names the requirements it was made from: a changed list installs again.
    let ready = venv.join(format!(".ready-{:016x}", fnv1a(&requirements)));
    if ready.exists() {
        return python;
    }
    // One creator at a time: `mkdir` is atomic; others wait for `.ready`.
    let lock = root.join("target/test-python.lock");
    std::fs::create_dir_all(root.join("target")).expect("target dir");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() {
        if ready.exists() {
            return python;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {}",
            lock.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let result = (|| -> Result<(), String> {
        if ready.exists() {
            return Ok(());
        }
        let run = |cmd: &mut std::process::Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        if !python.exists() {
            run(std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv))?;
        }
        run(std::process::Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(root.join(".ci/python-requirements.txt")))?;
        std::fs::write(&ready, "").map_err(|e| e.to_string())
    })();
    let _ = std::fs::remove_dir(&lock);
    if let Err(e) = result {
        panic!("the test Python environment could not be created: {e}");
    }
    python
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// A workspace binary (`notify`, `recur`, `scheduler-cron`, `todo-events`) beside the test
/// executable. `cargo test -p <one package>` builds only that package's binaries, so the
/// others are brought up to date once per test process; `.ci/run` builds them all first and
/// sets `TODO_EVENTS_BINS_BUILT`, which skips that step.
pub fn binary(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        if std::env::var_os("TODO_EVENTS_BINS_BUILT").is_some() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let status = std::process::Command::new(cargo)
            .args(["build", "--bins", "--workspace"])
            .current_dir(root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --bins --workspace failed");
    });
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join(name)
}

/// A function's answer as a test reads it: status, reply CloudEvent type (`ce-type`) and the
/// JSON body (reply data or problem).
pub async fn reply(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let ty = response
        .headers()
        .get("ce-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, ty, response.json().await.unwrap_or(Value::Null))
}

/// CPU time the whole machine has spent busy (not idle, not waiting for I/O) since boot, in
/// seconds, from `/proc/stat`: the difference over a run is what every process of the run
/// cost together (the function, PostgreSQL, the broker, the load generator).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on Linux whatever the kernel's tick rate.
    busy / 100.0
}
