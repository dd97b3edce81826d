//! The local stack: notify and recur as HTTP functions on loopback, the scheduler polling
//! and POSTing CloudEvents straight to them (as Knative's `K_SINK` would), one process.

use chrono::{Duration, SubsecRound};
use notify::{Notify, NotifyConfig};
use recur::Recur;
use scheduler_cron::{pass::Mode, HttpPublisher, Scheduler, SchedulerConfig};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::HumanDuration;
use todo_events_host::config::{
    clock_skew_tolerance, env_var, var_or, ConfigError, DEFAULT_CLOCK_SKEW_TOLERANCE,
};
use todo_events_host::startup::{CommonSettings, DEFAULT_DATABASE_URL};
use todo_events_host::{serve, Auth, HostOptions, Shutdown};
use todo_events_store::seed::{NewEndpoint, NewRecurringTask, NewTask, NewUser, Preferences};
use todo_events_store::{Channel, Store, StoreOptions, TaskStatus};

/// The demo's stand-in for an ntfy server (a phone subscribed to a topic), on loopback.
const DEMO_NTFY_PORT: u16 = 8003;

pub struct StackOptions {
    pub database: StoreOptions,
    pub notify_port: u16,
    pub recur_port: u16,
    pub every: std::time::Duration,
    /// notify's settings, read as `notify` reads them (`NotifyConfig::from_env`).
    pub notify: NotifyConfig,
    /// The HTTP host's settings of both functions (`HostOptions::from_env`; authentication
    /// by `AUTH_TOKEN` only: the stack's own scheduler presents no OIDC token).
    pub host: HostOptions,
    /// recur's `CLOCK_SKEW_TOLERANCE`.
    pub clock_skew: Duration,
    /// The scheduler's settings (`SchedulerConfig::from_env`); its sinks are the stack's
    /// own functions, whatever `SINK_*` says.
    pub scheduler: SchedulerConfig,
}

/// Settings of the programs `up` runs that it does not apply, and why; `up` names each that
/// is set at start (README, "Configuration").
pub const NOT_HONOURED: &[(&str, &str)] = &[
    ("PORT", "the stack listens on NOTIFY_PORT and RECUR_PORT"),
    ("LISTEN_ADDRESS", "the stack listens on loopback only"),
    ("RUN_MIGRATIONS", "the stack always migrates"),
    (
        "SINK_REMINDERS",
        "the stack's scheduler posts to its own functions",
    ),
    (
        "SINK_TASK_EVENTS",
        "the stack's scheduler posts to its own functions",
    ),
    ("K_SINK", "the stack's scheduler posts to its own functions"),
    ("KAFKA_BROKERS", "the stack goes over HTTP, never Kafka"),
    (
        "OIDC_AUDIENCE",
        "the stack's scheduler presents no OIDC token (AUTH_TOKEN is honoured)",
    ),
];

impl StackOptions {
    /// The demo's fixed embedded defaults (DESIGN.md): environment variables do not apply.
    pub fn demo() -> Self {
        let url = |port: u16| format!("http://127.0.0.1:{port}/");
        let mut notify = NotifyConfig::local(PathBuf::from("outbox"));
        // The demo's webhook goes to its own receiver on loopback, which the target guard
        // refuses unless private targets are allowed (notify warns that they are).
        notify.channels.allow_private = true;
        Self {
            database: StoreOptions::new(DEFAULT_DATABASE_URL.to_owned()),
            notify_port: 8001,
            recur_port: 8002,
            every: std::time::Duration::from_secs(1),
            notify,
            host: HostOptions {
                workers: 1,
                ..HostOptions::default()
            },
            clock_skew: DEFAULT_CLOCK_SKEW_TOLERANCE,
            scheduler: SchedulerConfig {
                // What came of each reminder, printed by the demo's receiver.
                notification_events: true,
                sink_notifications: Some(format!("http://127.0.0.1:{DEMO_NTFY_PORT}/status")),
                ..SchedulerConfig::local(url(8001), url(8002))
            },
        }
    }

    /// `todo-events up`: the same settings the functions and the scheduler read on their own,
    /// but for those in [`NOT_HONOURED`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let every: HumanDuration = var_or(
            "SCHEDULER_EVERY",
            HumanDuration(std::time::Duration::from_secs(1)),
        )?;
        if every.0.is_zero() {
            return Err(ConfigError("SCHEDULER_EVERY must be longer than 0s".into()));
        }
        let common = CommonSettings::from_env()?;
        let scheduler = SchedulerConfig::from_env()?;
        if scheduler.notification_events && scheduler.sink_notifications.is_none() {
            return Err(ConfigError(
                "NOTIFICATION_EVENTS=on needs SINK_NOTIFICATIONS (todo-events up goes over HTTP)".into(),
            ));
        }
        let mut host = common.host;
        host.auth = Auth::new(scheduler.sink_token.clone(), None)?;
        Ok(Self {
            database: common.database,
            notify_port: var_or("NOTIFY_PORT", 8001)?,
            recur_port: var_or("RECUR_PORT", 8002)?,
            every: every.0,
            notify: NotifyConfig::from_env()?,
            host,
            clock_skew: clock_skew_tolerance()?,
            scheduler,
        })
    }

    /// Names each setting of [`NOT_HONOURED`] that is set.
    pub fn warn_not_honoured() {
        for (name, why) in NOT_HONOURED {
            if env_var(name).is_ok_and(|v| !v.trim().is_empty()) {
                tracing::warn!("{name} is set but not applied by todo-events up: {why}");
            }
        }
    }
}

