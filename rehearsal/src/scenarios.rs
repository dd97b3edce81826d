//! The scenarios, in the order one installation lives through them:
//!
//! 1. **from zero** (full run only): everything idle at 0 replicas; a burst of reminders and
//!    occurrences due in one second. The first effect after idling must come within the
//!    stated bound (poll interval + KEDA's pollingInterval + container start + start-up);
//!    the burst's p99 ≤ 30 s.
//! 2. **trickle** (warm): a reminder due every 0.25 s and four occurrences every second
//!    across three cron minutes (70 s, one minute boundary, in `--short`): p99 ≤ 1.5 s,
//!    nothing missed, nothing twice.
//! 3. **poison**: a reminder whose recipient's mailbox always answers 451 must reach the
//!    dead-letter topic once, after exactly the retry schedule the manifests give; a
//!    reminder a second beside it shows what it holds up.
//! 4. **burst at full scale-out**: the same burst with every part at its maximum:
//!    p99 ≤ 10 s, every reminder mailed exactly once, every occurrence instantiated once.
//! 5. **agendas at full scale-out** (full run only): as many users as the burst, in one zone,
//!    with their daily agenda at the same local time (docs/PREFERENCES.md, "The daily
//!    agenda"): the reminders' burst target, p99 ≤ 10 s, each agenda mailed exactly once.

use crate::cgroups::Cgroups;
use crate::manifests::Manifests;
use crate::pods::Cluster;
use crate::stack::{connections_needed, Part, Shape, Stack};
use crate::world::{Effect, World};
use crate::Args;
use chrono::{DateTime, DurationRound, Utc};
use cloudevents::EventBuilder;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub struct Row {
    shape: Shape,
    scenario: &'static str,
    figure: String,
    target: String,
    /// `None`: a figure shown for what it says, without a target.
    met: Option<bool>,
}

pub struct Report {
    command: String,
    /// How the pods' `limits.cpu` were held.
    cpu: String,
    rows: Vec<Row>,
}

impl Report {
    pub fn new(args: &Args, cgroups: Option<&Cgroups>) -> Self {
        Self {
            command: format!(
                "rehearsal/run{}{} --container-start {} --relay-delay {} --burst {}{}",
                if args.short { " --short" } else { "" },
                if args.fresh_only { " --fresh-only" } else { "" },
                humantime::format_duration(args.container_start),
                humantime::format_duration(args.relay_delay),
                args.burst,
                if args.no_cpu_limits {
                    " --no-cpu-limits"
                } else {
                    ""
                },
            ) + &args
                .cluster_config
                .as_ref()
                .map(|f| format!(" --cluster-config {f}"))
                .unwrap_or_default(),
            cpu: match cgroups {
                Some(c) => format!("limits.cpu enforced: {}", c.describe()),
                None => "limits.cpu NOT enforced (--no-cpu-limits): pods share the machine's cores".into(),
            },
            rows: Vec::new(),
        }
    }

    fn add(
        &mut self,
        shape: Shape,
        scenario: &'static str,
        figure: String,
        target: String,
        met: impl Into<Option<bool>>,
    ) {
        let met = met.into();
        println!(
            "{:8} {:34} {}   target {}   {}",
            shape.dir(),
            scenario,
            figure,
            target,
            match met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "",
            }
        );
        self.rows.push(Row {
            shape,
            scenario,
            figure,
            target,
            met,
        });
    }

    pub fn all_met(&self) -> bool {
        self.rows.iter().all(|r| r.met != Some(false))
    }

    pub fn table(&self) -> String {
        let mut t = format!(
            "`{}`, {} UTC; {}\n\n| scenario | shape | figure | target | met |\n|---|---|---|---|---|\n",
            self.command,
            Utc::now().format("%Y-%m-%d %H:%M"),
            self.cpu
        );
        for r in &self.rows {
            t += &format!(
                "| {} | {} | {} | {} | {} |\n",
                r.scenario,
                r.shape.dir(),
                r.figure,
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                }
            );
        }
        t
    }
}

