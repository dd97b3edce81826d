//! `recur occurrences` for the rules whose answers cost the most to find: dense rules started
//! long ago, COUNT rules with millions of instances before the question, INTERVALs so long
//! that the calendar seldom repeats for them. Each figure is the wall time of the whole
//! command, process start included, beside the same binary printing its version (process
//! start alone).

use crate::env::{percentile, Env};
use crate::report::{ms, Report, Row};
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 15;

/// (rule, DTSTART, zone, asked after)
const RULES: [(&str, &str, &str, &str); 9] = [
    (
        "FREQ=MINUTELY",
        "2016-11-01T09:00",
        "Europe/Berlin",
        "2026-11-30T04:07:30Z",
    ),
    (
        "FREQ=SECONDLY;COUNT=4000000",
        "2026-10-15T09:00",
        "Europe/Berlin",
        "2026-11-30T04:07:30Z",
    ),
    (
        "FREQ=MINUTELY;COUNT=6000000",
        "2016-11-01T09:00",
        "America/New_York",
        "2026-11-30T04:07:30Z",
    ),
    (
        "FREQ=HOURLY;COUNT=4000000",
        "1600-11-01T09:00",
        "Europe/Berlin",
        "2026-11-30T04:07:30Z",
    ),
    (
        "FREQ=DAILY;COUNT=4000000",
        "0001-01-01T09:00",
        "Asia/Kolkata",
        "2026-11-30T04:07:30Z",
    ),
    (
        "FREQ=SECONDLY;INTERVAL=7;BYHOUR=9;COUNT=4000000000",
        "0001-11-01T09:00",
        "Europe/Berlin",
        "9926-11-30T04:07:30Z",
    ),
    (
        "FREQ=WEEKLY;INTERVAL=1000;COUNT=4000000000",
        "0001-11-01T09:00",
        "Europe/Berlin",
        "9926-11-30T04:07:30Z",
    ),
    (
        "FREQ=MONTHLY;INTERVAL=997;BYDAY=MO,TU;BYSETPOS=-1,3;COUNT=4000000000",
        "0001-11-01T09:00",
        "Australia/Lord_Howe",
        "9926-11-30T04:07:30Z",
    ),
    (
        "FREQ=YEARLY;BYHOUR=0,6,12,18;BYMINUTE=0,15,30,45;BYSECOND=0,30;COUNT=4000000000",
        "0001-11-01T09:00",
        "Europe/Berlin",
        "9926-11-30T04:07:30Z",
    ),
];

pub fn measure(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let recur = env.binary("recur");
    let version = timed(Command::new(&recur).arg("--version"))?;
    for (rule, dtstart, tz, after) in RULES {
        let mut command = Command::new(&recur);
        command.args([
            "occurrences",
            "--rule",
            rule,
            "--dtstart",
            dtstart,
            "--tz",
            tz,
            "--after",
            after,
            "--count",
            "3",
        ]);
        let runs = timed(&mut command)?;
        let median = percentile(&runs, 50.0);
        report.add(Row {
            section: "recurrence",
            what: format!("`recur occurrences --count 3` {rule} from {dtstart} {tz}, after {after}: median of {RUNS} (max)"),
            figure: format!("{} ({})", ms(median), ms(runs[RUNS - 1])),
            limit: format!("{} (`recur --version`)", ms(percentile(&version, 50.0))),
            ratio: None,
            target: "≤ 40 ms".into(),
            met: Some(median <= 0.040),
        });
    }
    Ok(())
}

/// Wall times of `RUNS` runs, sorted; the command must succeed and print something.
fn timed(command: &mut Command) -> anyhow::Result<Vec<f64>> {
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let began = Instant::now();
        let out = command.output()?;
        runs.push(began.elapsed().as_secs_f64());
        anyhow::ensure!(
            out.status.success() && !out.stdout.is_empty(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs)
}
