//! The Kafka event path end to end (`tests/kafka/end_to_end.rs`): the real binaries, a real
//! Kafka-protocol broker and PostgreSQL. The binaries' Kafka path is the `kafka` feature,
//! whose librdkafka build needs cmake, pkg-config and OpenSSL headers, so these tests run
//! with `cargo test --workspace --features kafka` (what .ci/run runs). Without the feature
//! this test binary says so and what to install, and fails under CI=true.

#[cfg(feature = "kafka")]
#[path = "kafka/end_to_end.rs"]
mod end_to_end;

#[cfg(not(feature = "kafka"))]
#[test]
fn the_kafka_tests_need_the_kafka_feature() {
    todo_events_testkit::require::kafka_feature("the Kafka end-to-end tests (tests/kafka.rs)");
}
