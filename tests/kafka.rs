//! The Kafka event path as a whole, with the real binaries, a real Kafka-protocol broker and
//! PostgreSQL: the short rehearsal of the manifests (`tests/kafka/cluster.rs`), the end-to-end
//! tests (`tests/kafka/end_to_end.rs`) and the neighbours' latency beside a failing webhook
//! (`tests/kafka/neighbours.rs`). The binaries' Kafka path is the `kafka` feature, whose
//! librdkafka build needs cmake, pkg-config and OpenSSL headers, so these tests run with
//! `cargo test --workspace --features kafka` (what .ci/run runs). Without the feature this
//! test binary says so and what to install, and fails under CI=true.
//!
//! They are one test binary so that they run side by side: each spends most of its time
//! waiting for brokers, leases, retries and cron minutes (11–15 % of two cores, measured),
//! and one after another they were the longest part of CI. [`turns`] says which may share the
//! machine. libtest starts tests in the order of their names, so the modules are named for it:
//! the rehearsal (`cluster`, four minutes) starts first, beside it the end-to-end tests one
//! after another, and the neighbours' test, which runs alone, comes last. (The fault suite,
//! which restarts the PostgreSQL server every test uses, stays in a binary of its own:
//! `faults/tests/ci.rs`.)

#[cfg(feature = "kafka")]
#[path = "kafka/cluster.rs"]
mod cluster;
#[cfg(feature = "kafka")]
#[path = "kafka/end_to_end.rs"]
mod end_to_end;
#[cfg(feature = "kafka")]
#[path = "kafka/neighbours.rs"]
mod neighbours;

#[cfg(not(feature = "kafka"))]
#[test]
fn the_kafka_tests_need_the_kafka_feature() {
    todo_events_testkit::require::kafka_feature(
        "the Kafka end-to-end tests, the short rehearsal and the fault suite (tests/kafka.rs)",
    );
}

/// Which of these tests may run at the same time. Two turns: a test takes one, so at most two
/// brokers, stacks and bursts share the machine (libtest runs as many tests as there are
/// cores); a test whose assertion compares timings within itself takes both and runs alone.
#[cfg(feature = "kafka")]
mod turns {
    use tokio::sync::{Semaphore, SemaphorePermit};

    static TURNS: Semaphore = Semaphore::const_new(2);

    /// A turn beside at most one other test.
    pub async fn shared() -> SemaphorePermit<'static> {
        TURNS.acquire().await.expect("the turns are never closed")
    }

    /// Both turns: nothing else of this binary runs until the permit is dropped.
    pub async fn alone() -> SemaphorePermit<'static> {
        TURNS.acquire_many(2).await.expect("the turns are never closed")
    }
}
