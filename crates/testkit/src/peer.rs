//! A Python peer process of the tests (the SMTP server, the webhook and push receiver): started
//! from the test virtualenv with its standard input held open (it stops when that closes, so it
//! never outlives its test), ready once it prints `READY <port>`, steered by one-line commands
//! each answered `OK` or `ERROR <reason>`. Killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

pub(crate) struct Peer {
    pub(crate) port: u16,
    /// What the peer is, for messages ("the test SMTP server").
    what: &'static str,
    child: Child,
    stdin: ChildStdin,
    /// The peer's standard output, line by line.
    lines: Receiver<String>,
}

impl Peer {
    /// Starts `cmd` (the script and its options, run by the test virtualenv's Python) and
    /// waits up to 60 s for `READY <port>`.
    pub(crate) fn start(mut cmd: Command, what: &'static str) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} cannot start: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what} did not say READY within 60 s"));
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{what} did not start: {line:?}"));
        Self {
            port,
            what,
            child,
            stdin,
            lines,
        }
    }

    /// Sends a command and waits until it is in force. Panics with the peer's reason when it
    /// is refused.
    pub(crate) fn command(&mut self, line: &str) {
        let what = self.what;
        writeln!(self.stdin, "{line}").unwrap_or_else(|e| panic!("{what} reads no commands: {e}"));
        self.stdin.flush().expect("command sent");
        let answer = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what} did not answer a command within 10 s"));
        assert_eq!(answer, "OK", "{what} refused {line:?}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
