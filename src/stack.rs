//! The local stack: notify and recur as HTTP functions on loopback, the scheduler polling
//! and POSTing CloudEvents straight to them (as Knative's `K_SINK` would), one process.

use chrono::{Duration, SubsecRound};
use notify::{config::MailerKind, Notify, NotifyConfig};
use recur::Recur;
use scheduler_cron::{pass::Mode, HttpPublisher, Scheduler, SchedulerConfig};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use todo_events_domain::time::{now, rfc3339};
use todo_events_domain::HumanDuration;
use todo_events_host::config::{var_or, ConfigError};
use todo_events_host::startup::DEFAULT_DATABASE_URL;
use todo_events_host::{serve, HostOptions, Shutdown};
use todo_events_store::seed::{NewEndpoint, NewRecurringTask, NewTask, NewUser};
use todo_events_store::{Channel, Store, StoreOptions};

/// The demo's stand-in for an ntfy server (a phone subscribed to a topic), on loopback.
const DEMO_NTFY_PORT: u16 = 8003;

pub struct StackOptions {
    pub database_url: String,
    pub notify_port: u16,
    pub recur_port: u16,
    pub every: std::time::Duration,
    pub outbox: PathBuf,
    pub mailer: MailerKind,
}

impl StackOptions {
    /// The demo's fixed embedded defaults (DESIGN.md): environment variables do not apply.
    pub fn demo() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            notify_port: 8001,
            recur_port: 8002,
            every: std::time::Duration::from_secs(1),
            outbox: PathBuf::from("outbox"),
            mailer: MailerKind::File,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let every: HumanDuration = var_or(
            "SCHEDULER_EVERY",
            HumanDuration(std::time::Duration::from_secs(1)),
        )?;
        if every.0.is_zero() {
            return Err(ConfigError("SCHEDULER_EVERY must be longer than 0s".into()));
        }
        Ok(Self {
            database_url: var_or("DATABASE_URL", DEFAULT_DATABASE_URL.to_owned())?,
            notify_port: var_or("NOTIFY_PORT", 8001)?,
            recur_port: var_or("RECUR_PORT", 8002)?,
            every: every.0,
            outbox: var_or("OUTBOX_DIR", PathBuf::from("outbox"))?,
            mailer: var_or("MAILER", MailerKind::File)?,
        })
    }
}

/// The demo's ntfy stand-in: prints each reminder that arrives by webhook (ntfy's shape: the
/// sentence as the body, the `Title` header) as the subscribed phone would show it, and
/// answers `200`. Demo only; stops with the stack.
async fn demo_ntfy(listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest, body: web::Bytes| async move {
            let title = req
                .headers()
                .get("title")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
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
    let store =
        Store::open(&StoreOptions::new(opts.database_url.clone())).map_err(|e| ConfigError(e.to_string()))?;
    store.migrate().await?;
    let notify_listener = bind(opts.notify_port, "notify")?;
    let recur_listener = bind(opts.recur_port, "recur")?;

    let mut notify_config = NotifyConfig::local(opts.outbox.clone());
    notify_config.mailer = opts.mailer.clone();
    // The demo's webhook goes to its own receiver on loopback, which the target guard
    // refuses unless private targets are allowed (notify warns that they are).
    notify_config.channels.allow_private = demo;
    let ntfy_listener = match demo {
        true => Some(bind(DEMO_NTFY_PORT, "the demo's ntfy receiver")?),
        false => None,
    };
    if notify_config.mailer == MailerKind::Smtp {
        notify_config.smtp = Some(notify::config::SmtpSettings::from_env()?);
    }
    let notify = Notify::new(store.clone(), notify_config).map_err(ConfigError)?;
    let recur = Recur::new(store.clone());
    let host = HostOptions {
        workers: 1,
        ..HostOptions::default()
    };

    if demo {
        seed_demo(&store).await?;
    }
    let notify_url = format!("http://127.0.0.1:{}/", opts.notify_port);
    let recur_url = format!("http://127.0.0.1:{}/", opts.recur_port);
    let scheduler = Scheduler::new(
        store.clone(),
        HttpPublisher::new(
            Some(notify_url.clone()),
            Some(recur_url.clone()),
            std::time::Duration::from_secs(10),
        ),
        SchedulerConfig::local(notify_url.clone(), recur_url.clone()),
    );
    tracing::info!(
        "running: notify on {notify_url}, recur on {recur_url}, scheduler polling every {}, mail into {}/ ; press Ctrl-C to stop",
        humantime_ish(opts.every),
        opts.outbox.display()
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
    tracing::info!(
        "demo data: user {user_id} Ada Lovelace ({zone}); task {task_id} \"Water the plants\" with reminder {reminder_id} due at {}; \
         recurring task {recurring_id} \"Stand up and stretch\" every minute from {}",
        rfc3339(remind_at),
        rfc3339(next)
    );
    Ok(())
}