/// The demo's ntfy stand-in: prints each reminder that arrives by webhook (ntfy's shape: the
/// sentence as the body, the `Title` header) as the subscribed phone would show it, and each
/// status event the scheduler publishes (a CloudEvent: `ce-type`, `ce-id`, the reason in its
/// data) as the todo app would get it; answers `200`. Demo only; stops with the stack.
async fn demo_ntfy(listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest, body: web::Bytes| async move {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            if let Some(outcome) = header("ce-type").strip_prefix("dev.todo.notification.") {
                let data: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                tracing::info!(
                    "status event for the todo app: {outcome} ({}): {}",
                    header("ce-id"),
                    data["reason"].as_str().unwrap_or_default()
                );
                return HttpResponse::Ok().finish();
            }
            let title = header("title");
            tracing::info!(
                "ntfy topic {} received: {title}: {}",
                req.path(),
                String::from_utf8_lossy(&body)
            );
            HttpResponse::Ok().finish()
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let stop = async {
        shutdown.wait().await;
        handle.stop(true).await;
    };
    let (served, ()) = tokio::join!(server, stop);
    Ok(served?)
}

fn bind(port: u16, name: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        anyhow::anyhow!("cannot listen on 127.0.0.1:{port} for {name} ({e}); is another todo-events running?")
    })
}

/// Serves the three functions in this process until Ctrl-C (`up`; `demo` seeds first).
pub async fn serve_all(opts: StackOptions, demo: bool) -> anyhow::Result<()> {
    let store = Store::open(&opts.database).map_err(|e| ConfigError(e.to_string()))?;
    store.migrate().await?;
    let notify_listener = bind(opts.notify_port, "notify")?;
    let recur_listener = bind(opts.recur_port, "recur")?;

    let ntfy_listener = match demo {
        true => Some(bind(DEMO_NTFY_PORT, "the demo's ntfy receiver")?),
        false => None,
    };
    let outbox = opts.notify.outbox_dir.clone();
    let notify = Notify::new(store.clone(), opts.notify).map_err(ConfigError)?;
    notify.check_sealed_secrets().await?;
    let recur = Recur::new(store.clone()).with_clock_skew(opts.clock_skew);
    let host = opts.host;

    if demo {
        seed_demo(&store).await?;
    }
    let notify_url = format!("http://127.0.0.1:{}/", opts.notify_port);
    let recur_url = format!("http://127.0.0.1:{}/", opts.recur_port);
    let mut scheduler_config = opts.scheduler;
    scheduler_config.sink_reminders = Some(notify_url.clone());
    scheduler_config.sink_task_events = Some(recur_url.clone());
    let publisher = HttpPublisher::new(
        Some(notify_url.clone()),
        Some(recur_url.clone()),
        scheduler_config.sink_timeout.0,
    )
    .with_notifications(scheduler_config.sink_notifications.clone())
    .with_token(scheduler_config.sink_token.clone());
    let scheduler = Scheduler::new(store.clone(), publisher, scheduler_config);
    tracing::info!(
        "running: notify on {notify_url}, recur on {recur_url}, scheduler polling every {}, mail into {}/ ; press Ctrl-C to stop",
        humantime_ish(opts.every),
        outbox.display()
    );

    let shutdown = Shutdown::on_signals();
    let notify_server = serve(Arc::new(notify), notify_listener, host.clone(), shutdown.clone());
    let recur_server = serve(Arc::new(recur), recur_listener, host, shutdown.clone());
    let scheduler_loop = scheduler.poll(Mode::Loop { every: opts.every }, shutdown.clone());
    let ntfy = async {
        match ntfy_listener {
            Some(listener) => demo_ntfy(listener, shutdown.clone()).await,
            None => Ok(()),
        }
    };
    let (a, b, c, d) = tokio::join!(notify_server, recur_server, scheduler_loop, ntfy);
    store.close().await;
    a?;
    b?;
    c?;
    d?;
    tracing::info!("stopped cleanly");
    Ok(())
}

fn humantime_ish(d: std::time::Duration) -> String {
    HumanDuration(d).to_string()
}

