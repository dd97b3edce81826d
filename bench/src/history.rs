//! Section `history`: whether the hot paths cost the same on a database a year old
//! (docs/PERFORMANCE.md, "Cost flat as history grows"). Each row is measured in one run on
//! today's data — the due items and as many finished rows as the section has items, seeded
//! as every other section seeds them — and on a database holding a hundred times that
//! history, spread over a year (`year.rs`), in the order today, ×100, ×100, today so that
//! neither side gains from its place in the run (the machine drifts); a row compares the
//! means. The tables' and indexes' sizes are reported beside.
//!
//! Sizes: `items` (default 20 000) due reminders for the scheduler pass; today's history as
//! many rows, the ×100 one 100 × items (2 M finished tasks, reminders and deliveries). The
//! HTTP rows have more due items, 20 000 per second of the run (wrk must not run out), over
//! the same history; the consumers take 5 × items of them (`Sizes::consumed`). Every run gets a fresh file copy of
//! its template, checkpointed, so that no run inherits another's rows or dirty pages.

use crate::env::{scalar, seed, Env, Service};
use crate::http::{check, measured_wrk_rows, CLIENTS};
use crate::kafka;
use crate::report::{ms, rate, Report, Row};
use sqlx::Connection;
use std::time::{Duration, Instant};

/// The due reminders' instant in every seed.
const REMIND_AT: &str = "2026-11-01T09:45:00Z";

/// How many rows each part of the section moves.
#[derive(Clone, Copy)]
pub struct Sizes {
    /// Due items of the scheduler pass and the consumers; today's history.
    pub items: u64,
    /// Due items of the HTTP rows.
    pub http: u64,
}

impl Sizes {
    pub fn new(items: u64, seconds: u64) -> Self {
        Self {
            items,
            http: (20_000 * seconds).clamp(items, crate::http::ROWS),
        }
    }

    /// Events of each consumer run: five times the due items (at most the HTTP rows' due
    /// items, which the templates hold), so that a run lasts seconds. At `items` (a run of
    /// about a second for recur) the ratio of the same code moved from 86 % to 100 % between
    /// runs of the section (2026-12-07).
    fn consumed(self) -> u64 {
        (5 * self.items).min(self.http)
    }

    /// Rows of the ×100 history.
    fn year(self) -> u64 {
        100 * self.items
    }
}

/// The history a run's database holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Data {
    Today,
    Year,
}

impl Data {
    /// The order of a row's four runs.
    const ORDER: [Data; 4] = [Data::Today, Data::Year, Data::Year, Data::Today];

