//! The CI size of the rehearsal (`rehearsal --short --shape knative --burst 500`): the
//! trickle across a cron minute boundary, the poison event and a burst at full scale-out, from
//! the manifests as shipped. The burst is 500 here, not 2 000: CI runs the debug binaries the
//! test build made, which spend about twice the CPU per event of the release ones on a
//! 2-core machine (docs/DEPLOYMENT.md, "Rehearsed"); ordered delivery or a relay sized for
//! less would still miss the target. `rehearsal/run` gives the full-size figures. The rehearsal prints its table and exits non-zero when a target
//! is missed.

use std::process::Command;

#[test]
fn the_manifests_meet_their_targets_in_the_short_rehearsal() {
    // The rehearsal starts the functions' binaries from its own directory: they must be built.
    for function in ["notify", "recur", "scheduler-cron"] {
        todo_events_testkit::binary(function);
    }
    let rehearsal = std::path::Path::new(env!("CARGO_BIN_EXE_rehearsal"));
    let out = Command::new(rehearsal)
        .args(["--short", "--shape", "knative", "--burst", "500"])
        .output()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", rehearsal.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !in_ci && !out.status.success() && stderr.contains("PostgreSQL") && stdout.is_empty() {
        // Outside CI a machine without PostgreSQL, or with its default max_connections, skips
        // this test; CI (.ci/run) provides both.
        eprintln!(
            "SKIPPING the rehearsal: it needs PostgreSQL on 127.0.0.1:5432 with max_connections >= 200 \
             (ALTER SYSTEM SET max_connections = 300, then restart PostgreSQL)"
        );
        return;
    }
    assert!(
        out.status.success(),
        "the rehearsal failed ({}):\n{stdout}",
        out.status
    );
    // Every scenario of the short run was measured and met.
    for scenario in [
        "trickle: reminder every 0.25 s",
        "trickle: 4 occurrences every 1 s",
        "poison event → dead-letter topic",
        "burst at full scale-out: reminders",
        "burst at full scale-out: occurrences",
        "CronJob runs",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with("| ") && l.contains(scenario))
            .unwrap_or_else(|| panic!("no row {scenario:?} in:\n{stdout}"));
        assert!(row.ends_with("| yes |"), "{row}");
    }
}
