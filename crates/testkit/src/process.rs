//! The workspace's binaries as processes: finding a built binary ([`binary`],
//! [`kafka_binary`]), signalling it ([`signal`]), reading its output as it comes
//! ([`output_lines`]), and the machine's CPU time for what a run cost
//! ([`machine_busy_seconds`]).
//!
//! Its own module because these tests run the programs as they are deployed, out of process,
//! where the in-process [`crate::spawn`] cannot reach (exit codes, signals, logs, start-up).

pub use rustix::process::Signal;

/// A workspace binary (`notify`, `recur`, `scheduler-cron`, `todo-events`, …) from the target
/// directory the running test was built into. Tests never build it: `cargo test --workspace`
/// (the README's command) builds every binary of the workspace before it runs any test, and a
/// test of the binary's own package can use `env!("CARGO_BIN_EXE_<name>")` instead. Panics
/// with what to run when the binary is not there (e.g. under `cargo test -p <one package>`).
pub fn binary(name: &str) -> std::path::PathBuf {
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: this test starts the workspace's binaries; run `cargo build --workspace --bins` \
         first (`cargo test --workspace` does), and again after changing them",
        path.display()
    );
    path
}

/// [`binary`] for a test of the Kafka path: also checks that the binary was built with the
/// `kafka` feature (its `--help` lists the `consume` command). A `cargo build -p notify` without the
/// feature replaces it with an HTTP-only one, with which such a test would only time out.
pub fn kafka_binary(name: &str) -> std::path::PathBuf {
    let path = binary(name);
    if matches!(name, "notify" | "recur") {
        let help = std::process::Command::new(&path)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("{} --help: {e}", path.display()));
        // Listed among the commands (the HTTP-only binary names it only to say it is missing).
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.lines().any(|l| l.trim_start().starts_with("consume ")),
            "{} was built without the `kafka` feature (no `consume` command): run \
             `cargo build --workspace --bins --features kafka` (`cargo test --workspace --features kafka` does)",
            path.display()
        );
    }
    path
}

/// Sends `signal` (`Signal::INT` as Ctrl-C does, `Signal::TERM` as Kubernetes does) to the
/// process `pid`, through kill(2) rather than the `kill` program, which a minimal system
/// (a bare Debian has no procps) does not have. A process that is gone already is no error.
pub fn signal(pid: u32, signal: Signal) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a process id");
    match rustix::process::kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => panic!("signal {signal:?} to process {pid:?}: {e}"),
    }
}

/// Every line `child` writes on its stdout and stderr, as it writes them (its pipes must be
/// set to `Stdio::piped()`).
pub fn output_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let stderr = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [stdout, stderr].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    rx
}

/// CPU time the whole machine has spent busy (not idle, not waiting for I/O) since boot, in
/// seconds, from `/proc/stat`: the difference over a run is what every process of the run
/// cost together (the function, PostgreSQL, the broker, the load generator).
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // USER_HZ is 100 on Linux whatever the kernel's tick rate.
    busy / 100.0
}