    /// The template of `function`'s databases with this history.
    fn template(self, function: &str) -> String {
        match self {
            Self::Today => format!("hist_{function}_today"),
            Self::Year => format!("hist_{function}_year"),
        }
    }
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Measured {
    /// Items per second.
    rate: f64,
    /// The HTTP runs' p99 latency, in seconds.
    p99: Option<f64>,
    /// The consumer runs' WAL (bytes, whole pages), from `pg_stat_wal` around the run.
    wal: Option<(f64, f64)>,
}

pub async fn measure(env: &Env, report: &mut Report, seconds: u64, items: u64) -> anyhow::Result<()> {
    let sizes = Sizes::new(items, seconds);
    let started = Instant::now();
    templates(env, sizes).await?;
    println!(
        "[history] templates seeded in {:.0} s ({} due items, {} for HTTP; history {} and {})",
        started.elapsed().as_secs_f64(),
        sizes.items,
        sizes.http,
        sizes.items,
        sizes.year()
    );
    table_sizes(env, report).await?;
    scheduler(env, report, sizes).await?;
    for function in ["notify", "recur"] {
        http(env, report, function, sizes, seconds).await?;
    }
    for function in ["notify", "recur"] {
        consume(env, report, function, sizes).await?;
    }
    // BENCH_KEEP_TEMPLATES=1 leaves them for EXPLAIN (te_bench_hist_<function>_<today|year>).
    if std::env::var_os("BENCH_KEEP_TEMPLATES").is_none() {
        for function in ["sched", "notify", "recur"] {
            for data in [Data::Today, Data::Year] {
                env.drop_database(&data.template(function)).await?;
            }
        }
    }
    println!("[history] section took {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Today's templates as every section seeds them; the ×100 ones from one year of history
/// (seeded once, into recur's, which needs nothing more) with each function's due items
/// added to copies.
async fn templates(env: &Env, sizes: Sizes) -> anyhow::Result<()> {
    let (n, http) = (sizes.items, sizes.http);
    let url = env.database("hist_sched_today", None).await?;
    seed::reminders(&url, n, REMIND_AT, "pending").await?;
    let url = env.database("hist_notify_today", None).await?;
    seed::users(&url).await?;
    seed::due_reminders(&url, http, REMIND_AT, "published").await?;
    today(&url, n).await?;
    let url = env.database("hist_recur_today", None).await?;
    seed::users(&url).await?;
    seed::due_recurring(&url, http, seed::DTSTART_TODAY).await?;
    today(&url, n).await?;

    let url = env.database("hist_recur_year", None).await?;
    seed::users(&url).await?;
    seed::due_recurring(&url, http, seed::DTSTART_TODAY).await?;
    crate::year::seed(&url, sizes.year(), http).await?;
    seed::exec(&url, "VACUUM ANALYZE").await?;
    let url = env.file_copy("hist_notify_year", "hist_recur_year").await?;
    seed::due_reminders(&url, http, REMIND_AT, "published").await?;
    seed::exec(&url, "VACUUM ANALYZE").await?;
    // The scheduler's: its due reminders, and the recurring tasks ended (today's has none
    // due either).
    let url = env.file_copy("hist_sched_year", "hist_recur_year").await?;
    seed::due_reminders(&url, n, REMIND_AT, "pending").await?;
    seed::exec(
        &url,
        &format!("UPDATE recurring_tasks SET active = FALSE, next_occurrence = NULL WHERE id <= {http}"),
    )
    .await?;
    seed::exec(&url, "VACUUM ANALYZE").await
}

/// Today's history of `n` rows, analysed.
async fn today(url: &str, n: u64) -> anyhow::Result<()> {
    seed::history(url, n).await?;
    seed::exec(url, "VACUUM ANALYZE").await
}

/// The tables whose sizes the section reports, with the function whose databases show them
/// (recurring tasks: recur's; the rest: notify's, which hold the most due rows).
const TABLES: [(&str, &str); 6] = [
    ("tasks", "notify"),
    ("reminders", "notify"),
    ("deliveries", "notify"),
    ("channel_endpoints", "notify"),
    ("notification_events", "notify"),
    ("recurring_tasks", "recur"),
];

/// One row per table: rows, heap, indexes (each), total, on the ×100 database and today's.
async fn table_sizes(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    for (table, function) in TABLES {
        let year = Size::of(
            &env.url_of(&format!("te_bench_{}", Data::Year.template(function))),
            table,
        )
        .await?;
        let today = Size::of(
            &env.url_of(&format!("te_bench_{}", Data::Today.template(function))),
            table,
        )
        .await?;
        report.add(Row {
            section: "history",
            what: format!("size of `{table}` (×100 database of {function}'s rows; today's)"),
            figure: format!("×100: {}; indexes: {}", year.summary(), year.indexes),
            limit: format!("today: {}", today.summary()),
            ratio: None,
            target: "— (reported)".into(),
            met: None,
        });
    }
    Ok(())
}

/// A table's size.
struct Size {
    rows: i64,
    heap: i64,
    indexes_total: i64,
    total: i64,
    /// Each index with its size.
    indexes: String,
}

impl Size {
    async fn of(url: &str, table: &str) -> anyhow::Result<Self> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let sql = format!(
            "SELECT (SELECT count(*) FROM {table}), pg_relation_size(c.oid), pg_indexes_size(c.oid), \
               pg_total_relation_size(c.oid), \
               (SELECT string_agg(i.relname || ' ' || pg_size_pretty(pg_relation_size(i.oid)), ', ' ORDER BY i.relname) \
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = c.oid) \
             FROM pg_class c WHERE c.oid = '{table}'::regclass"
        );
        let (rows, heap, indexes_total, total, indexes): (i64, i64, i64, i64, Option<String>) =
            sqlx::query_as(&sql).fetch_one(&mut conn).await?;
        Ok(Self {
            rows,
            heap,
            indexes_total,
            total,
            indexes: indexes.unwrap_or_default(),
        })
    }

    /// `2 000 000 rows, table 312 MiB + indexes 180 MiB = 495 MiB`
    fn summary(&self) -> String {
        format!(
            "{} rows, table {} + indexes {} = {}",
            count(self.rows as f64),
            mib(self.heap),
            mib(self.indexes_total),
            mib(self.total)
        )
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// `2 000 000` (a thin space between thousands, as [`rate`] writes them).
fn count(x: f64) -> String {
    rate(x).trim_end_matches("/s").to_owned()
}

/// scheduler-cron, one pass over `items` due reminders.
async fn scheduler(env: &Env, report: &mut Report, sizes: Sizes) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for data in Data::ORDER {
        env.file_copy("hist_sched", &data.template("sched")).await?;
        let pass = kafka::pass(env, "hist_sched", sizes.items).await?;
        env.drop_database("hist_sched").await?;
        runs.push((
            data,
            Measured {
                rate: sizes.items as f64 / pass.elapsed,
                p99: None,
                wal: None,
            },
        ));
    }
    compare(
        report,
        format!(
            "scheduler-cron, one pass: {} due reminders claimed, published, marked",
            sizes.items
        ),
        &runs,
        sizes,
    );
    Ok(())
}

/// `function` over HTTP, 64 clients, group commit (notify with the file mailer).
async fn http(
    env: &Env,
    report: &mut Report,
    function: &str,
    sizes: Sizes,
    seconds: u64,
) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for data in Data::ORDER {
        runs.push((data, http_run(env, function, data, sizes, seconds).await?));
    }
    let what = match function {
        "notify" => format!("notify, file mailer, {CLIENTS} clients, group commit: events/s (p99)"),
        _ => format!("recur, {CLIENTS} clients, group commit: events/s (p99)"),
    };
    compare(report, what, &runs, sizes);
    Ok(())
}

/// What each function leaves per event: a sent delivery, a task instance of the due
/// occurrence (the history holds neither at these instants).
fn effects(function: &str) -> (&'static str, &'static str) {
    match function {
        // The due reminders' ids are below the history's (from 10 000 001): the count reads
        // the unique index's range of them, not the whole table. It is polled while the
        // consumer runs, and as a scan of 1.9 M rows (90 ms each, 2026-12-07 11:20) it took a
        // third of a core from the ×100 runs only.
        "notify" => (
            "SELECT count(*) FROM deliveries WHERE reminder_id < 10000000 AND status = 'sent' \
             AND remind_at = '2026-11-01T09:45:00Z'",
            "sent deliveries",
        ),
        _ => (
            "SELECT count(*) FROM tasks WHERE occurrence_at = '2026-11-01T08:00:00Z'",
            "task instances",
        ),
    }
}

/// Where the file mailer writes in this section: memory (`/dev/shm`) where there is one. The
/// rows compare databases; with the mails on disk, the writeback of the runs before (and of
/// the database copies each run starts from) made notify's runs of the same data differ by
/// 2 × in one run (2026-12-07: 4 127/s, then 2 222/s on today's data).
pub fn mail_dir(env: &Env) -> anyhow::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    Ok(match shm.is_dir() {
        true => tempfile::tempdir_in(shm)?,
        false => tempfile::tempdir_in(&env.out)?,
    })
}

async fn http_run(
    env: &Env,
    function: &str,
    data: Data,
    sizes: Sizes,
    seconds: u64,
) -> anyhow::Result<Measured> {
    let db = format!("hist_{function}");
    let url = env.file_copy(&db, &data.template(function)).await?;
    let outbox = mail_dir(env)?;
    let mut vars = vec![
        ("DATABASE_URL", url.clone()),
        ("DATABASE_MAX_CONNECTIONS", CLIENTS.to_string()),
        ("MAX_IN_FLIGHT", "1024".to_owned()),
    ];
    if function == "notify" {
        vars.push(("MAILER", "file".to_owned()));
        vars.push(("OUTBOX_DIR", outbox.path().display().to_string()));
    }
    let mut svc = Service::start(
        env,
        &format!("{function}-http"),
        function,
        &[],
        &crate::env::one_cpu(vars),
    )?;
    svc.wait_ready(Duration::from_secs(20))?;
    let w = measured_wrk_rows(svc.child.id(), &svc.url(), function, CLIENTS, seconds, sizes.http)?;
    svc.stop()?;
    let (sql, what) = effects(function);
    check(&w, scalar(&url, sql).await?, what)?;
    env.drop_database(&db).await?;
    Ok(Measured {
        rate: w.rate(),
        p99: Some(w.p99_us as f64 / 1e6),
        wal: None,
    })
}

/// `<function> consume` draining `items` events from a topic filled beforehand.
async fn consume(env: &Env, report: &mut Report, function: &str, sizes: Sizes) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for data in Data::ORDER {
        runs.push((data, consume_run(env, function, data, sizes.consumed()).await?));
    }
    let what = match function {
        "notify" => format!(
            "`notify consume`, file mailer: {} events from the topic (batched)",
            sizes.consumed()
        ),
        _ => format!(
            "`recur consume`: {} events from the topic (batched)",
            sizes.consumed()
        ),
    };
    compare(report, what, &runs, sizes);
    Ok(())
}