/// A user, a task with a reminder due in a few seconds, and a recurring task every minute.
async fn seed_demo(store: &Store) -> anyhow::Result<()> {
    let zone = "Europe/Berlin";
    let tz = todo_events_domain::recurrence::Zone::parse(zone)?;
    let user_id = store
        .insert_user(&NewUser {
            email: "ada@example.test",
            display_name: "Ada Lovelace",
            timezone: zone,
        })
        .await?;
    let start = now().trunc_subsecs(0);
    let remind_at = start + Duration::seconds(5);
    let task_id = store
        .insert_task(&NewTask {
            user_id,
            title: "Water the plants",
            description: "The basil on the kitchen window looks thirsty.",
            due_at: Some(start + Duration::minutes(30)),
        })
        .await?;
    let reminder_id = store.insert_reminder(task_id, user_id, remind_at).await?;
    // The reminder also goes to Ada's phone: a webhook in ntfy's shape (docs/CHANNELS.md).
    let topic = format!("http://127.0.0.1:{DEMO_NTFY_PORT}/ada-reminders");
    store
        .insert_endpoint(&NewEndpoint {
            user_id,
            channel: Channel::Webhook,
            target: &topic,
            format: "ntfy",
            secret: None,
            p256dh: None,
            auth: None,
        })
        .await?;
    store.set_reminder_channels(reminder_id, "email,webhook").await?;
    // Ada's preferences (docs/PREFERENCES.md): German, quiet hours from an hour ago until
    // 20 s from now by her clock, so the reminder due in 5 s waits for their end, and her
    // daily agenda at 25 s from now by her clock (the scheduler's first pass schedules it).
    let quiet_end = start + Duration::seconds(20);
    let agenda_at = start + Duration::seconds(25);
    let quiet = |t| tz.wall_time(t).format("%H:%M:%S").to_string();
    store
        .set_preferences(
            user_id,
            &Preferences {
                quiet_start: Some(&quiet(start - Duration::hours(1))),
                quiet_end: Some(&quiet(quiet_end)),
                quiet_days: None,
                locale: "de-DE",
                channels: "email",
                agenda_at: Some(&quiet(agenda_at)),
            },
        )
        .await?;

    let first = tz.wall_time(start + Duration::seconds(10));
    let dtstart = first.format("%Y-%m-%dT%H:%M:%S").to_string();
    let schedule = todo_events_domain::Schedule::parse(
        "FREQ=MINUTELY",
        todo_events_domain::recurrence::parse_local(&dtstart)?,
        zone,
    )?;
    let next = schedule
        .first()?
        .ok_or_else(|| anyhow::anyhow!("demo rule has no occurrence"))?;
    let recurring_id = store
        .insert_recurring_task(&NewRecurringTask {
            user_id,
            title: "Stand up and stretch",
            description: "Every minute, for the demo.",
            rrule: schedule.rule(),
            timezone: zone,
            dtstart: &schedule.dtstart_text(),
            next_occurrence: next,
            catch_up: todo_events_domain::CatchUp::Latest,
            reminder_offsets: &[],
        })
        .await?;
    let mailed_long_ago = seed_past(store, user_id, start - Duration::days(40)).await?;
    tracing::info!(
        "demo data: user {user_id} Ada Lovelace ({zone}, de-DE, quiet hours until {}, daily agenda at {}); \
         task {task_id} \"Water the plants\" with reminder {reminder_id} due at {}, inside the quiet hours: it \
         waits for their end; recurring task {recurring_id} \"Stand up and stretch\" every minute from {}; \
         reminder {mailed_long_ago} mailed 40 days ago, whose delivery record is past the retention (30 days): \
         the scheduler's first pass prunes it",
        rfc3339(quiet_end),
        rfc3339(agenda_at),
        rfc3339(remind_at),
        rfc3339(next)
    );
    Ok(())
}

/// A reminder of Ada's mailed at `at` (a task done since), its delivery recorded then, as
/// notify records one: what a month and more of history looks like to the retention
/// (docs/DESIGN.md, "History"). Its reminder's id.
async fn seed_past(
    store: &Store,
    user_id: todo_events_domain::UserId,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<todo_events_domain::ReminderId> {
    use todo_events_store::notify::{Finished, Held, NewClaim, Route};
    let task_id = store
        .insert_task(&NewTask {
            user_id,
            title: "Book the dentist",
            description: "",
            due_at: Some(at + Duration::minutes(30)),
        })
        .await?;
    let reminder_id = store.insert_reminder(task_id, user_id, at).await?;
    let event_id = format!("reminder/{reminder_id}/{}", rfc3339(at));
    let claim = NewClaim {
        reminder_id,
        remind_at: at,
        route: Route::EMAIL,
        event_id: &event_id,
    };
    let claimed = store
        .claim_new_deliveries(&[claim], at, Duration::minutes(2))
        .await?;
    let held = claimed.iter().map(|(_, delivery_id)| Held {
        delivery_id: *delivery_id,
        attempt: 1,
    });
    let sent = Finished::Sent {
        recipient: "ada@example.test",
        message_id: "<demo-long-ago@todo-events>",
    };
    let done: Vec<_> = held.map(|h| (h, sent.clone())).collect();
    store.finish_deliveries(&done, at + Duration::seconds(1)).await?;
    store.set_task_status(task_id, TaskStatus::Done).await?;
    Ok(reminder_id)
}
