//! The CI size of the rehearsal (`rehearsal --short --shape knative --burst 500`): the
//! trickle across a cron minute boundary, the poison event and a burst at full scale-out, from
//! the manifests as shipped. The burst is 500 here, not 2 000: CI runs the debug binaries the
//! test build made (dependencies optimized, the workspace's own code not: Cargo.toml's
//! `profile.dev.package."*"`), on a 2-core machine shared by every pod (docs/DEPLOYMENT.md,
//! "Rehearsed"); ordered delivery or a relay sized for less would still miss the target.
//! `rehearsal/run` gives the full-size figures. The rehearsal prints its table and exits
//! non-zero when a target is missed. It runs beside the end-to-end tests (`super::turns`),
//! as a cluster's functions share their nodes with other work.
//!
//! It needs the rehearsal's binary (`cargo test --workspace --features kafka` builds it),
//! PostgreSQL with `max_connections` of at least 200 and the test virtualenv (broker, SMTP
//! relay); without one of them it is skipped with a message naming what to install, and
//! fails under CI=true (`todo_events_testkit::require`).

use std::process::Command;
use todo_events_testkit::require;

#[tokio::test(flavor = "multi_thread")]
async fn the_manifests_meet_their_targets_in_the_short_rehearsal() {
    // knative/ at full scale: (10 + 10 Knative pods + 2 overlapping scheduler runs) x
    // DATABASE_MAX_CONNECTIONS 5 = 110 connections, more than PostgreSQL's default 100.
    if require::postgres_with_connections(200).is_none() || !require::kafka_broker() || !require::smtp() {
        return;
    }
    // A turn beside the end-to-end tests (`super::turns`), held until the rehearsal ends.
    let _turn = super::turns::shared().await;
    // The rehearsal starts the functions' binaries from its own directory: they must be built.
    for function in ["notify", "recur", "scheduler-cron"] {
        todo_events_testkit::kafka_binary(function);
    }
    let rehearsal = todo_events_testkit::kafka_binary("rehearsal");
    let mut args = vec!["--short", "--shape", "knative", "--burst", "500"];
    // Each pod is held to its limits.cpu by a CPU cgroup where this machine lets the test
    // make one (root, with cgroup v1's cpu hierarchy or v2's cpu controller, as on the
    // development machine); elsewhere the rehearsal runs without, and its table says so.
    if !cpu_cgroups_possible() {
        eprintln!("CPU cgroups cannot be made here: the rehearsal runs with --no-cpu-limits");
        args.push("--no-cpu-limits");
    }
    let out = Command::new(&rehearsal)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", rehearsal.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
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
        "strangers: events not from the source",
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

/// Whether a CPU cgroup can be made here (what the rehearsal needs to enforce limits.cpu).
fn cpu_cgroups_possible() -> bool {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
    let parent = if v2 {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/cpu"
    };
    let probe = std::path::Path::new(parent).join(format!("todo-events-probe-{}", std::process::id()));
    let made = std::fs::create_dir(&probe).is_ok();
    if made {
        let _ = std::fs::remove_dir(&probe);
    }
    made
}