async fn consume_run(env: &Env, function: &str, data: Data, items: u64) -> anyhow::Result<Measured> {
    let broker = kafka::Broker::start(env).await?;
    let remind_at = REMIND_AT.parse()?;
    let events = match function {
        "notify" => (1..=items).map(|i| kafka::reminder_event(i, remind_at)).collect(),
        _ => (1..=items).map(kafka::occurrence_event).collect(),
    };
    kafka::fill(&broker, events).await?;
    let db = format!("hist_cons_{function}");
    let url = env.file_copy(&db, &data.template(function)).await?;
    let outbox = mail_dir(env)?;
    let (count_sql, _) = effects(function);
    // The span the database recorded (group joining not counted), of this run's rows only.
    let span_sql = match function {
        "notify" => "SELECT extract(epoch FROM max(completed_at) - min(claimed_at))::float8 FROM deliveries WHERE remind_at = '2026-11-01T09:45:00Z'",
        _ => "SELECT extract(epoch FROM max(created_at) - min(created_at))::float8 FROM tasks WHERE occurrence_at = '2026-11-01T08:00:00Z'",
    };
    let extra = match function {
        "notify" => vec![
            ("MAILER", "file".to_owned()),
            ("OUTBOX_DIR", outbox.path().display().to_string()),
        ],
        _ => vec![],
    };
    let before = Wal::now(&url).await?;
    let rate = kafka::drain(env, &broker, function, &url, items, count_sql, span_sql, &extra).await?;
    let wal = Wal::now(&url).await?.since(before);
    env.drop_database(&db).await?;
    Ok(Measured {
        rate,
        p99: None,
        wal: Some(wal),
    })
}

