//! The CI size of the fault-injection suite (`faults --small`: 2 000 reminders and 400
//! occurrences through PostgreSQL, the broker and SMTP while everything fails in turn). The
//! suite prints its counts and exits non-zero on any loss or unexplained duplicate.
//!
//! It needs the `kafka` feature (the suite is built only with it), PostgreSQL and the test
//! virtualenv (broker, SMTP server); without one of them it is skipped with a message naming
//! what to install, and fails under CI=true (`todo_events_testkit::require`).

#[cfg(feature = "kafka")]
use std::process::Command;
use todo_events_testkit::require;

#[cfg(not(feature = "kafka"))]
#[test]
fn the_fault_suite_needs_the_kafka_feature() {
    require::kafka_feature("the fault-injection suite (faults/tests/ci.rs)");
}

#[cfg(feature = "kafka")]
#[test]
fn the_small_fault_suite_loses_nothing_and_duplicates_nothing() {
    if require::postgres().is_none() || !require::kafka_broker() || !require::smtp() {
        return;
    }
    // The suite starts the functions' binaries from its own directory: they must be built.
    for function in ["notify", "recur", "scheduler-cron"] {
        todo_events_testkit::kafka_binary(function);
    }
    let suite = std::path::Path::new(env!("CARGO_BIN_EXE_faults"));
    let out = Command::new(suite)
        .arg("--small")
        .output()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", suite.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the fault suite failed ({}):\n{stdout}",
        out.status
    );
    assert!(stdout.lines().any(|l| l == "PASS"), "{stdout}");
    // Each fault happened.
    for fault in [
        "SIGKILL notify",
        "broker SIGKILLed",
        "connection(s) terminated",
        "SMTP server answers",
        "delivered again",
        "PostgreSQL restarted",
    ] {
        assert!(stdout.contains(fault), "no {fault:?} in:\n{stdout}");
    }
}
