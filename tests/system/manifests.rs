//! Deployment as designed (`tests/system/manifests/validation.rs`): the manifests, the image and the
//! operations files checked by `tests/system/manifests/check.py` against facts from the running code,
//! Kafka path included (`consume --help`, the consumer's settings). That path is the `kafka`
//! feature, so these tests run with `cargo test --workspace --features kafka` (what .ci/run
//! runs); without the feature this test binary says so and what to install, and fails under
//! CI=true.

#[cfg(feature = "kafka")]
mod validation;

#[cfg(not(feature = "kafka"))]
#[test]
fn the_manifest_checks_need_the_kafka_feature() {
    todo_events_testkit::require::kafka_feature("the manifest checks (tests/system/manifests.rs)");
}