/// The server's WAL so far (`pg_stat_wal`, the whole cluster's: the bench runs alone): what
/// a consumer run wrote, and how much of it was whole pages (the first change of a page
/// after a checkpoint), the part that grows with the number of distinct index pages a run
/// touches rather than with its rows.
#[derive(Clone, Copy)]
struct Wal {
    bytes: i64,
    pages: i64,
}

impl Wal {
    async fn now(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            bytes: scalar(url, "SELECT wal_bytes::bigint FROM pg_stat_wal").await?,
            pages: scalar(url, "SELECT wal_fpi FROM pg_stat_wal").await?,
        })
    }

    fn since(self, before: Self) -> (f64, f64) {
        (
            (self.bytes - before.bytes) as f64,
            (self.pages - before.pages) as f64,
        )
    }
}

/// Mean of `data`'s runs.
fn mean(runs: &[(Data, Measured)], data: Data) -> Measured {
    let these: Vec<_> = runs.iter().filter(|(d, _)| *d == data).map(|(_, m)| *m).collect();
    let n = these.len() as f64;
    let p99s: Vec<f64> = these.iter().filter_map(|m| m.p99).collect();
    let wals: Vec<(f64, f64)> = these.iter().filter_map(|m| m.wal).collect();
    let k = wals.len() as f64;
    Measured {
        rate: these.iter().map(|m| m.rate).sum::<f64>() / n,
        p99: (!p99s.is_empty()).then(|| p99s.iter().sum::<f64>() / p99s.len() as f64),
        wal: (!wals.is_empty()).then(|| {
            let (b, p) = wals.iter().fold((0.0, 0.0), |(b, p), w| (b + w.0, p + w.1));
            (b / k, p / k)
        }),
    }
}

/// The row of one measurement: the ×100 mean against today's. Met when the ×100 rate is
/// at least 90 % of today's and, where there is a latency, its p99 at most 110 %.
fn compare(report: &mut Report, what: String, runs: &[(Data, Measured)], sizes: Sizes) {
    let (today, year) = (mean(runs, Data::Today), mean(runs, Data::Year));
    let ratio = year.rate / today.rate;
    let tail = year.p99.zip(today.p99).map(|(y, t)| y / t);
    let with_p99 = |m: Measured| {
        let p99 = m.p99.map_or(String::new(), |p| format!(" (p99 {})", ms(p)));
        let wal = m.wal.map_or(String::new(), |(bytes, pages)| {
            format!(
                ", WAL {:.1} MiB a run ({} whole pages)",
                bytes / 1048576.0,
                count(pages)
            )
        });
        format!("{}{p99}{wal}", rate(m.rate))
    };
    let each = runs
        .iter()
        .map(|(_, m)| rate(m.rate))
        .collect::<Vec<_>>()
        .join(", ");
    report.add(Row {
        section: "history",
        what: format!(
            "{what}: {} rows of history against {} (mean of two runs each, in the order today, ×100, ×100, today)",
            count(sizes.year() as f64),
            count(sizes.items as f64)
        ),
        figure: format!(
            "×100: {}{}; runs: {each}",
            with_p99(year),
            tail.map_or(String::new(), |t| format!(", p99 {:.0} % of today's", t * 100.0))
        ),
        limit: format!("today's data, same run: {}", with_p99(today)),
        ratio: Some(ratio),
        target: match tail {
            Some(_) => "within 10 % (rate ≥ 90 %, p99 ≤ 110 %)".into(),
            None => "within 10 % (rate ≥ 90 %)".into(),
        },
        met: Some(ratio >= 0.9 && tail.is_none_or(|t| t <= 1.1)),
    });
}
