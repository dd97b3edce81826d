//! The CI size of the fault-injection suite (`faults --small`: 2 000 reminders and 400
//! occurrences through PostgreSQL, the broker and SMTP while everything fails in turn). The
//! suite prints its counts and exits non-zero on any loss or unexplained duplicate.

use std::process::Command;

#[test]
fn the_small_fault_suite_loses_nothing_and_duplicates_nothing() {
    // The suite starts the functions' binaries from its own directory: they must be built.
    for function in ["notify", "recur", "scheduler-cron"] {
        todo_events_testkit::binary(function);
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
    ] {
        assert!(stdout.contains(fault), "no {fault:?} in:\n{stdout}");
    }
}
