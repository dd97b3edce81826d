//! The CI size of the rehearsal (`rehearsal --short --shape knative`): the trickle across a
//! cron minute boundary, the poison event, and the 2 000 burst at full scale-out, from the
//! manifests as shipped. The rehearsal prints its table and exits non-zero when a target
//! is missed.

use std::process::Command;

#[test]
fn the_manifests_meet_their_targets_in_the_short_rehearsal() {
    let rehearsal = todo_events_testkit::binary("rehearsal");
    let out = Command::new(&rehearsal)
        .args(["--short", "--shape", "knative"])
        .output()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", rehearsal.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
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