/// Lateness figures of one scenario.
struct Figures {
    expected: usize,
    done: usize,
    copies: usize,
    first: f64,
    /// Effects per second from the first to the last.
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Figures {
    fn of(expected: &[i64], effects: &[Effect]) -> Self {
        let mut per: HashMap<i64, usize> = HashMap::new();
        for e in effects {
            *per.entry(e.id).or_default() += 1;
        }
        let mut late: Vec<f64> = effects
            .iter()
            .map(|e| (e.done - e.due).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
            .collect();
        late.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if late.is_empty() {
                return f64::NAN;
            }
            late[(((p / 100.0) * (late.len() - 1) as f64).round() as usize).min(late.len() - 1)]
        };
        let span = match (
            effects.iter().map(|e| e.done).min(),
            effects.iter().map(|e| e.done).max(),
        ) {
            (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        Self {
            expected: expected.len(),
            done: per.len(),
            copies: effects.len() - per.len(),
            first: pct(0.0),
            rate: effects.len() as f64 / span.max(0.001),
            p50: pct(50.0),
            p99: pct(99.0),
            max: pct(100.0),
        }
    }

    fn once(&self) -> bool {
        self.done == self.expected && self.copies == 0
    }

    fn text(&self, what: &str) -> String {
        format!(
            "{} of {} {what} once, {} extra copies; lateness p50 {:.2} s, p99 {:.2} s, max {:.2} s ({:.0}/s)",
            self.done, self.expected, self.copies, self.p50, self.p99, self.max, self.rate
        )
    }
}

/// Waits until every reminder of `reminders` is mailed and every occurrence of
/// `occurrences` instantiated, or `deadline`; then a little longer, so late copies count.
async fn effects(
    world: &mut World,
    reminders: &[i64],
    occurrences: &[i64],
    deadline: DateTime<Utc>,
) -> anyhow::Result<(Vec<Effect>, Vec<Effect>)> {
    loop {
        // Reading the relay's directory (tens of thousands of files by the end) blocks: off
        // the runtime's workers, which carry the dispatcher and the activator stand-ins.
        let mails = tokio::task::block_in_place(|| world.mails(reminders))?;
        let instances = world.instances(occurrences).await?;
        let mailed: std::collections::HashSet<i64> = mails.iter().map(|m| m.id).collect();
        if (mailed.len() == reminders.len() && instances.len() == occurrences.len()) || Utc::now() > deadline
        {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mails = tokio::task::block_in_place(|| world.mails(reminders))?;
            return Ok((mails, world.instances(occurrences).await?));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A burst: `n` reminders and `n` occurrences due at `due`, and their effects.
struct Burst {
    reminders: Vec<i64>,
    occurrences: Vec<i64>,
    mails: Vec<Effect>,
    instances: Vec<Effect>,
}

/// Seeds a burst and waits for its effects, at most `wait` after `due`.
async fn burst(
    world: &mut World,
    n: usize,
    due: DateTime<Utc>,
    wait: chrono::Duration,
) -> anyhow::Result<Burst> {
    let times = vec![due; n];
    let reminders = world.reminders(&times).await?;
    let occurrences = world.occurrences(&times).await?;
    let (mails, instances) = effects(world, &reminders, &occurrences, due + wait).await?;
    Ok(Burst {
        reminders,
        occurrences,
        mails,
        instances,
    })
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::seconds(1)).expect("in range") + chrono::Duration::seconds(1)
}

fn secs(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).expect("in range")
}

pub async fn rehearse(
    shape: Shape,
    root: &Path,
    out: &Path,
    args: &Args,
    cgroups: Option<std::sync::Arc<Cgroups>>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let throttled_before = cgroups.as_ref().map(|c| c.totals());
    let m = Manifests::load(&root.join(shape.dir()))?;
    let partitions = crate::manifests::partitions(root)?;
    let needed = connections_needed(shape, &m)?;
    let world_probe = World::max_connections().await?;
    anyhow::ensure!(
        world_probe >= needed as i64 + 10,
        "PostgreSQL allows {world_probe} connections; {} at full scale can open {needed} \
         (pods × DATABASE_MAX_CONNECTIONS): ALTER SYSTEM SET max_connections = {} and restart it (.ci/run does)",
        shape.dir(),
        needed + 50
    );
    let mut world = World::start(out, shape.dir(), args.relay_delay, partitions).await?;
    let binaries = std::env::current_exe()?
        .parent()
        .expect("the binary's directory")
        .to_owned();
    let cluster = Cluster {
        binaries,
        logs: out.to_owned(),
        addresses: world.addresses.clone(),
        oidc: world.oidc.clone(),
        container_start: args.container_start,
        cgroups: cgroups.clone(),
    };
    println!(
        "== {}: {partitions} partitions per topic, container start {:?}, relay {:?} per message",
        shape.dir(),
        args.container_start,
        args.relay_delay
    );
    let unmodelled = crate::modelled::unmodelled(m.objects());
    anyhow::ensure!(
        unmodelled.is_empty(),
        "{} sets what no stand-in models, so the rehearsal would not measure what it deploys:\n  {}\n\
         (model it in rehearsal/src, or say in rehearsal/src/modelled.rs why it changes nothing measured)",
        shape.dir(),
        unmodelled.join("\n  ")
    );
    let stack = Stack::start(
        shape,
        &m,
        &world,
        &cluster,
        partitions,
        (args.dispatcher_start, args.contract_delay),
    )?;
    let n = args.burst as usize;

    // The CronJob's first run starts at the next minute (and its container after that).
    let first_run =
        whole_second(Utc::now()).duration_trunc(chrono::Duration::minutes(1))? + chrono::Duration::minutes(1);
    let polling_up = first_run + secs(args.container_start) + chrono::Duration::seconds(2);

    if !args.short {
        // 0. A fresh installation reaches zero by itself.
        back_to_zero(
            shape,
            &stack,
            std::time::Instant::now(),
            "fresh installation: all at zero",
            report,
        )
        .await;
        if args.fresh_only {
            stack.stop().await;
            world.drop_database().await?;
            return Ok(());
        }
        // 1. From zero.
        let due = whole_second(polling_up.max(Utc::now() + chrono::Duration::seconds(5)));
        let Burst {
            reminders,
            occurrences,
            mails,
            instances,
        } = burst(&mut world, n, due, chrono::Duration::seconds(120)).await?;
        let polling = stack.notify_polling();
        let bound = from_zero_bound(&stack, args);
        for (what, ids, fx) in [
            ("reminders mailed", &reminders, &mails),
            ("instances created", &occurrences, &instances),
        ] {
            let f = Figures::of(ids, fx);
            report.add(
                shape,
                if what.starts_with('r') {
                    "from zero: first reminder after idling"
                } else {
                    "from zero: first occurrence after idling"
                },
                format!("{:.1} s", f.first),
                format!(
                    "≤ {:.1} s (poll {:?} + KEDA polling {:?}{} + 2 × container start + 3 s start-up)",
                    bound.as_secs_f64(),
                    stack.every,
                    polling,
                    if stack.dispatcher_pods.is_some() {
                        " + dispatcher pod start + contract + the broker's 3 s initial rebalance delay"
                    } else {
                        " + the broker's 3 s initial rebalance delay"
                    }
                ),
                f.first <= bound.as_secs_f64(),
            );
            report.add(
                shape,
                if what.starts_with('r') {
                    "from zero: burst, reminders"
                } else {
                    "from zero: burst, occurrences"
                },
                f.text(what),
                "p99 ≤ 30 s, each once".into(),
                f.once() && f.p99 <= 30.0,
            );
        }
    }

    // 2. Trickle (warm), with the poison event.
    // Warm: one reminder and one occurrence first wake what is at zero.
    let warm_due = [whole_second(Utc::now().max(polling_up))];
    let (warm_reminder, warm_occurrence) = (
        world.reminders(&warm_due).await?,
        world.occurrences(&warm_due).await?,
    );
    effects(
        &mut world,
        &warm_reminder,
        &warm_occurrence,
        Utc::now() + chrono::Duration::seconds(120),
    )
    .await?;
    let length = if args.short {
        Duration::from_secs(70)
    } else {
        Duration::from_secs(180)
    };
    let start = whole_second(Utc::now() + chrono::Duration::seconds(2));
    let steps = (length.as_millis() / 250) as i64;
    let reminder_times: Vec<_> = (0..steps)
        .map(|k| start + chrono::Duration::milliseconds(250 * k))
        .collect();
    let occurrence_times: Vec<_> = (0..steps)
        .map(|k| start + chrono::Duration::seconds(k / 4))
        .collect();
    let reminders = world.reminders(&reminder_times).await?;
    let occurrences = world.occurrences(&occurrence_times).await?;
    let (mails, instances) = effects(
        &mut world,
        &reminders,
        &occurrences,
        start + secs(length) + chrono::Duration::seconds(60),
    )
    .await?;
    let minutes = length.as_secs() / 60 + u64::from(length.as_secs() % 60 != 0);
    for (what, ids, fx) in [
        ("reminders mailed", &reminders, &mails),
        ("instances created", &occurrences, &instances),
    ] {
        let f = Figures::of(ids, fx);
        report.add(
            shape,
            if what.starts_with('r') {
                "trickle: reminder every 0.25 s"
            } else {
                "trickle: 4 occurrences every 1 s"
            },
            format!(
                "{} ({} s, crossing {minutes} cron minute(s))",
                f.text(what),
                length.as_secs()
            ),
            "p99 ≤ 1.5 s, each once".into(),
            f.once() && f.p99 <= 1.5,
        );
    }
    poison(shape, &stack, &mut world, report).await?;
    strangers(&stack, &world, report).await?;

    // 4. Burst at full scale-out.
    stack.full_scale_out().await;
    let busy_before = todo_events_testkit::machine_busy_seconds();
    let burst_started = std::time::Instant::now();
    let due = whole_second(Utc::now() + chrono::Duration::seconds(3));
    let Burst {
        reminders,
        occurrences,
        mails,
        instances,
    } = burst(&mut world, n, due, chrono::Duration::seconds(90)).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = 100.0 * (todo_events_testkit::machine_busy_seconds() - busy_before)
        / burst_started.elapsed().as_secs_f64()
        / cores;
    // The limit beside it: the relay alone, over as many sessions as the pods opened.
    let sessions = world.smtp.stats()["max_open"].as_u64().unwrap_or(1) as usize;
    let limit = world.relay_limit(n, sessions).await?;
    report.add(
        shape,
        "limit: the relay alone",
        format!(
            "{n} messages over {sessions} sessions (as many as the pods opened) in {limit:.1} s ({:.0}/s); \
             the machine was {busy:.0} % busy during the burst",
            n as f64 / limit
        ),
        "(beside the burst)".into(),
        None,
    );
    for (what, ids, fx) in [
        ("reminders mailed", &reminders, &mails),
        ("instances created", &occurrences, &instances),
    ] {
        let f = Figures::of(ids, fx);
        report.add(
            shape,
            if what.starts_with('r') {
                "burst at full scale-out: reminders"
            } else {
                "burst at full scale-out: occurrences"
            },
            f.text(what),
            "p99 ≤ 10 s, each once".into(),
            f.once() && f.p99 <= 10.0,
        );
    }

    if !args.short {
        agendas(shape, &mut world, n, report).await?;
        // 6. After a quiet period: back to zero, and the first reminder after it.
        stack.release();
        back_to_zero(
            shape,
            &stack,
            std::time::Instant::now(),
            "quiet period: back to zero",
            report,
        )
        .await;
        // The rehearsal's own wait, not a user's: pods deleted together leave their group
        // one after another here (crate::deployment says why), and a consumer joining
        // before the last has left would meet the broker's stuck group.
        let waiting_since = std::time::Instant::now();
        while stack.stopping() > 0 && waiting_since.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let due = [whole_second(Utc::now() + chrono::Duration::seconds(1))];
        let one = world.reminders(&due).await?;
        let (mails, _) = effects(&mut world, &one, &[], due[0] + chrono::Duration::seconds(120)).await?;
        let f = Figures::of(&one, &mails);
        let bound = from_zero_bound(&stack, args);
        report.add(
            shape,
            "quiet period: first reminder after it",
            format!(
                "{:.1} s ({} of 1 mailed, {} extra copies)",
                f.first, f.done, f.copies
            ),
            format!("≤ {:.1} s (as from zero)", bound.as_secs_f64()),
            f.once() && f.first <= bound.as_secs_f64(),
        );
    }

    let runs = stack.stop().await;
    report.add(
        shape,
        "CronJob runs",
        format!(
            "{} started, {} missed, {} past the deadline, {} failed, at most {} at once",
            runs.started, runs.missed, runs.deadline_exceeded, runs.failed, runs.most_at_once
        ),
        "none missed or failed".into(),
        runs.missed == 0 && runs.failed == 0 && runs.deadline_exceeded == 0 && runs.started > 0,
    );
    if let (Some(c), Some(before)) = (&cgroups, throttled_before) {
        let t = c.totals();
        let periods = t.periods - before.periods;
        let throttled = t.throttled_periods - before.throttled_periods;
        report.add(
            shape,
            "CPU: pods held to limits.cpu",
            format!(
                "{} pods; throttled in {throttled} of {periods} CFS periods ({:.0} %), {:.1} s in all",
                t.pods - before.pods,
                100.0 * throttled as f64 / periods.max(1) as f64,
                (t.throttled - before.throttled).as_secs_f64()
            ),
            "(what the limits cost; no target)".into(),
            None,
        );
    }
    world.drop_database().await?;
    Ok(())
}

/// How late the first effect after idling may be: the scheduler's poll, KEDA's polling
/// interval, the dispatcher pod's start and the contract reaching it (knative/), the
/// broker's initial rebalance delay for a group that is empty, and two container starts
/// (the consumer's pod or the dispatcher's consumer, the function's pod) with 3 s of
/// start-up.
fn from_zero_bound(stack: &Stack, args: &Args) -> Duration {
    let dispatcher = match stack.dispatcher_pods {
        Some(_) => args.dispatcher_start + args.contract_delay,
        None => Duration::ZERO,
    };
    stack.every
        + stack.notify_polling()
        + dispatcher
        + crate::placement::INITIAL_REBALANCE_DELAY
        + args.container_start * 2
        + Duration::from_secs(3)
}

/// Waits until no consumer and no pod of the installation runs, from `since` (the apply, or
/// the last event), and reports how long it took against [`Stack::zero_bound`]; then, in
/// knative/, until the dispatcher pods are gone too, which the StatefulSet's autoscaler
/// does at its next tick ([`crate::placement::REFRESH_PERIOD`] at most later).
async fn back_to_zero(
    shape: Shape,
    stack: &Stack,
    since: std::time::Instant,
    scenario: &'static str,
    report: &mut Report,
) {
    let bound = stack.zero_bound();
    let refresh = crate::placement::REFRESH_PERIOD;
    let give_up = bound + refresh + Duration::from_secs(120);
    let mut functions_at_zero: Option<f64> = None;
    let running = loop {
        let running = stack.running();
        // Not before KEDA's first look: what a new installation starts with is asked for by
        // then (the stand-ins start as the manifests are applied).
        let looked = since.elapsed() >= stack.notify_polling();
        if looked && running.is_empty() && functions_at_zero.is_none() {
            functions_at_zero = Some(since.elapsed().as_secs_f64());
        }
        if looked && running.is_empty() && stack.dispatcher_pods_running() == 0 || since.elapsed() > give_up {
            break running;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let all = since.elapsed().as_secs_f64();
    let dispatcher_pods = stack.dispatcher_pods_running();
    let (figure, met) = match functions_at_zero {
        None => (
            format!("after {all:.0} s still running: {}", running.join(", ")),
            false,
        ),
        Some(t) => {
            let functions = format!("every consumer and function pod at zero after {t:.0} s");
            let met = t <= bound.as_secs_f64();
            match stack.dispatcher_pods {
                None => (functions, met),
                Some(_) if dispatcher_pods > 0 => (
                    format!("{functions}; {dispatcher_pods} dispatcher pod(s) still up after {all:.0} s"),
                    false,
                ),
                Some(_) => (
                    format!("{functions}; the dispatcher pods after {all:.0} s"),
                    met && all <= t + refresh.as_secs_f64() + 5.0,
                ),
            }
        }
    };
    report.add(
        shape,
        scenario,
        figure,
        format!(
            "≤ {:.0} s (KEDA's cooldownPeriod + pollingInterval + 10 s for a pod to stop){}",
            bound.as_secs_f64(),
            if stack.dispatcher_pods.is_some() {
                format!(
                    "; dispatcher pods ≤ {} s after (the StatefulSet autoscaler's refresh period)",
                    refresh.as_secs()
                )
            } else {
                String::new()
            }
        ),
        met,
    );
}

/// Scenario 5: the daily agendas of `n` users at one local time, at full scale-out. The
/// scheduler's first pass after the seeding schedules them, the pass at their time publishes
/// them on the reminders' topic, notify mails them.
async fn agendas(shape: Shape, world: &mut World, n: usize, report: &mut Report) -> anyhow::Result<()> {
    // Time for one scheduler pass (every 500 ms while a run polls) to schedule them first.
    let due = whole_second(Utc::now() + chrono::Duration::seconds(10));
    let users = world.agendas(n, due).await?;
    let deadline = due + chrono::Duration::seconds(90);
    loop {
        let mails = world.agenda_mails(&users, due)?;
        let mailed: std::collections::HashSet<i64> = mails.iter().map(|m| m.id).collect();
        if mailed.len() == users.len() || Utc::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let f = Figures::of(&users, &world.agenda_mails(&users, due)?);
    report.add(
        shape,
        "agendas at full scale-out: one zone, one local time",
        f.text("agendas mailed"),
        "p99 ≤ 10 s, each once (the reminders' burst target)".into(),
        f.once() && f.p99 <= 10.0,
    );
    Ok(())
}

/// knative/ only: a caller inside the cluster that is not the KafkaSource's dispatcher posts a
/// due reminder's event to notify through the Service, as the manifests configure it: with no
/// token, with a token of the cluster's issuer for recur's audience, and with one for notify's
/// audience but another service account. Each must be refused (`401`, `401`, `403`), so that
/// the reminder is mailed once, by the scheduler's event, at its time.
async fn strangers(stack: &Stack, world: &World, report: &mut Report) -> anyhow::Result<()> {
    let Part::Knative {
        serving, dispatcher, ..
    } = &stack.notify.part
    else {
        return Ok(());
    };
    let Some(audience) = dispatcher.audience() else {
        report.add(
            Shape::Knative,
            "strangers: events not from the source",
            "notify's KafkaSource sets no spec.sink.audience: every caller is accepted".into(),
            "401 / 401 / 403, nothing mailed".into(),
            Some(false),
        );
        return Ok(());
    };
    let event = cloudevents::EventBuilderV10::new()
        .id("reminder/1/2026-01-01T00:00:00Z")
        .ty("dev.todo.reminder.due")
        .source("/todo/scheduler-cron")
        .data(
            "application/json",
            serde_json::json!({"reminder_id": 1, "task_id": 1, "user_id": 1, "remind_at": "2026-01-01T00:00:00Z"}),
        )
        .build()?;
    let hour = Duration::from_secs(3600);
    let stranger = "system:serviceaccount:default:default";
    let tries = [
        ("no token", None, 401),
        (
            "recur's audience",
            Some(
                world
                    .issuer
                    .token_for(&dispatcher.subject(), "todo-events/recur", hour),
            ),
            401,
        ),
        (
            "another service account",
            Some(world.issuer.token_for(stranger, &audience, hour)),
            403,
        ),
    ];
    let mut answers = Vec::new();
    let mut met = true;
    for (what, token, want) in tries {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let status = match serving.send(&event, authorization.as_deref()).await {
            Ok((status, _)) => status,
            Err(e) => anyhow::bail!("strangers: {e}"),
        };
        met &= status == want;
        answers.push(format!("{what}: {status}"));
    }
    report.add(
        Shape::Knative,
        "strangers: events not from the source",
        answers.join(", "),
        "401, 401, 403".into(),
        Some(met),
    );
    Ok(())
}

/// A poison reminder (its recipient's mailbox always answers 451) must reach the dead-letter
/// topic once, after the retry schedule; its neighbours (a reminder a second while it
/// retries) show what it holds up.
async fn poison(shape: Shape, stack: &Stack, world: &mut World, report: &mut Report) -> anyhow::Result<()> {
    let schedule = match &stack.notify.part {
        Part::Knative { retry_schedule, .. } | Part::Keda { retry_schedule, .. } => retry_schedule.clone(),
    };
    let total: Duration = schedule.iter().sum();
    let due = whole_second(Utc::now() + chrono::Duration::seconds(2));
    let id = world.poison_reminder(due).await?;
    let neighbour_times: Vec<_> = (1..=total.as_secs() as i64 + 5)
        .map(|k| due + chrono::Duration::seconds(k))
        .collect();
    let neighbours = world.reminders(&neighbour_times).await?;
    let (mails, _) = effects(
        world,
        &neighbours,
        &[],
        due + secs(total) + chrono::Duration::seconds(60),
    )
    .await?;
    let f = Figures::of(&neighbours, &mails);
    report.add(
        shape,
        "poison: neighbours, a reminder a second",
        f.text("reminders mailed"),
        "(what a poison holds up; no target)".into(),
        None,
    );
    // The dead letter: the schedule, plus the first attempt's lateness and the attempts.
    let deadline = due + secs(total) + chrono::Duration::seconds(40);
    let prefix = format!("reminder/{id}/");
    let found = loop {
        let records = world.records("reminders.dlq")?;
        let hits: Vec<_> = records
            .into_iter()
            .filter(|r| r.ce_id.starts_with(&prefix))
            .collect();
        if !hits.is_empty() || Utc::now() > deadline {
            break hits;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let waits = schedule
        .iter()
        .map(|d| format!("{}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" + ");
    let Some(crate::world::Record { at, headers, .. }) = found.first() else {
        report.add(
            shape,
            "poison event → dead-letter topic",
            "never dead-lettered".into(),
            format!("after {waits} s"),
            Some(false),
        );
        return Ok(());
    };
    let after = (*at - due).num_milliseconds() as f64 / 1000.0;
    let reason = headers
        .get("ce_knativeerrorcode")
        .map(|c| format!("knativeerrorcode {c}"))
        .or_else(|| {
            headers
                .get("ce_deadletterreason")
                .map(|r| format!("deadletterreason {r:?}"))
        })
        .unwrap_or_default();
    // The waits are exact; the attempts themselves and the first one's lateness come on top.
    let expected = total.as_secs_f64();
    report.add(
        shape,
        "poison event → dead-letter topic",
        format!("{} record(s), {after:.1} s after due ({reason})", found.len()),
        format!("once, after {waits} = {expected} s of waits (+ ≤ 5 s of attempts)"),
        Some(found.len() == 1 && after >= expected && after <= expected + 5.0),
    );
    Ok(())
}
