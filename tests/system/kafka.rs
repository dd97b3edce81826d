//! The Kafka event path as a whole, with the real binaries, a real Kafka-protocol broker and
//! PostgreSQL: the short rehearsal of the manifests (`kafka/cluster.rs`) and the end-to-end
//! tests (`kafka/end_to_end.rs`); the neighbours' latency beside a failing webhook, which
//! needs the machine to itself, is `crate::timing`. The binaries' Kafka path is the `kafka`
//! feature, whose librdkafka build needs cmake, pkg-config and OpenSSL headers, so these tests
//! run with `cargo test --workspace --features kafka` (what .ci/run runs). Without the feature
//! this module says so and what to install, and fails under CI=true.

#[cfg(feature = "kafka")]
mod cluster;
#[cfg(feature = "kafka")]
pub(crate) mod end_to_end;

#[cfg(not(feature = "kafka"))]
#[test]
fn the_kafka_tests_need_the_kafka_feature() {
    todo_events_testkit::require::kafka_feature(
        "the Kafka end-to-end tests and the short rehearsal (tests/system/kafka.rs)",
    );
}

/// Which of these tests may run at the same time. Two turns: a test takes one, so at most two
/// brokers, stacks and bursts share the machine (libtest runs four tests at once here:
/// `.cargo/config.toml`); a test whose assertion compares timings within itself takes both
/// and runs alone.
#[cfg(feature = "kafka")]
pub(crate) mod turns {
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
