//! notify's memory stays bounded under slow and abusive clients: the real `notify` binary,
//! sized as deployed (`HTTP_WORKERS=1`, `TOKIO_WORKER_THREADS=1`, default `MAX_IN_FLIGHT`
//! and `MAX_CONNECTIONS`), and 1 000 connections that each announce a 60 KB body and send
//! it 10 bytes a second (`testkit::slow`). Checked as an operator would: the process's RSS
//! (`/proc/<pid>/status`) stays below the manifests' 256 Mi limit at its peak and returns
//! near idle once they are gone; the clients beyond `MAX_IN_FLIGHT` are answered `429` at
//! once, their bodies unread; those admitted are answered `408` at `BODY_TIMEOUT`, with
//! nothing handled; and a normal event sent while they hang is handled (after `429`s
//! while every place is taken, as Knative would retry it). On SQLite and PostgreSQL.
//! The figures at 3 000 connections: `bench --only slow` (docs/PERFORMANCE.md, "Slow clients
//! (section `slow`)").

use chrono::{Duration as Days, SubsecRound, Utc};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use todo_events_store::ReminderState;
use todo_events_testkit::slow::{Slow, SlowClients};
use todo_events_testkit::{self as kit, TestDb};

const CONNECTIONS: usize = 1000;
/// How far above idle RSS may stay once the clients are gone: what stays once the server
/// trims after a burst, with room to spare (docs/PERFORMANCE.md, "Slow clients (section
/// `slow`)", "Back near idle").
const AFTER_MIB: f64 = 10.0;
const MAX_IN_FLIGHT: usize = 256;
const BODY_TIMEOUT: Duration = Duration::from_secs(3);
/// The manifests' memory limit for notify (knative/, keda/).
const LIMIT_MIB: f64 = 256.0;

/// (VmRSS, VmHWM) of a process in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Notify {
    child: Child,
    port: u16,
}

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(db: &TestDb, outbox: &std::path::Path) -> Notify {
    let port = kit::kafka::free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_notify"))
        .env("DATABASE_URL", &db.url)
        .env("PORT", port.to_string())
        .env("OUTBOX_DIR", outbox)
        .env("HTTP_WORKERS", "1")
        .env("TOKIO_WORKER_THREADS", "1")
        .env("BODY_TIMEOUT", format!("{}s", BODY_TIMEOUT.as_secs()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("notify starts");
    let notify = Notify { child, port };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/health/readiness"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "notify never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    notify
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_bodies_keep_notify_within_its_memory_limit_and_a_normal_event_goes_through() {
    let mut checked = 0;
    for db in kit::backends().await {
        let b = db.backend;
        let outbox = tempfile::tempdir().unwrap();
        let notify = start(&db, outbox.path()).await;
        let pid = notify.child.id();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (idle, _) = memory(pid);

        let address = format!("127.0.0.1:{}", notify.port);
        let slow = SlowClients::start(
            &address,
            &Slow {
                connections: CONNECTIONS,
                body_bytes: 60_000,
                chunk: 10,
                every: Duration::from_secs(1),
            },
        )
        .await;
        let opened = Instant::now();
        // Those beyond MAX_IN_FLIGHT are answered at once; the others hang, sending.
        let mut tally = slow.tally();
        while tally.answers.get(&429).copied().unwrap_or(0) < CONNECTIONS - MAX_IN_FLIGHT
            && opened.elapsed() < BODY_TIMEOUT
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tally = slow.tally();
        }
        assert_eq!(
            tally.answers.get(&429).copied(),
            Some(CONNECTIONS - MAX_IN_FLIGHT),
            "{b}: all but MAX_IN_FLIGHT answered 429 before the body timeout: {tally:?}"
        );
        assert_eq!(tally.open, MAX_IN_FLIGHT, "{b}: {tally:?}");

        // A normal event while they hang: 429 while every place is taken, handled once the
        // body deadline frees them.
        let due = Utc::now().trunc_subsecs(0) - Days::seconds(1);
        let r = kit::reminder(&db.store, "Pay the rent", due).await;
        let client = reqwest::Client::new();
        let mut shed = 0;
        let status = loop {
            let response = client
                .post(format!("http://{address}/"))
                .header("ce-specversion", "1.0")
                .header("ce-id", r.event_id())
                .header("ce-source", "/todo/scheduler-cron")
                .header("ce-type", "dev.todo.reminder.due")
                .header("content-type", "application/json")
                .body(r.data().to_string())
                .send()
                .await
                .expect("answered");
            if response.status() != 429 {
                break response.status().as_u16();
            }
            shed += 1;
            assert!(
                opened.elapsed() < BODY_TIMEOUT + Duration::from_secs(5),
                "{b}: the normal event was still shed after the body timeout"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            status, 200,
            "{b}: the normal event was handled (after {shed} 429s)"
        );
        assert_eq!(
            db.store.reminder_state(r.reminder_id).await.unwrap(),
            Some(ReminderState::Sent),
            "{b}"
        );
        assert_eq!(
            std::fs::read_dir(outbox.path()).unwrap().count(),
            1,
            "{b}: one mail"
        );

        // The admitted slow bodies are cut at the deadline.
        while slow.tally().answers.get(&408).copied().unwrap_or(0) < MAX_IN_FLIGHT
            && opened.elapsed() < BODY_TIMEOUT + Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, peak) = memory(pid);
        let tally = slow.close().await;
        assert_eq!(
            tally.answers.get(&408).copied(),
            Some(MAX_IN_FLIGHT),
            "{b}: {tally:?}"
        );
        assert_eq!(
            tally.answers.values().sum::<usize>(),
            CONNECTIONS,
            "{b}: every connection answered: {tally:?}"
        );
        // The server gives a burst's memory back at its next idle check (host::trim).
        tokio::time::sleep(todo_events_host::trim::CHECK_EVERY + Duration::from_secs(2)).await;
        let (after, _) = memory(pid);
        eprintln!("{b}: RSS idle {idle:.1} MiB, peak {peak:.1} MiB, after {after:.1} MiB");
        assert!(peak < LIMIT_MIB, "{b}: peak RSS {peak:.1} MiB");
        assert!(
            after <= idle + AFTER_MIB,
            "{b}: RSS {after:.1} MiB after the clients left, idle was {idle:.1} MiB"
        );
        // Nothing of the slow requests was handled: one delivery, the normal event's.
        let deliveries = db.store.deliveries_of(r.reminder_id).await.unwrap();
        assert_eq!(deliveries.len(), 1, "{b}");
        checked += 1;
    }
    assert_eq!(checked, 2, "both backends checked");
}
